// The codes: one from the new contact, one from the current contact, and the
// authenticator's. Confirm sends all three; Resend codes waits out the
// cooldown the API announces (resend_available_at, Retry-After).

import { call, errorCode, errorDetail } from '../api.js';
import { button, codeInput, field, h, normalizeCode } from '../dom.js';
import { formatTime, t } from '../i18n.js';
import { cancelMigration, channelOf, contactWord, endedBy, explain, waitText } from './common.js';

/** The API's field names and the inputs that hold them. */
const FIELDS = [
  ['new_contact_code', 'new-contact-code'],
  ['current_contact_code', 'current-contact-code'],
  ['totp_code', 'totp-code'],
];

/** When Resend codes may be used again (ms since the epoch); Infinity once
 * the migration's sends are used up (the API then announces no time). */
let resendAt = 0;
let timer = null;

export function startCooldown(migration, retryAfter) {
  if (!migration?.resend_available_at && !retryAfter) {
    resendAt = Infinity;
    return;
  }
  const announced = Date.parse(migration?.resend_available_at ?? '') || 0;
  const told = retryAfter ? Date.now() + Number.parseInt(retryAfter, 10) * 1000 : 0;
  resendAt = Math.max(announced, told);
}

const sendsUsedUp = () => resendAt === Infinity;
const secondsLeft = () => (sendsUsedUp() ? 0 : Math.max(0, Math.ceil((resendAt - Date.now()) / 1000)));

function verify(app) {
  const codes = Object.fromEntries(FIELDS.map(([name]) => [name, normalizeCode(app.values[name])]));
  const empty = FIELDS.filter(([name]) => !codes[name]);
  if (empty.length) {
    return app.fail(empty.map(([name, id]) => ({ field: id, text: t(`codes.empty.${name}`) })));
  }
  return app.once(async () => {
    const answer = await call(app.auth, 'POST', `/migrations/${app.migration.migration_id}/verify`, codes);
    if (answer.status === 200 && answer.body.state === 'completed') {
      app.result = { plain: true, channel: app.migration.channel, contact: app.migration.new_contact };
      app.go('done');
    } else if (answer.status === 200) {
      app.verified = answer.body;
      app.go(answer.body.eligible ? 'migrate' : 'blockers');
    } else if (errorCode(answer) === 'invalid_codes') {
      const { invalid = [], attempts_remaining: left = 0 } = errorDetail(answer);
      if (left === 0) {
        app.ended = 'locked';
        app.go('ended');
        return;
      }
      const errors = FIELDS.filter(([name]) => invalid.includes(name))
        .map(([name, id]) => ({ field: id, text: t(`codes.wrong.${name}`) }));
      app.fail(errors, [t('codes.attempts', { n: left })]);
    } else if (!endedBy(app, answer)) {
      app.fail([], [explain(answer)]);
    }
  });
}

function resend(app) {
  if (secondsLeft() > 0 || sendsUsedUp()) return undefined;
  return app.once(async () => {
    const answer = await call(app.auth, 'POST', `/migrations/${app.migration.migration_id}/resend`);
    if (answer.status === 200) {
      app.migration = answer.body;
      startCooldown(answer.body);
      delete app.values.new_contact_code;
      delete app.values.current_contact_code;
      app.go('codes', { notice: t('codes.resent'), keepValues: true });
    } else if (errorCode(answer) === 'rate_limited' && !answer.retryAfter) {
      // No time given: this migration's sends are used up.
      resendAt = Infinity;
      app.fail([], [t('codes.resend_used_up')]);
    } else if (errorCode(answer) === 'rate_limited') {
      startCooldown(app.migration, answer.retryAfter);
      app.fail([], [t('codes.resend_limited', { wait: waitText(answer.retryAfter) })]);
    } else if (!endedBy(app, answer)) {
      app.fail([], [explain(answer)]);
    }
  });
}

/** Keeps the countdown text and the button's state current, once a second. */
function tick(hint, resendButton) {
  const left = secondsLeft();
  if (sendsUsedUp()) {
    hint.textContent = t('codes.resend_used_up');
    resendButton.setAttribute('aria-disabled', 'true');
    return 0;
  }
  hint.textContent = left > 0 ? t('codes.resend_wait', { n: left }) : t('codes.resend_ready');
  if (left > 0) resendButton.setAttribute('aria-disabled', 'true');
  else resendButton.removeAttribute('aria-disabled');
  return left;
}

export function codes(app) {
  const migration = app.migration;
  const newWord = contactWord(migration.channel);
  const currentWord = contactWord(channelOf(migration.current_contact));
  const errorOf = (id) => app.errors.find((e) => e.field === id)?.text;
  const input = (name) => codeInput(name, app.values[name], (value) => { app.values[name] = value; });

  const hint = h('p', { class: 'hint', id: 'resend-hint' });
  const resendButton = button(t('codes.resend'), () => resend(app), 'secondary', { 'aria-describedby': 'resend-hint' });
  clearInterval(timer);
  if (tick(hint, resendButton) > 0) {
    timer = setInterval(() => {
      if (!hint.isConnected || tick(hint, resendButton) === 0) clearInterval(timer);
    }, 1000);
  }

  return h('form', { novalidate: true, onsubmit: (event) => { event.preventDefault(); verify(app); } },
    h('h1', {}, t('codes.title')),
    h('p', {}, t('codes.intro', {
      new_contact: migration.new_contact, current_contact: migration.current_contact,
      time: formatTime(migration.expires_at),
    })),
    field({
      id: 'new-contact-code', label: t('codes.new_label', { contact: newWord, value: migration.new_contact }),
      hint: t('codes.code_hint'), error: errorOf('new-contact-code'), input: input('new_contact_code'),
    }),
    field({
      id: 'current-contact-code',
      label: t('codes.current_label', { contact: currentWord, value: migration.current_contact }),
      hint: t('codes.code_hint'), error: errorOf('current-contact-code'), input: input('current_contact_code'),
    }),
    field({
      id: 'totp-code', label: t('codes.totp_label'), hint: t('codes.totp_hint'),
      error: errorOf('totp-code'), input: input('totp_code'),
    }),
    h('button', { type: 'submit', class: 'button' }, t('codes.confirm')),
    h('div', { class: 'actions' },
      hint,
      resendButton,
      button(t('cancel.button'), () => cancelMigration(app), 'secondary')));
}
