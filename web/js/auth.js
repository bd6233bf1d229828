// Who the caller is. Two modes, chosen by /config.json:
//
// - "dev" (make dev, AUTH_MODE=dev API): the page asks for an account id and
//   sends it as X-Dev-Account-Id. The production API ignores that header.
// - "host" (production, the default when /config.json says nothing): the
//   signed-in user's bearer token comes from the host application, never from
//   this page. The host either
//     * defines window.contactMigrationHost.getAccessToken() (a function that
//       returns the token or a promise of it) before this page's scripts run,
//       as a mobile app's WebView does with a document-start user script, or
//     * opens this page with window.open() and answers its postMessage
//       {type: "contact-migration:token-request"} with
//       {type: "contact-migration:token", token}; only origins listed in
//       /config.json "host_origins" are asked and believed.
//   The token is kept in memory only and asked for again before each request,
//   so the host stays in charge of refreshing it.

const DEV_ACCOUNT = 'contact-migration.dev-account-id';

export async function loadAuth() {
  let config = {};
  try {
    const response = await fetch('/config.json', { cache: 'no-store' });
    if (response.ok) config = await response.json();
  } catch {
    config = {};
  }
  return config.auth === 'dev' ? devAuth() : hostAuth(config.host_origins ?? []);
}

function devAuth() {
  let accountId = sessionStorage.getItem(DEV_ACCOUNT) ?? '';
  return {
    mode: 'dev',
    signedIn: () => accountId !== '',
    signIn(id) {
      accountId = id.trim();
      sessionStorage.setItem(DEV_ACCOUNT, accountId);
    },
    signOut() {
      accountId = '';
      sessionStorage.removeItem(DEV_ACCOUNT);
    },
    headers: async () => (accountId ? { 'X-Dev-Account-Id': accountId } : {}),
  };
}

function hostAuth(origins) {
  let token = '';
  const waiting = [];
  window.addEventListener('message', (event) => {
    const data = event.data;
    if (!origins.includes(event.origin) || data?.type !== 'contact-migration:token') return;
    if (typeof data.token !== 'string') return;
    token = data.token;
    waiting.splice(0).forEach((resolve) => resolve(token));
  });
  const askOpener = () => {
    if (!window.opener) return Promise.resolve('');
    for (const origin of origins) {
      window.opener.postMessage({ type: 'contact-migration:token-request' }, origin);
    }
    return new Promise((resolve) => {
      waiting.push(resolve);
      setTimeout(() => resolve(token), 5000);
    });
  };
  const currentToken = async () => {
    const hook = window.contactMigrationHost;
    if (typeof hook?.getAccessToken === 'function') return String((await hook.getAccessToken()) ?? '');
    return token || askOpener();
  };
  return {
    mode: 'host',
    signedIn: () => true,
    signIn() {},
    signOut() {},
    async headers() {
      const bearer = await currentToken();
      return bearer ? { Authorization: `Bearer ${bearer}` } : {};
    },
  };
}
