// Messages live in /locales/<locale>.json; English is the fallback for any
// key a translation lacks.

export const LOCALES = ['en', 'zh-CN'];
const SAVED = 'contact-migration.locale';

let messages = {};
let fallback = {};
let current = 'en';

/** The saved choice, else the first of the browser's languages we have. */
export function pickLocale() {
  const saved = localStorage.getItem(SAVED);
  if (LOCALES.includes(saved)) return saved;
  for (const language of navigator.languages ?? [navigator.language]) {
    const lower = String(language).toLowerCase();
    if (lower.startsWith('zh')) return 'zh-CN';
    if (lower.startsWith('en')) return 'en';
  }
  return 'en';
}

async function read(locale) {
  const response = await fetch(`/locales/${locale}.json`);
  return response.ok ? response.json() : {};
}

export async function useLocale(locale, remember = false) {
  if (!LOCALES.includes(locale)) locale = 'en';
  if (!Object.keys(fallback).length) fallback = await read('en');
  messages = locale === 'en' ? fallback : await read(locale);
  current = locale;
  document.documentElement.lang = locale;
  if (remember) localStorage.setItem(SAVED, locale);
}

export function locale() {
  return current;
}

export function has(key) {
  return key in messages || key in fallback;
}

/** The message `key` with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = messages[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(current, { hour: '2-digit', minute: '2-digit' }).format(date);
}
