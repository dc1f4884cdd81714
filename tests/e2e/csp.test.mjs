// Content Security Policy (issue 7). Every test of the suite runs the page under the emulator's
// CSP header and fails on any `securitypolicyviolation` (harness assertHealthy). This file checks
// the header itself against the policy of issue 7, that the page boots and works under it, and
// that the violation detector does detect (a positive control).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let emu;
let browser;

before(async () => {
  emu = await h.startEmulator({ consented: true });
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

/** Parses a CSP header into { directive: [sources] }. */
function parseCsp(header) {
  const out = {};
  for (const part of header.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) out[name.toLowerCase()] = values;
  }
  return out;
}

test('the page is served with the strict CSP header and runs under it', { timeout: 120_000 }, async (t) => {
  // The header on every file of the page.
  const files = ['', 'index.html', 'boot.js', 'm365-registrator.js', 'm365-registrator_bg.wasm'];
  for (const f of files) {
    const r = await h.httpRequest(emu, 'GET', emu.pageUrl + f);
    assert.equal(r.status, 200, `GET /${f}`);
    assert.ok(r.headers['content-security-policy'], `CSP header on /${f}`);
  }
  const csp = parseCsp((await h.httpRequest(emu, 'GET', emu.pageUrl)).headers['content-security-policy']);
  t.diagnostic('CSP: ' + JSON.stringify(csp));
  assert.deepEqual(csp['default-src'], ["'none'"]);
  assert.deepEqual(csp['script-src'], ["'self'", "'wasm-unsafe-eval'"], 'no inline script, no eval');
  assert.deepEqual(csp['style-src'], ["'self'"], 'no inline style');
  assert.ok(csp['connect-src']?.includes(emu.base), 'connect-src allows the login and Graph host');
  assert.ok(!csp['connect-src']?.includes('*'), 'connect-src is not a wildcard');
  assert.deepEqual(csp['frame-ancestors'], ["'none'"]);
  assert.deepEqual(csp['base-uri'], ["'none'"]);
  assert.ok(csp['form-action'], 'form-action set');
  assert.ok(!JSON.stringify(csp).includes("'unsafe-inline'"), "no 'unsafe-inline'");
  assert.ok(!JSON.stringify(csp).includes("'unsafe-eval'"), "no 'unsafe-eval'");

  // The page boots, signs in and plans under it without a single violation.
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  await h.signIn(s.page, h.ADMIN);
  await s.page.getByTestId('plan').waitFor();
  await s.assertHealthy();
});

test('positive control: the suite detects a CSP violation', { timeout: 60_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  assert.deepEqual(s.rec.csp, [], 'no violation before the probe');
  // An inline script is what the policy forbids; the harness must see the violation.
  await s.page.evaluate(() => {
    const el = document.createElement('script');
    el.textContent = 'window.__inlineRan = true;';
    document.body.append(el);
  });
  await s.cspViolation();
  assert.equal(await s.page.evaluate(() => window.__inlineRan), undefined, 'the inline script was blocked');
  assert.ok(s.rec.csp.some((v) => /script-src/.test(v.effective || v.directive)), `the violation was recorded: ${JSON.stringify(s.rec.csp)}`);
  await assert.rejects(s.assertHealthy(), /Content-Security-Policy violations/, 'assertHealthy fails on a violation');
});
