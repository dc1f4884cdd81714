// The consent landing page (the page is its own admin-consent redirect URI): success, cancel,
// a generic error, a missing or foreign state, and HTML in error_description shown as text. After
// every landing the address bar holds no query or fragment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('landing');

before(async () => {
  emu = await h.startEmulator({});
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

/** A fresh page in its own context (own sessionStorage). */
async function fresh(t) {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  return s;
}

/** Clicks consent-link but intercepts the navigation to the emulator: returns the consent URL the
 * page built (its state is now the page's pending consent). The tab stays on an inert page. */
async function startConsentIntercepted(s) {
  const { page } = s;
  let captured;
  const isConsent = (u) => u.href.startsWith(emu.base) && /adminconsent/.test(u.pathname);
  await page.route(isConsent, async (route) => {
    captured = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'intercepted by the end-to-end test' });
  });
  await page.getByTestId('consent-link').click();
  await page.waitForURL((u) => u.href.startsWith(emu.base));
  await page.unroute(isConsent);
  assert.ok(captured, 'the consent link navigated to the emulator');
  const u = new URL(captured);
  assert.equal(u.searchParams.get('client_id'), '8ed4fad3-3f63-44fb-b7e0-e324895d7df9', 'the registrator client id');
  assert.equal(u.searchParams.get('redirect_uri'), emu.pageUrl, 'redirects back to this page');
  assert.match(u.pathname, new RegExp(`^/(${emu.tenantId}|${emu.domain.replace(/\./g, '\\.')})/`), 'tenant-specific endpoint');
  const state = u.searchParams.get('state');
  assert.ok(state && state.length >= 16, 'a random state');
  return state;
}

/** Loads the page with a landing query and returns the consent-result element's status. */
async function land(s, params) {
  const q = '?' + new URLSearchParams(params).toString();
  await s.goto(q);
  const r = s.page.getByTestId('consent-result');
  await r.waitFor({ state: 'visible' });
  await assertCleanUrl(s.page);
  return r.getAttribute('data-status');
}

async function assertCleanUrl(page) {
  // The page clears the query at boot; wait for it rather than assume.
  await page.waitForFunction(() => location.search === '' && location.hash === '');
  const u = new URL(page.url());
  assert.equal(u.search, '', 'no query left in the address bar');
  assert.equal(u.hash, '', 'no fragment left in the address bar');
}

test('success through the emulator: consent-result success, URL cleaned, the state is consumed', { timeout: 120_000 }, async (t) => {
  const s = await fresh(t);
  const landings = [];
  s.page.on('request', (r) => {
    if (r.isNavigationRequest() && r.url().startsWith(emu.pageUrl) && r.url().includes('?')) landings.push(r.url());
  });
  assert.equal(await h.consent(s.page), 'success');
  await assertCleanUrl(s.page);
  const state = await h.emulatorState(emu);
  assert.ok(state.registrator?.servicePrincipalId, 'the emulator recorded the consent');
  await s.page.screenshot({ path: path.join(out, 'success.png'), fullPage: true });

  // Replaying the same landing URL: the pending record was consumed, so it is unknown now.
  assert.equal(landings.length, 1, `one landing navigation (${landings})`);
  assert.match(landings[0], /admin_consent=True/);
  await s.page.goto(landings[0]);
  await h.pageReady(s.page);
  await s.page.getByTestId('consent-result').waitFor();
  assert.equal(await s.page.getByTestId('consent-result').getAttribute('data-status'), 'unknown-state', 'a replayed landing is not trusted');
  await assertCleanUrl(s.page);
  await s.assertHealthy();
});

test('cancel through the emulator: consent-result cancelled', { timeout: 120_000 }, async (t) => {
  const s = await fresh(t);
  assert.equal(await h.consent(s.page, { cancel: true }), 'cancelled');
  await assertCleanUrl(s.page);
  await s.page.screenshot({ path: path.join(out, 'cancelled.png'), fullPage: true });
  await s.assertHealthy();
});

test('AADSTS65004 access_denied with admin_consent=True and a known state: cancelled', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  const state = await startConsentIntercepted(s);
  const status = await land(s, {
    error: 'access_denied',
    error_description: 'AADSTS65004: User declined to consent to access the app.\r\nTrace ID: 0b7f\r\nCorrelation ID: 9c1e\r\nTimestamp: 2026-12-03 10:00:00Z',
    admin_consent: 'True',
    state,
  });
  assert.equal(status, 'cancelled', 'a decline is a cancel, not a success (admin_consent=True is sent on errors too)');
  await s.assertHealthy();
});

test('a generic error with a known state: error', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  const state = await startConsentIntercepted(s);
  const status = await land(s, {
    error: 'server_error',
    error_description: 'AADSTS90033: A transient error has occurred. Please try again.',
    admin_consent: 'True',
    state,
  });
  assert.equal(status, 'error');
  await s.page.screenshot({ path: path.join(out, 'error.png'), fullPage: true });
  await s.assertHealthy();
});

test('success without a state: unknown-state', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  const status = await land(s, { admin_consent: 'True', tenant: emu.tenantId });
  assert.equal(status, 'unknown-state', 'a landing this page did not start is not confirmed');
  await s.page.screenshot({ path: path.join(out, 'unknown-state.png'), fullPage: true });
  await s.assertHealthy();
});

test('success with a foreign state while a consent is pending: unknown-state', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  const state = await startConsentIntercepted(s);
  const foreign = state.split('').reverse().join('') + 'x';
  const status = await land(s, { admin_consent: 'True', tenant: emu.tenantId, state: foreign });
  assert.equal(status, 'unknown-state');
  await s.assertHealthy();
});

test('an error with a foreign state: unknown-state', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  await startConsentIntercepted(s);
  const status = await land(s, {
    error: 'access_denied',
    error_description: 'AADSTS65004: User declined to consent to access the app.',
    admin_consent: 'True',
    state: 'not-the-state-this-page-made',
  });
  assert.equal(status, 'unknown-state');
  await s.assertHealthy();
});

test('HTML and script in error_description are shown as text, never run', { timeout: 60_000 }, async (t) => {
  const s = await fresh(t);
  const { page } = s;
  const state = await startConsentIntercepted(s);
  const evil = '<img src=x onerror=alert(1)><script>window.__xss=1;alert(2)</script><b id="injected">bold</b>';
  const status = await land(s, {
    error: 'invalid_request',
    error_description: `AADSTS50011: ${evil}`,
    admin_consent: 'True',
    state,
  });
  assert.equal(status, 'error');
  const result = page.getByTestId('consent-result');
  // Shown, literally, as text.
  await page.getByText('<img src=x onerror=alert(1)>', { exact: false }).first().waitFor({ state: 'visible' });
  assert.ok((await result.textContent()).includes('<script>window.__xss=1;alert(2)</script>'), 'the script tag is shown as text');
  // Nothing injected, nothing ran.
  assert.equal(await page.locator('img').count(), 0, 'no <img> element');
  assert.equal(await page.locator('#injected').count(), 0, 'no injected element');
  assert.equal(await page.locator('body script').count(), 0, 'no <script> in the body');
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'the script did not run');
  assert.deepEqual(s.rec.dialogs, [], 'no alert');
  await page.screenshot({ path: path.join(out, 'html-as-text.png'), fullPage: true });
  await s.assertHealthy();
});
