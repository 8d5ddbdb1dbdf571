// Test-only echo upstream for the oidc-edge end-to-end suite and demo.
//
//   node tests/harness/upstream.mjs --port 9100 --admin-port 9101
//
// Main port (127.0.0.1, or --host):
//   HTTP: every request gets 200 application/json
//     {"method", "path", "headers": {lowercased name: value},
//      "raw_headers": [[lowercased name, value], ...], "body"}
//     `headers` is Node's view (duplicates of most headers are joined, and
//     duplicates of e.g. authorization/host are dropped); `raw_headers` keeps
//     every header line as received, in order, to catch duplicates.
//   With --app-page PATH, a GET of PATH (query ignored) gets instead a small
//     HTML page whose script opens a WebSocket to ws(s)://<same host>/ws/echo,
//     sends "echo ok" and writes `ws: echo ok` into #ws when it comes back
//     (`ws: error` / `ws: closed <code>` otherwise); #user shows the
//     x-auth-request-user header the page was served with. The browser test
//     uses it.
//   WebSocket: an upgrade on any path is accepted and every message is
//     echoed back (text stays text, binary stays binary). The selected
//     subprotocol is the first offered one that does not start with
//     `base64url.bearer.` (none if there is no such one).
// Admin port (127.0.0.1, JSON):
//   GET  /requests        {"count": N, "total": T, "requests": [{"seq", "method", "path",
//                          "headers", "raw_headers", "websocket"}...]} (HTTP and upgrades)
//                          `seq` numbers every request received since start (1, 2, ...;
//                          never reset); `total` is the last one. Only the last
//                          --max-kept (10000) are kept. `?since=S` lists only
//                          seq > S: poll with the last seq seen to read everything
//                          once, however long the run.
//   POST /requests/reset  forget the kept requests (seq goes on)
//   GET  /health
// Exits on SIGTERM and when its parent dies (--no-parent-watch to run it
// detached by hand). --host sets the main port's address (default 127.0.0.1;
// 0.0.0.0 in a container); the admin port always binds 127.0.0.1.
// Env fallbacks: UPSTREAM_PORT, UPSTREAM_HOST, UPSTREAM_ADMIN_PORT.

import http from 'node:http';
import { parseArgs } from 'node:util';

import { WebSocketServer } from 'ws';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'admin-port': { type: 'string' },
    'app-page': { type: 'string' },
    'max-kept': { type: 'string' },
    quiet: { type: 'boolean' },
    'no-parent-watch': { type: 'boolean' },
  },
  strict: true,
});

const port = Number.parseInt(values.port ?? process.env.UPSTREAM_PORT ?? '9100', 10);
const host = values.host ?? process.env.UPSTREAM_HOST ?? '127.0.0.1';
const adminPort = Number.parseInt(values['admin-port'] ?? process.env.UPSTREAM_ADMIN_PORT ?? String(port + 1), 10);
const quiet = Boolean(values.quiet);
const MAX_HEADER_SIZE = 128 * 1024;
const MAX_BODY_ECHO = 64 * 1024;
const MAX_KEPT = Number.parseInt(values['max-kept'] ?? '10000', 10);
const appPage = values['app-page'];

function log(...args) {
  if (!quiet) console.log(new Date().toISOString(), ...args);
}

const received = [];
let seq = 0;

function describe(req, websocket) {
  const raw = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    raw.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
  }
  seq += 1;
  return {
    seq,
    method: req.method,
    path: req.url,
    headers: { ...req.headers },
    raw_headers: raw,
    websocket,
  };
}

function remember(entry) {
  received.push(entry);
  if (received.length > MAX_KEPT) received.shift();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function appHtml(req) {
  const user = req.headers['x-auth-request-user'] || '(none)';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>oidc-edge test app</title>
<style>body{font-family:sans-serif;margin:2em} #ws{font-size:1.4em;font-weight:bold}</style></head>
<body>
<h1>oidc-edge test app</h1>
<p id="user">user: ${escapeHtml(user)}</p>
<p id="ws">ws: pending</p>
<script>
(function () {
  var out = document.getElementById('ws');
  var msg = 'echo ok';
  var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  var ws;
  try {
    ws = new WebSocket(scheme + '//' + location.host + '/ws/echo');
  } catch (e) {
    out.textContent = 'ws: error ' + e;
    return;
  }
  ws.onopen = function () { ws.send(msg); };
  ws.onmessage = function (e) {
    out.textContent = e.data === msg ? 'ws: echo ok' : 'ws: unexpected ' + e.data;
    ws.close();
  };
  ws.onerror = function () { if (out.textContent === 'ws: pending') out.textContent = 'ws: error'; };
  ws.onclose = function (e) { if (out.textContent === 'ws: pending') out.textContent = 'ws: closed ' + e.code; };
})();
</script>
</body></html>
`;
}

const server = http.createServer({ maxHeaderSize: MAX_HEADER_SIZE }, (req, res) => {
  const entry = describe(req, false);
  remember(entry);
  if (appPage && req.method === 'GET' && (req.url || '').split('?')[0] === appPage) {
    req.resume();
    const page = appHtml(req);
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(page),
      'cache-control': 'no-store',
    });
    res.end(page);
    log(`GET ${appPage} -> 200 (app page)`);
    return;
  }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_BODY_ECHO) chunks.push(c);
  });
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const data = JSON.stringify({
      method: entry.method, path: entry.path, headers: entry.headers, raw_headers: entry.raw_headers, body,
    });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(data),
      'cache-control': 'no-store',
    });
    res.end(data);
    log(`${req.method} ${(req.url || '').split('?')[0]} -> 200`);
  });
});

const wss = new WebSocketServer({
  noServer: true,
  handleProtocols(protocols) {
    for (const p of protocols) {
      if (!p.startsWith('base64url.bearer.')) return p;
    }
    return false;
  },
});

wss.on('connection', (ws, req) => {
  log(`websocket open ${(req.url || '').split('?')[0]}`);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});

server.on('upgrade', (req, socket, head) => {
  remember(describe(req, true));
  socket.on('error', () => {});
  if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

server.on('clientError', (err, socket) => {
  log('client error', err.code || err.message);
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
});

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

const admin = http.createServer((req, res) => {
  req.resume();
  const route = `${req.method} ${(req.url || '/').split('?')[0]}`;
  switch (route) {
    case 'GET /health':
      sendJson(res, 200, { ok: true });
      break;
    case 'GET /requests': {
      const since = Number.parseInt(new URL(req.url, 'http://admin').searchParams.get('since') ?? '0', 10) || 0;
      const list = since > 0 ? received.filter((e) => e.seq > since) : received;
      sendJson(res, 200, { count: received.length, total: seq, requests: list });
      break;
    }
    case 'POST /requests/reset':
      received.length = 0;
      sendJson(res, 200, { count: 0 });
      break;
    default:
      sendJson(res, 404, { error: `no admin route ${route}` });
  }
});

function exitNow(reason) {
  log(`exiting: ${reason}`);
  process.exit(0);
}

process.on('SIGTERM', () => exitNow('SIGTERM'));
process.on('SIGINT', () => exitNow('SIGINT'));
process.on('SIGHUP', () => exitNow('SIGHUP'));

const parentPid = process.ppid;
if (!values['no-parent-watch']) {
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

function listen(srv, p, address) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(p, address, () => {
      srv.removeListener('error', reject);
      resolve();
    });
  });
}

await listen(server, port, host);
await listen(admin, adminPort, '127.0.0.1');
log(`upstream echo on ${host}:${port}, admin on 127.0.0.1:${adminPort}`);
