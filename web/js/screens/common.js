// What every screen does with an answer it did not expect: the error in
// words (from the locale file, else the API's own message), and the screens
// that terminal states lead to.

import { call, errorCode } from '../api.js';
import { has, t } from '../i18n.js';

export function explain(answer) {
  const code = errorCode(answer);
  if (code === 'rate_limited') return t('error.rate_limited', { wait: waitText(answer.retryAfter) });
  if (has(`error.${code}`)) return t(`error.${code}`);
  return answer.body?.error?.message ?? t('error.internal');
}

/** "2 minutes", "45 seconds": how long a Retry-After asks to wait. */
export function waitText(retryAfter) {
  const parsed = Number.parseInt(retryAfter ?? '', 10);
  const seconds = Math.max(1, Number.isFinite(parsed) ? parsed : 60);
  return seconds >= 120 ? t('time.minutes', { n: Math.ceil(seconds / 60) }) : t('time.seconds', { n: seconds });
}

/** Terminal answers that end the flow on any screen; true when handled. */
export function endedBy(app, answer) {
  const code = errorCode(answer);
  if (code === 'migration_locked') {
    app.ended = 'locked';
    app.go('ended');
    return true;
  }
  if (code === 'migration_expired') {
    app.ended = 'expired';
    app.go('ended');
    return true;
  }
  if (code === 'unauthenticated' && app.auth.mode === 'dev') {
    app.auth.signOut();
    app.go('signin', { notice: t('error.unauthenticated') });
    return true;
  }
  return false;
}

/** Cancels the migration (DELETE) and goes back to the Security Center. */
export function cancelMigration(app) {
  return app.once(async () => {
    const answer = await call(app.auth, 'DELETE', `/migrations/${app.migration.migration_id}`);
    if (answer.status === 200) {
      app.migration = null;
      app.go('security', { notice: t('cancel.done') });
    } else if (!endedBy(app, answer)) {
      app.fail([], [explain(answer)]);
    }
  });
}

/** The channel's word: "email address" or "phone number". */
export const contactWord = (channel) => t(`channel.${channel}`);

/** Which channel a masked contact is on. */
export const channelOf = (contact) => (String(contact).startsWith('+') ? 'phone' : 'email');
