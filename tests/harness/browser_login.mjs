// A real browser login through Envoy and the test IdP, for tests/e2e/test_browser.py.
//
//   node tests/harness/browser_login.mjs --url http://127.0.0.1:8080/app.html \
//     --user alice --password secret --screenshot tests/artifacts/browser/landed.png \
//     [--chromium /usr/bin/chromium] [--user-data-dir DIR] [--timeout-ms 60000]
//
// Headless Debian Chromium driven by playwright-core (no browser download):
// open the protected page, get sent to the IdP's login form, fill in user name
// and password, submit, accept consent, land back on the page, wait until its
// script has exchanged a message over a same-origin WebSocket (`#ws` says
// `ws: echo ok`), take a screenshot. Prints one JSON line with what happened:
//   {"ok", "final_url", "ws", "user", "cookies": [{"name", "size", "httpOnly"}],
//    "steps": [urls], "error", "page_text"} (on failure also failed.png beside the screenshot)
// Exits 0 when the run got that far (the test judges the result), 1 otherwise.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    user: { type: 'string', default: 'alice' },
    password: { type: 'string', default: 'secret' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'user-data-dir': { type: 'string' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
  strict: true,
});

const timeout = Number.parseInt(values['timeout-ms'], 10);
const target = new URL(values.url);
const userDataDir = values['user-data-dir'] || fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-edge-chromium-'));
// As root Chromium needs --no-sandbox; the machine has no outside network, so
// everything that would phone home is off.
const args = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const out = { ok: false, steps: [], cookies: [], ws: null, user: null, final_url: null, error: null };
let context;
let page;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: values.chromium,
    headless: true,
    args,
    timeout,
    viewport: { width: 900, height: 600 },
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) out.steps.push(frame.url());
  });

  await page.goto(target.href, { waitUntil: 'domcontentloaded' });
  // The IdP's pages (oidc-provider dev interactions): a login form, then consent.
  // Fill whatever form comes until the browser is back on the protected origin.
  for (let i = 0; i < 6 && new URL(page.url()).origin !== target.origin; i += 1) {
    const submit = page.locator('button[type="submit"]').first();
    await submit.waitFor({ state: 'visible' });
    const login = page.locator('input[name="login"]');
    if (await login.count()) {
      await login.fill(values.user);
      await page.locator('input[name="password"]').fill(values.password);
    }
    await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), submit.click()]);
  }
  await page.waitForURL((u) => u.origin === target.origin && u.pathname === target.pathname, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => {
    const el = document.getElementById('ws');
    return el && el.textContent !== 'ws: pending';
  });
  out.final_url = page.url();
  out.ws = await page.locator('#ws').textContent();
  out.user = await page.locator('#user').textContent();
  out.cookies = (await context.cookies(target.origin)).map((c) => ({ name: c.name, size: c.name.length + c.value.length, httpOnly: c.httpOnly }));
  if (values.screenshot) {
    fs.mkdirSync(path.dirname(values.screenshot), { recursive: true });
    await page.screenshot({ path: values.screenshot, fullPage: true });
  }
  out.ok = true;
} catch (err) {
  out.error = String(err && err.stack ? err.stack : err).slice(0, 4000);
  if (page) {
    out.final_url = page.url();
    out.page_text = await page.locator('body').innerText({ timeout: 2000 }).catch(() => null);
    if (values.screenshot) {
      const failed = path.join(path.dirname(values.screenshot), 'failed.png');
      await page.screenshot({ path: failed, fullPage: true, timeout: 5000 }).catch(() => {});
    }
  }
} finally {
  if (context) await context.close().catch(() => {});
  if (!values['user-data-dir']) fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
