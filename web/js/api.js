// The API on this origin. Every answer comes back as { status, body,
// retryAfter }; a network failure is status 0 with the error code `network`.

export async function call(auth, method, path, body) {
  const headers = { Accept: 'application/json', ...(await auth.headers()) };
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { status: 0, body: { error: { code: 'network' } }, retryAfter: null };
  }
  let json = {};
  try {
    json = await response.json();
  } catch {
    json = { error: { code: 'internal' } };
  }
  // Retry-After, else the same number of seconds inside the error.
  const retryAfter = response.headers.get('Retry-After') ?? json?.error?.retry_after ?? null;
  return { status: response.status, body: json ?? {}, retryAfter: retryAfter === null ? null : String(retryAfter) };
}

export const errorCode = (answer) => answer.body?.error?.code ?? '';

/** The error's own fields (`invalid`, `attempts_remaining`, `blockers`, `missing`). */
export const errorDetail = (answer) => answer.body?.error ?? {};
