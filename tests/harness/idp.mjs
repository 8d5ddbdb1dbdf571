// Test-only OpenID Provider for the oidc-edge end-to-end suite and demo.
//
// Built on panva's oidc-provider (pinned in package.json). Never expose it:
// it accepts any user name and password, its keys are public test fixtures,
// and it binds 127.0.0.1 only (unless --host: the docker-compose demo only).
//
//   node tests/harness/idp.mjs --port 9000 --admin-port 9001 \
//     --client-id oidc-edge-test --client-secret test-secret-0123456789 \
//     --redirect-uri http://127.0.0.1:8080/oauth2/callback \
//     --post-logout-redirect-uri http://127.0.0.1:8080/ \
//     --keys tests/fixtures/idp-keys.json
//
// Every flag can also come from the environment as IDP_<FLAG> in upper snake
// case (IDP_PORT, IDP_CLIENT_SECRET, IDP_REDIRECT_URI="a b" space-separated).
// It exits on SIGTERM and when its parent process dies (--no-parent-watch to
// run it detached by hand). The main port binds 127.0.0.1 unless --host says
// otherwise (0.0.0.0 in a container, see docker-compose.yml); the admin port
// always binds 127.0.0.1.
//
// Main port: the provider (discovery, /jwks, /auth, /token, /me, /session/end,
// dev interactions under /interaction/:uid). Admin port (JSON):
//   GET  /stats            request counts by path on the main port
//   POST /stats/reset
//   GET  /fault            current faults
//   POST /fault            {"target": "jwks"|"discovery"|"token"|"all",
//                           "mode": "ok"|"500"|"html"|"empty_keys"|"truncated"|
//                                   "garbage"|"slow"|"down", "delay_ms": N}
//                          `down` closes the whole main listener and cuts its
//                          connections while any target is down.
//   POST /keys             {"file": path} or {"jwks": {private JWK set}}
//   GET  /keys             {"kids": [...]} of the keys in use
//   GET  /health
//
// Key rotation: oidc-provider builds its keystore once, in the Provider
// constructor, and has no API to change it. POST /keys therefore builds a new
// Provider instance with the new keys and swaps it in behind the same main
// listener (the listener, its port and the admin listener stay up; no request
// is refused). All instances share one in-memory adapter store, so sessions,
// grants, codes and refresh tokens survive the swap, and the cookie signing
// keys are fixed, so browser sessions at the IdP survive too.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';
// Deep import (the package has no exports map; the version is pinned): one
// memory store shared by every Provider instance of this process, so that a
// key rotation (a new instance) keeps sessions, grants, codes and tokens.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

// ---------------------------------------------------------------- options --

const FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'admin-port': { type: 'string' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret': { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  keys: { type: 'string' },
  'id-token-ttl': { type: 'string' },
  'access-token-ttl': { type: 'string' },
  'refresh-token-ttl': { type: 'string' },
  'big-claim-bytes': { type: 'string' },
  'big-claim-users': { type: 'string' },
  'big-claim-login-prefix': { type: 'string' },
  groups: { type: 'string' },
  quiet: { type: 'boolean' },
  'no-parent-watch': { type: 'boolean' },
};

function envName(flag) {
  return `IDP_${flag.replace(/-/g, '_').toUpperCase()}`;
}

function readOptions() {
  const { values } = parseArgs({ options: FLAGS, strict: true, allowPositionals: false });
  const get = (flag, fallback) => {
    if (values[flag] !== undefined) return values[flag];
    const env = process.env[envName(flag)];
    if (env !== undefined && env !== '') {
      if (FLAGS[flag].multiple) return env.split(/\s+/).filter(Boolean);
      if (FLAGS[flag].type === 'boolean') return env === '1' || env === 'true';
      return env;
    }
    return fallback;
  };
  const int = (flag, fallback) => {
    const raw = get(flag, undefined);
    if (raw === undefined) return fallback;
    const n = Number.parseInt(raw, 10);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag}: not a non-negative integer: ${raw}`);
    return n;
  };

  const port = int('port', 9000);
  const opts = {
    port,
    host: get('host', '127.0.0.1'),
    adminPort: int('admin-port', port + 1),
    issuer: get('issuer', `http://127.0.0.1:${port}`),
    clientId: get('client-id', 'oidc-edge-test'),
    clientSecret: get('client-secret', 'test-secret-0123456789'),
    redirectUris: get('redirect-uri', []),
    postLogoutRedirectUris: get('post-logout-redirect-uri', []),
    keysFile: get('keys', undefined),
    idTokenTtl: int('id-token-ttl', 3600),
    accessTokenTtl: int('access-token-ttl', 3600),
    refreshTokenTtl: int('refresh-token-ttl', 86400),
    bigClaimBytes: int('big-claim-bytes', 0),
    // Comma-separated logins that get the big claim; empty: every login.
    bigClaimUsers: (get('big-claim-users', '') || '').split(',').map((u) => u.trim()).filter(Boolean),
    bigClaimLoginPrefix: get('big-claim-login-prefix', ''),
    groups: (get('groups', '') || '').split(',').map((g) => g.trim()).filter(Boolean),
    quiet: Boolean(get('quiet', false)),
    parentWatch: !get('no-parent-watch', false),
  };
  if (opts.redirectUris.length === 0) {
    opts.redirectUris = ['http://127.0.0.1:8080/oauth2/callback', 'http://localhost:8080/oauth2/callback'];
  }
  if (opts.postLogoutRedirectUris.length === 0) {
    opts.postLogoutRedirectUris = ['http://127.0.0.1:8080/', 'http://localhost:8080/'];
  }
  return opts;
}

const opts = readOptions();

function log(...args) {
  if (!opts.quiet) console.log(new Date().toISOString(), ...args);
}

// ------------------------------------------------------------------- keys --

function loadJwks(source) {
  const jwks = typeof source === 'string' ? JSON.parse(fs.readFileSync(source, 'utf8')) : source;
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw new Error('a JWK set with at least one private key is needed');
  }
  for (const k of jwks.keys) {
    if (!k.d) throw new Error(`key ${k.kid ?? '?'} has no private part`);
  }
  return { keys: jwks.keys.map((k) => ({ ...k })) };
}

let currentJwks = opts.keysFile ? loadJwks(opts.keysFile) : undefined;

// ------------------------------------------------------------- accounts --

// Generated once per process so that every ID token of a run carries the
// same value; random so that a cookie holding it does not compress.
const bigClaim = opts.bigClaimBytes > 0
  ? crypto.randomBytes(opts.bigClaimBytes).toString('base64url').slice(0, opts.bigClaimBytes)
  : undefined;

function accountClaims(login) {
  const claims = {
    sub: login,
    email: `${login}@example.com`,
    email_verified: true,
    name: login.charAt(0).toUpperCase() + login.slice(1),
    preferred_username: login,
  };
  if (opts.groups.length) claims.groups = [...opts.groups];
  // --big-claim-users names the logins that get the big claim; --big-claim-login-prefix
  // gives it to logins starting with a prefix; neither: every login gets it.
  const chosen = opts.bigClaimUsers.length > 0 || opts.bigClaimLoginPrefix !== '';
  const byName = opts.bigClaimUsers.includes(login);
  const byPrefix = opts.bigClaimLoginPrefix !== '' && login.startsWith(opts.bigClaimLoginPrefix);
  if (bigClaim !== undefined && (!chosen || byName || byPrefix)) claims.big = bigClaim;
  return claims;
}

async function findAccount(_ctx, id) {
  return {
    accountId: id,
    async claims(use, _scope) {
      // One claim only userinfo releases, so a relying party's use of userinfo shows.
      return use === 'userinfo' ? { ...accountClaims(id), userinfo_only: 'from-userinfo' } : accountClaims(id);
    },
  };
}

// --------------------------------------------------------------- provider --

const sharedAdapter = createMemoryAdapter(15);
const JWT_CLIENT_SECRET = 'test-secret-for-client-secret-jwt-0123456789';
const CLIENT_JWKS = JSON.parse(fs.readFileSync(new URL('../fixtures/client-keys-public.json', import.meta.url), 'utf8'));

function providerConfiguration() {
  const common = {
    client_secret: opts.clientSecret,
    redirect_uris: opts.redirectUris,
    post_logout_redirect_uris: opts.postLogoutRedirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  };
  const config = {
    clients: [
      { ...common, client_id: opts.clientId, token_endpoint_auth_method: 'client_secret_basic' },
      { ...common, client_id: `${opts.clientId}-post`, token_endpoint_auth_method: 'client_secret_post' },
      // client_secret_jwt signs with the secret as an HS256 key: it needs 32 bytes or more.
      {
        ...common,
        client_id: `${opts.clientId}-jwt`,
        client_secret: JWT_CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_jwt',
        token_endpoint_auth_signing_alg: 'HS256',
      },
      // private_key_jwt: the relying party's public keys (RSA and P-256) are test fixtures.
      {
        ...common,
        client_id: `${opts.clientId}-pkjwt`,
        client_secret: undefined,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: CLIENT_JWKS,
      },
    ],
    adapter: sharedAdapter,
    findAccount,
    // Every claim is released under `openid` as well, so the ID token always
    // carries them, whatever scopes the relying party asks for.
    claims: {
      openid: ['sub', 'email', 'email_verified', 'name', 'preferred_username', 'groups', 'big', 'userinfo_only'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    cookies: { keys: ['oidc-edge-test-idp-cookie-key-not-secret'] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: opts.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: opts.idTokenTtl,
      RefreshToken: opts.refreshTokenTtl,
      Interaction: 600,
      Session: 86400,
      Grant: 86400,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      ctx.body = `<!DOCTYPE html><html><head><title>IdP error</title></head><body><h1>IdP error</h1><pre>${
        Object.entries(out).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join('\n')}</pre></body></html>`;
    },
  };
  if (currentJwks) config.jwks = currentJwks;
  return config;
}

// Endpoint paths of the fault targets (oidc-provider's default routes).
const TARGET_PATHS = {
  discovery: '/.well-known/openid-configuration',
  jwks: '/jwks',
  token: '/token',
};
const TARGETS = Object.keys(TARGET_PATHS);
const MODES = new Set(['ok', '500', 'html', 'empty_keys', 'truncated', 'garbage', 'slow', 'down']);
const faults = Object.fromEntries(TARGETS.map((t) => [t, { mode: 'ok', delay_ms: 0 }]));

function targetOf(path) {
  return TARGETS.find((t) => TARGET_PATHS[t] === path);
}

// Body faults, run inside each provider instance (before its router), so
// that `truncated` can cut the provider's real answer.
function faultMiddleware() {
  return async (ctx, next) => {
    const target = targetOf(ctx.path);
    const fault = target ? faults[target] : undefined;
    const mode = fault ? fault.mode : 'ok';
    switch (mode) {
      case '500':
        ctx.status = 500;
        ctx.type = 'json';
        ctx.body = { error: 'server_error', error_description: 'injected fault (500)' };
        return;
      case 'html':
        ctx.status = 200;
        ctx.type = 'html';
        ctx.body = '<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>Down for maintenance</h1></body></html>';
        return;
      case 'empty_keys':
        ctx.status = 200;
        ctx.type = 'json';
        ctx.body = target === 'jwks' ? { keys: [] } : {};
        return;
      case 'garbage': {
        ctx.status = 200;
        ctx.type = 'application/json';
        // Not JSON, not UTF-8.
        ctx.body = Buffer.concat([Buffer.from('\x00\x01{"keys":[{'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), crypto.randomBytes(64)]);
        return;
      }
      case 'truncated': {
        await next();
        let body = ctx.body;
        if (body && typeof body === 'object' && !Buffer.isBuffer(body) && typeof body.pipe !== 'function') {
          body = JSON.stringify(body);
        }
        if (Buffer.isBuffer(body)) body = body.toString('utf8');
        if (typeof body === 'string') {
          const type = ctx.type;
          ctx.body = body.slice(0, Math.floor(body.length / 2));
          if (type) ctx.type = type;
        }
        return;
      }
      default:
        await next();
    }
  };
}

function buildProvider() {
  const provider = new Provider(opts.issuer, providerConfiguration());
  provider.proxy = false;
  provider.use(faultMiddleware());
  provider.on('server_error', (_ctx, err) => log('server_error', err && err.stack ? err.stack : err));
  return provider;
}

let provider = buildProvider();
let providerHandler = provider.callback();

// ------------------------------------------------------- main listener --

const stats = new Map();
let mainServer;
const sockets = new Set();

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

async function handleMain(req, res) {
  const path = (req.url || '/').split('?')[0];
  stats.set(path, (stats.get(path) || 0) + 1);
  const start = Date.now();
  res.on('finish', () => log(`${req.method} ${path} -> ${res.statusCode} (${Date.now() - start} ms)`));
  const target = targetOf(path);
  if (target && faults[target].mode === 'slow') {
    await sleep(faults[target].delay_ms);
    if (req.destroyed || res.destroyed) return;
  }
  providerHandler(req, res);
}

function startMain() {
  return new Promise((resolve, reject) => {
    const server = http.createServer({ maxHeaderSize: 131072 }, (req, res) => {
      handleMain(req, res).catch((err) => {
        log('main handler error', err);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    server.on('connection', (sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.removeListener('error', reject);
      server.on('error', (err) => log('main listener error', err));
      mainServer = server;
      resolve();
    });
  });
}

function stopMain() {
  return new Promise((resolve) => {
    const server = mainServer;
    mainServer = undefined;
    if (!server) {
      resolve();
      return;
    }
    server.close(() => resolve());
    for (const sock of sockets) sock.destroy();
    sockets.clear();
  });
}

let mainTransition = Promise.resolve();

function isDownWanted() {
  return TARGETS.some((t) => faults[t].mode === 'down');
}

// Serialise listener state changes; bring the listener to the wanted state.
function syncListener() {
  mainTransition = mainTransition.then(async () => {
    if (isDownWanted() && mainServer) {
      await stopMain();
      log('main listener closed (fault: down)');
    } else if (!isDownWanted() && !mainServer) {
      for (let attempt = 0; ; attempt += 1) {
        try {
          await startMain();
          break;
        } catch (err) {
          if (attempt >= 50) throw err;
          await sleep(100);
        }
      }
      log(`main listener up again on ${opts.host}:${opts.port}`);
    }
  }).catch((err) => log('listener transition failed', err));
  return mainTransition;
}

// ------------------------------------------------------------------ admin --

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (!raw.trim()) {
        resolve({});
        return;
      }
      try {
        resolve(JSON.parse(raw));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function publicKids() {
  return (currentJwks ? currentJwks.keys : []).map((k) => k.kid);
}

async function handleAdmin(req, res) {
  const path = (req.url || '/').split('?')[0];
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'GET /health':
      return sendJson(res, 200, { ok: true, listening: Boolean(mainServer), issuer: opts.issuer });
    case 'GET /stats':
      return sendJson(res, 200, Object.fromEntries(stats));
    case 'POST /stats/reset':
      stats.clear();
      return sendJson(res, 200, {});
    case 'GET /fault':
      return sendJson(res, 200, { faults, listening: Boolean(mainServer) });
    case 'POST /fault': {
      const body = await readJson(req);
      const target = body.target ?? 'all';
      const mode = String(body.mode ?? 'ok');
      const delay = Number(body.delay_ms ?? 0);
      if (target !== 'all' && !TARGETS.includes(target)) {
        return sendJson(res, 400, { error: `unknown target ${target}`, targets: [...TARGETS, 'all'] });
      }
      if (!MODES.has(mode)) return sendJson(res, 400, { error: `unknown mode ${mode}`, modes: [...MODES] });
      if (!Number.isFinite(delay) || delay < 0) return sendJson(res, 400, { error: 'bad delay_ms' });
      for (const t of target === 'all' ? TARGETS : [target]) faults[t] = { mode, delay_ms: delay };
      log(`fault ${target} -> ${mode}${mode === 'slow' ? ` ${delay} ms` : ''}`);
      await syncListener();
      return sendJson(res, 200, { faults, listening: Boolean(mainServer) });
    }
    case 'GET /keys':
      return sendJson(res, 200, { kids: publicKids() });
    case 'POST /keys': {
      const body = await readJson(req);
      let jwks;
      try {
        if (body.file) jwks = loadJwks(body.file);
        else if (body.jwks) jwks = loadJwks(body.jwks);
        else return sendJson(res, 400, { error: 'give "file" or "jwks"' });
        const previous = currentJwks;
        currentJwks = jwks;
        try {
          const next = buildProvider();
          provider = next;
          providerHandler = next.callback();
        } catch (err) {
          currentJwks = previous;
          throw err;
        }
      } catch (err) {
        return sendJson(res, 400, { error: String(err && err.message ? err.message : err) });
      }
      log(`signing keys replaced: ${publicKids().join(', ')}`);
      return sendJson(res, 200, { kids: publicKids() });
    }
    default:
      return sendJson(res, 404, { error: `no admin route ${route}` });
  }
}

const adminServer = http.createServer((req, res) => {
  handleAdmin(req, res).catch((err) => sendJson(res, 400, { error: String(err && err.message ? err.message : err) }));
});

// ------------------------------------------------------------- lifecycle --

function exitNow(reason) {
  log(`exiting: ${reason}`);
  process.exit(0);
}

process.on('SIGTERM', () => exitNow('SIGTERM'));
process.on('SIGINT', () => exitNow('SIGINT'));
process.on('SIGHUP', () => exitNow('SIGHUP'));

// Exit when the parent dies (the test harness also sets PR_SET_PDEATHSIG).
// Started already orphaned (parent pid 1) means the parent is gone already:
// pass --no-parent-watch to run it by hand in the background on purpose.
const parentPid = process.ppid;
if (opts.parentWatch) {
  if (parentPid === 1) exitNow('started without a parent (use --no-parent-watch to run detached)');
  setInterval(() => {
    if (process.ppid !== parentPid) exitNow('parent changed');
    try {
      process.kill(parentPid, 0);
    } catch {
      exitNow('parent gone');
    }
  }, 1000).unref();
}

await startMain();
await new Promise((resolve, reject) => {
  adminServer.once('error', reject);
  adminServer.listen(opts.adminPort, '127.0.0.1', resolve);
});
log(`idp ${opts.issuer} listening on ${opts.host}:${opts.port}, admin on 127.0.0.1:${opts.adminPort}`);
log(`clients: ${opts.clientId} (client_secret_basic), ${opts.clientId}-post (client_secret_post), ${opts.clientId}-jwt (client_secret_jwt), ${opts.clientId}-pkjwt (private_key_jwt); keys: ${publicKids().join(', ') || 'generated'}`);
