// The page: one screen at a time, rendered from the app's state, which is
// the API's last answers plus what the person typed. Rules live in the API;
// this only shows its answers.

import { loadAuth } from './auth.js';
import { pickLocale, useLocale, locale, t } from './i18n.js';
import { errorSummary, h } from './dom.js';
import * as start from './screens/start.js';
import * as codes from './screens/codes.js';
import * as closure from './screens/closure.js';
import * as finish from './screens/finish.js';

const SCREENS = {
  signin: start.signin,
  security: start.security,
  contact: start.contact,
  codes: codes.codes,
  migrate: closure.migrate,
  blockers: closure.blockers,
  warnings: closure.warnings,
  done: finish.done,
  ended: finish.ended,
};

const main = document.getElementById('main');

export const app = {
  auth: null,
  screen: 'security',
  channel: 'email',
  values: {},
  errors: [],
  lines: [],
  notice: '',
  migration: null,
  verified: null,
  confirmation: null,
  result: null,
  ended: '',
  busy: false,

  /** Shows `screen` with no errors; focus goes to its heading. */
  go(screen, { notice = '', keepValues = false } = {}) {
    this.screen = screen;
    this.errors = [];
    this.lines = [];
    this.notice = notice;
    if (!keepValues) this.values = {};
    this.render({ focus: 'heading' });
  },

  /** Shows the current screen again with errors; focus goes to the summary. */
  fail(errors, lines = []) {
    this.errors = errors;
    this.lines = lines;
    this.notice = '';
    this.render({ focus: 'summary' });
  },

  /** Runs one request at a time: a second click while one is out does nothing. */
  async once(work) {
    if (this.busy) return;
    this.busy = true;
    main.setAttribute('aria-busy', 'true');
    try {
      await work();
    } finally {
      this.busy = false;
      main.removeAttribute('aria-busy');
    }
  },

  render({ focus } = {}) {
    const view = SCREENS[this.screen](this);
    const summary = errorSummary(t('errors.title'), this.errors, this.lines);
    const notice = this.notice ? h('div', { class: 'notice', role: 'status' }, this.notice) : null;
    const heading = view.querySelector('h1');
    heading?.setAttribute('tabindex', '-1');
    if (heading) heading.after(...[summary, notice].filter(Boolean));
    main.replaceChildren(view);
    const title = `${heading?.textContent ?? ''} – ${t('app.title')}`;
    document.title = this.errors.length || this.lines.length ? `${t('errors.prefix')} ${title}` : title;
    if (focus === 'summary' && summary) summary.focus();
    else if (focus === 'heading' && heading) heading.focus();
    this.chrome();
  },

  /** The header: brand, language switcher, dev sign-out. */
  chrome() {
    document.getElementById('brand').textContent = t('app.title');
    document.getElementById('language-label').textContent = t('app.language');
    document.getElementById('skip-link').textContent = t('app.skip');
    document.getElementById('language').value = locale();
    const signOut = document.getElementById('sign-out');
    signOut.textContent = t('signin.out');
    signOut.hidden = !(this.auth?.mode === 'dev' && this.auth.signedIn());
  },
};

async function boot() {
  await useLocale(pickLocale());
  app.auth = await loadAuth();
  document.getElementById('language').addEventListener('change', async (event) => {
    await useLocale(event.target.value, true);
    app.render();
  });
  document.getElementById('sign-out').addEventListener('click', () => {
    app.auth.signOut();
    app.migration = null;
    app.go('signin');
  });
  app.screen = app.auth.signedIn() ? 'security' : 'signin';
  app.render();
}

boot();
