// Sign-in (local development only), the Security Center, and the new contact.

import { call, errorCode } from '../api.js';
import { button, field, h } from '../dom.js';
import { t } from '../i18n.js';
import { startCooldown } from './codes.js';
import { contactWord, endedBy, explain } from './common.js';

export function signin(app) {
  const submit = (event) => {
    event.preventDefault();
    const id = (app.values.account ?? '').trim();
    if (!id) return app.fail([{ field: 'account-id', text: t('signin.empty') }]);
    app.auth.signIn(id);
    app.go('security');
  };
  const error = app.errors.find((e) => e.field === 'account-id')?.text;
  return h('form', { novalidate: true, onsubmit: submit },
    h('h1', {}, t('signin.title')),
    h('p', {}, t('signin.intro')),
    field({
      id: 'account-id', label: t('signin.account'), hint: t('signin.hint'), error,
      input: h('input', {
        type: 'text', name: 'account', autocomplete: 'username', spellcheck: 'false', value: app.values.account,
        oninput: (e) => { app.values.account = e.target.value; },
      }),
    }),
    h('button', { type: 'submit', class: 'button' }, t('signin.submit')));
}

export function security(app) {
  const change = (channel) => () => {
    app.channel = channel;
    app.migration = null;
    app.go('contact');
  };
  return h('div', {},
    h('h1', {}, t('security.title')),
    h('section', { class: 'card', 'aria-labelledby': 'email-verification' },
      h('h2', { id: 'email-verification' }, t('security.email')),
      h('p', { class: 'muted' }, t('security.email_text')),
      button(t('security.change_email'), change('email'))),
    h('section', { class: 'card', 'aria-labelledby': 'phone-verification' },
      h('h2', { id: 'phone-verification' }, t('security.phone')),
      h('p', { class: 'muted' }, t('security.phone_text')),
      button(t('security.change_phone'), change('phone'))));
}

/** Errors of POST /migrations that are about the address typed. */
const CONTACT_ERRORS = ['invalid_contact', 'contact_already_yours', 'contact_already_migrated'];

export function contact(app) {
  const channel = app.channel;
  const send = (event) => {
    event.preventDefault();
    const value = (app.values.contact ?? '').trim();
    if (!value) return app.fail([{ field: 'new-contact', text: t(`contact.empty.${channel}`) }]);
    return app.once(async () => {
      const answer = await call(app.auth, 'POST', '/migrations', { channel, new_contact: value });
      if (answer.status === 201) {
        app.migration = answer.body;
        startCooldown(answer.body);
        app.go('codes', { notice: t('codes.sent') });
      } else if (CONTACT_ERRORS.includes(errorCode(answer))) {
        const key = `contact.${errorCode(answer)}.${channel}`;
        app.fail([{ field: 'new-contact', text: t(key) }]);
      } else if (!endedBy(app, answer)) {
        app.fail([], [explain(answer)]);
      }
    });
  };
  const error = app.errors.find((e) => e.field === 'new-contact')?.text;
  const email = channel === 'email';
  return h('form', { novalidate: true, onsubmit: send },
    h('h1', {}, t(`contact.title.${channel}`)),
    h('p', {}, t('contact.intro', { contact: contactWord(channel) })),
    field({
      id: 'new-contact', label: t(`contact.label.${channel}`), hint: t(`contact.hint.${channel}`), error,
      input: h('input', {
        type: email ? 'email' : 'tel', name: 'new_contact', autocomplete: email ? 'email' : 'tel',
        spellcheck: 'false', value: app.values.contact,
        oninput: (e) => { app.values.contact = e.target.value; },
      }),
    }),
    h('button', { type: 'submit', class: 'button' }, t('contact.submit')),
    button(t('common.back'), () => app.go('security'), 'secondary'));
}
