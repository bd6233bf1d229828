// After verification, when the new contact belongs to another account:
// Migrate Account (or the blockers, explained), the warnings with their
// acknowledgement, Close Account and the confirmation dialog.

import { call, errorCode, errorDetail } from '../api.js';
import { button, codeInput, field, h, normalizeCode } from '../dom.js';
import { formatTime, t } from '../i18n.js';
import { cancelMigration, contactWord, endedBy, explain } from './common.js';

export function migrate(app) {
  const start = () => app.once(async () => {
    const answer = await call(app.auth, 'POST', `/migrations/${app.migration.migration_id}/migrate`, {});
    if (answer.status === 200) {
      app.confirmation = answer.body;
      app.go('warnings');
    } else if (errorCode(answer) === 'not_eligible') {
      app.verified = { ...app.verified, eligible: false, blockers: errorDetail(answer).blockers ?? [] };
      app.go('blockers');
    } else if (!endedBy(app, answer)) {
      app.fail([], [explain(answer)]);
    }
  });
  const word = contactWord(app.migration.channel);
  return h('div', {},
    h('h1', {}, t('migrate.title', { contact: word })),
    h('p', {}, t('migrate.intro', { contact: word, value: app.migration.new_contact })),
    h('p', {}, t('migrate.next')),
    button(t('migrate.button'), start),
    button(t('cancel.button'), () => cancelMigration(app), 'secondary'));
}

export function blockers(app) {
  const list = app.verified?.blockers ?? [];
  return h('div', {},
    h('h1', {}, t('blockers.title')),
    h('p', {}, t('blockers.intro', { value: app.migration.new_contact })),
    h('ul', { class: 'blockers' }, list.map((id) => h('li', {}, t(`blocker.${id}`)))),
    h('p', {}, t('blockers.next')),
    button(t('cancel.button'), () => cancelMigration(app)),
    button(t('common.back'), () => app.go('security'), 'secondary'));
}

function warningItem(warning) {
  let text = t(`warning.${warning.id}`);
  if (warning.id === 'assets_not_transferred') {
    text = `${text} ${t(warning.duplicate_has_assets ? 'warning.has_assets' : 'warning.no_assets')}`;
  }
  return h('li', {}, h('strong', {}, t(`warning.${warning.id}.title`)), text);
}

/** What a refusal of the close says about the form's own fields. */
function closeErrors(answer) {
  const code = errorCode(answer);
  const missing = errorDetail(answer).missing ?? [];
  if (code === 'confirmation_required') {
    const errors = [];
    if (missing.some((m) => m !== 'duplicate_totp_code')) {
      errors.push({ field: 'acknowledge', text: t('warnings.unacknowledged') });
    }
    if (missing.includes('duplicate_totp_code')) {
      errors.push({ field: 'duplicate-totp-code', text: t('warnings.duplicate_totp_empty') });
    }
    return [errors, []];
  }
  if (code === 'invalid_codes') {
    // The last attempt locked the migration (endedBy shows that screen).
    if (errorDetail(answer).attempts_remaining === 0) return null;
    return [[{ field: 'duplicate-totp-code', text: t('warnings.duplicate_totp_wrong') }],
      [t('codes.attempts', { n: errorDetail(answer).attempts_remaining ?? 0 })]];
  }
  return [[], [explain(answer)]];
}

function close(app, dialog) {
  const confirmation = app.confirmation;
  const body = { acknowledged_warnings: confirmation.warnings.map((w) => w.id), confirm: true };
  if (confirmation.duplicate_two_factor_required) {
    body.duplicate_totp_code = normalizeCode(app.values.duplicate_totp_code);
  }
  return app.once(async () => {
    const answer = await call(app.auth, 'POST', `/migrations/${app.migration.migration_id}/close`, body);
    dialog.close();
    if (answer.status === 200) {
      app.result = { plain: false, ...answer.body };
      app.go('done');
    } else if (!endedBy(app, answer)) {
      const refusal = closeErrors(answer);
      if (refusal) {
        app.fail(...refusal);
      } else {
        app.ended = 'locked';
        app.go('ended');
      }
    }
  });
}

/** The native dialog: Yes, Confirm closes the account; Cancel (or Esc) changes nothing. */
function openDialog(app, opener) {
  const dialog = document.getElementById('confirm-dialog');
  const dismiss = () => dialog.close();
  dialog.replaceChildren(
    h('h2', { id: 'confirm-dialog-title' }, t('dialog.title')),
    h('p', { id: 'confirm-dialog-text' }, t('dialog.text', { value: app.migration.new_contact })),
    button(t('dialog.yes'), () => close(app, dialog), 'danger'),
    button(t('dialog.cancel'), dismiss, 'secondary', { autofocus: true }));
  dialog.onclose = () => { if (opener.isConnected) opener.focus(); };
  dialog.showModal();
}

export function warnings(app) {
  const confirmation = app.confirmation;
  const errorOf = (id) => app.errors.find((e) => e.field === id)?.text;
  const review = (event) => {
    event.preventDefault();
    const errors = [];
    if (!app.values.acknowledged) errors.push({ field: 'acknowledge', text: t('warnings.unacknowledged') });
    if (confirmation.duplicate_two_factor_required && !normalizeCode(app.values.duplicate_totp_code)) {
      errors.push({ field: 'duplicate-totp-code', text: t('warnings.duplicate_totp_empty') });
    }
    if (errors.length) return app.fail(errors);
    return openDialog(app, event.submitter ?? document.getElementById('close-account'));
  };
  const ackError = errorOf('acknowledge');
  const checkbox = h('input', {
    type: 'checkbox', id: 'acknowledge', name: 'acknowledge', checked: app.values.acknowledged,
    'aria-describedby': ackError ? 'acknowledge-error' : null, 'aria-invalid': ackError ? 'true' : null,
    onchange: (e) => { app.values.acknowledged = e.target.checked; },
  });
  return h('form', { novalidate: true, onsubmit: review },
    h('h1', {}, t('warnings.title')),
    h('p', {}, t('warnings.intro', { contact: contactWord(app.migration.channel), value: app.migration.new_contact })),
    h('ul', { class: 'warning-list' }, confirmation.warnings.map(warningItem)),
    h('p', { class: 'muted' }, t('warnings.confirm_by', { time: formatTime(confirmation.confirm_by) })),
    h('div', { class: ackError ? 'field has-error' : 'field' },
      ackError && h('span', { class: 'field-error', id: 'acknowledge-error' }, ackError),
      h('div', { class: 'checkbox' }, checkbox, h('label', { for: 'acknowledge' }, t('warnings.acknowledge')))),
    confirmation.duplicate_two_factor_required && field({
      id: 'duplicate-totp-code', label: t('warnings.duplicate_totp_label'), hint: t('warnings.duplicate_totp_hint'),
      error: errorOf('duplicate-totp-code'),
      input: codeInput('duplicate_totp_code', app.values.duplicate_totp_code, (v) => { app.values.duplicate_totp_code = v; }),
    }),
    h('button', { type: 'submit', class: 'button danger', id: 'close-account' }, t('warnings.close')),
    button(t('cancel.button'), () => cancelMigration(app), 'secondary'));
}
