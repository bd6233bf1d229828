// Elements built with the DOM API only: text from the API or a locale file
// is never parsed as HTML.

/** h('p', {class: 'hint'}, 'text', child, ...) */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'value') element.value = value;
    else if (name === 'checked') element.checked = Boolean(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/**
 * A labelled input with its hint and error, GOV.UK style: the error is
 * repeated at the field, and both are in the input's description.
 */
export function field({ id, label, hint, error, input }) {
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ');
  input.id = id;
  if (described) input.setAttribute('aria-describedby', described);
  if (error) input.setAttribute('aria-invalid', 'true');
  return h('div', { class: error ? 'field has-error' : 'field' },
    h('label', { for: id }, label),
    hint && h('span', { class: 'hint', id: `${id}-hint` }, hint),
    error && h('span', { class: 'field-error', id: `${id}-error` }, error),
    input);
}

/**
 * A one-time code: digits on a phone keypad, offered from SMS or mail by the
 * platform, paste allowed. Spaces and dashes are dropped before sending.
 */
export function codeInput(name, value, onInput) {
  return h('input', {
    type: 'text', name, class: 'code', value: value ?? '',
    inputmode: 'numeric', autocomplete: 'one-time-code', spellcheck: 'false',
    oninput: (event) => onInput(event.target.value),
  });
}

export function normalizeCode(value) {
  return String(value ?? '').replace(/[\s-]/g, '');
}

/**
 * The error summary: a heading, a link to each field in error, and lines
 * that belong to no field. It takes focus when shown (see main.js).
 */
export function errorSummary(title, errors, lines = []) {
  if (!errors.length && !lines.length) return null;
  const items = errors.map(({ field: id, text }) => h('li', {},
    id ? h('a', {
      href: `#${id}`,
      onclick: (event) => {
        const target = document.getElementById(id);
        if (!target) return;
        event.preventDefault();
        target.focus();
        target.scrollIntoView({ block: 'center' });
      },
    }, text) : text));
  return h('div', { class: 'error-summary', id: 'error-summary', tabindex: '-1', 'aria-labelledby': 'error-summary-title' },
    h('h2', { id: 'error-summary-title' }, title),
    items.length ? h('ul', {}, items) : null,
    lines.map((line) => h('p', {}, line)));
}

export function button(text, onclick, variant = '', extra = {}) {
  return h('button', { type: 'button', class: `button ${variant}`.trim(), onclick, ...extra }, text);
}
