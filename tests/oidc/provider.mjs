// A local OpenID Connect provider (panva's oidc-provider) for uptally's single sign-on tests.
// Listens on 127.0.0.1:$PORT (0: any free port) and prints "listening <issuer>" when ready.
// Static client and accounts; a plain sign-in form checks the password and grants the scopes
// asked for (no consent page), so a browser test signs in with one form.
import http from 'node:http';
import Provider from 'oidc-provider';

const CLIENT_ID = process.env.CLIENT_ID ?? 'uptally';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? 'uptally-test-client-secret';

// login -> account; "groups" is the claim uptally maps onto roles
const ACCOUNTS = {
  olivia: { password: 'olivia-pass', email: 'olivia@example.com', name: 'Olivia Oncall', groups: ['staff', 'oncall'] },
  adam: { password: 'adam-pass', email: 'adam@example.com', name: 'Adam Admin', groups: ['admins', 'oncall'] },
  nora: { password: 'nora-pass', email: 'nora@example.com', name: 'Nora Nogroup', groups: ['staff'] },
  vic: { password: 'vic-pass', email: 'viewer@example.com', name: 'Vic Viewer', groups: ['oncall'] },
};

const page = (uid, error = '') => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Test identity provider</title></head><body><main><h1>Test identity provider</h1>
${error ? `<p role="alert">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}/login">
<label for="login">Username</label> <input id="login" name="login" autocomplete="username" required>
<label for="password">Password</label> <input id="password" name="password" type="password" required>
<button type="submit">Sign in</button></form></main></body></html>`;

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(provider, req, res, uid, submit) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (!submit) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page(uid));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') ?? '';
  const account = Object.hasOwn(ACCOUNTS, login) ? ACCOUNTS[login] : undefined;
  if (!account || account.password !== form.get('password')) {
    res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(uid, 'Wrong username or password.'));
    return;
  }
  const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  await provider.interactionFinished(
    req, res, { login: { accountId: login }, consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: false },
  );
}

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    // a loopback redirect of a native client may use any port (RFC 8252), as the console's does
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/console/sso/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  cookies: { keys: ['uptally-test-cookie-key'] },
  async findAccount(ctx, id) {
    const account = Object.hasOwn(ACCOUNTS, id) ? ACCOUNTS[id] : undefined;
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
};

let handle = (req, res) => { res.writeHead(503); res.end(); };
const server = http.createServer((req, res) => {
  Promise.resolve(handle(req, res)).catch((error) => {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  const oidc = provider.callback();
  handle = (req, res) => {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(new URL(req.url, issuer).pathname);
    if (match) return interaction(provider, req, res, match[1], req.method === 'POST' && !!match[2]);
    return oidc(req, res);
  };
  console.log(`listening ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
