// The end of a flow: completion, or a migration that locked or expired.

import { button, h } from '../dom.js';
import { t } from '../i18n.js';
import { contactWord } from './common.js';

export function done(app) {
  const result = app.result;
  const word = contactWord(result.channel);
  return h('div', {},
    h('h1', {}, t(result.plain ? 'done.title_plain' : 'done.title', { contact: word })),
    h('div', { class: 'panel-done' },
      h('p', {}, t('done.contact', { contact: word, value: result.contact })),
      result.plain ? null : h('p', {}, t('done.closed', { id: result.closed_account_id }))),
    h('p', {}, t(result.plain ? 'done.notice_plain' : 'done.notice')),
    button(t('common.back_security'), () => app.go('security')));
}

export function ended(app) {
  return h('div', {},
    h('h1', {}, t(`ended.${app.ended}.title`)),
    h('p', {}, t(`ended.${app.ended}.text`)),
    button(t('common.back_security'), () => { app.migration = null; app.go('security'); }));
}
