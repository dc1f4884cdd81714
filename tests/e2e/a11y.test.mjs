// Accessibility (issue 7): axe-core reports no serious or critical violation on any screen of the
// flow, and the whole flow can be completed with the keyboard alone (Tab, Enter, Space; only the
// emulator's own sign-in pages, which stand in for Microsoft's, are clicked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.mjs';

let browser;
const out = h.outDir('a11y');
const AXE_SOURCE = fs.readFileSync(path.join(h.ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

before(async () => {
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function freshEmulator(t, opts = {}) {
  const emu = await h.startEmulator(opts);
  t.after(() => emu.stop());
  return emu;
}

/**
 * Runs axe-core on the current page. The page's CSP (script-src 'self') blocks an injected
 * <script> tag, so axe is evaluated through the DevTools protocol (not subject to the page's
 * CSP), which keeps the real CSP in force for the page itself.
 */
async function axe(page, screen, results) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(AXE_SOURCE);
  }
  assert.ok(await page.evaluate(() => typeof window.axe === 'object'), 'axe-core loaded');
  // Audit collapsed content too.
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => (d.open = true)));
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return {
      passes: res.passes.length,
      violations: res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) })),
    };
  });
  assert.ok(r.passes >= 5, `axe-core ran its rules on ${screen} (${r.passes} passed)`);
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => (d.open = false)));
  await page.screenshot({ path: path.join(out, `${screen}.png`), fullPage: true });
  results[screen] = r.violations;
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

test('axe-core: no serious or critical violation on any screen', { timeout: 240_000 }, async (t) => {
  const emu = await freshEmulator(t);
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  const results = {};
  const bad = {};
  const check = async (screen) => {
    const b = await axe(page, screen, results);
    if (b.length) bad[screen] = b;
  };

  await s.goto();
  await check('1-start');
  assert.equal(await h.consent(page), 'success');
  await check('2-consent-landing');
  await h.signIn(page, h.ADMIN);
  await page.getByTestId('plan').waitFor();
  await check('3-signed-in-plan');
  await page.getByTestId('create-button').click();
  await h.waitAllStepsDone(page, 120_000);
  await page.getByTestId('show-password').click();
  await check('4-done-downloads');

  // Error screens: a consent error landing, and a sign-in answer this page did not start.
  const s2 = await h.openPage(browser, emu);
  t.after(() => s2.close());
  await s2.goto('?' + new URLSearchParams({ error: 'access_denied', error_description: 'AADSTS90094: The grant requires admin permission.', admin_consent: 'True', state: 'x' }));
  await s2.page.getByTestId('consent-result').waitFor();
  const b1 = await axe(s2.page, '5-consent-error', results);
  if (b1.length) bad['5-consent-error'] = b1;
  await s2.goto('?code=1.AXYZ-not-a-real-code&state=not-from-this-page');
  await s2.page.getByTestId('error-panel').waitFor();
  const b2 = await axe(s2.page, '6-error-panel', results);
  if (b2.length) bad['6-error-panel'] = b2;

  const minor = Object.entries(results).flatMap(([sc, vs]) => vs.filter((v) => v.impact !== 'serious' && v.impact !== 'critical').map((v) => `${sc}: ${v.id} (${v.impact})`));
  if (minor.length) t.diagnostic('minor/moderate: ' + minor.join('; '));
  assert.deepEqual(bad, {}, 'serious or critical axe-core violations');
  await s.assertHealthy();
  await s2.assertHealthy();
});

test('keyboard alone: consent, sign in, create, download, show the password', { timeout: 240_000 }, async (t) => {
  const emu = await freshEmulator(t);
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  const press = (k) => page.keyboard.press(k);
  await s.goto();

  // 2. Authorize the registrator: Tab to the link, Enter. (The emulator's pages may be clicked.)
  await h.tabTo(page, 'consent-link');
  await press('Enter');
  await h.pickUser(page, h.ADMIN);
  await page.locator('[data-testid=emulator-accept]').click();
  await page.getByTestId('consent-result').waitFor();
  assert.equal(await page.getByTestId('consent-result').getAttribute('data-status'), 'success');

  // 3. Sign in: Tab to the button, Enter.
  await h.tabTo(page, 'sign-in-button');
  await press('Enter');
  await h.pickUser(page, h.ADMIN);
  const next = page.locator('[data-testid=emulator-accept], [data-testid=signed-in-user]').first();
  await next.waitFor();
  if ((await next.getAttribute('data-testid')) === 'emulator-accept') await next.click();
  await h.afterSignIn(page);

  // 4-5. Create: Tab to the button, Space.
  await h.tabTo(page, 'create-button');
  await press('Space');
  await h.waitAllStepsDone(page, 120_000);

  // 6. Downloads by Enter and Space; show the password with Space.
  await h.tabTo(page, 'download-config');
  const conf = await h.downloadByKey(page, 'Enter', out);
  assert.equal(path.basename(conf), 'bacula_m365_config.conf');
  await h.tabTo(page, 'download-pfx');
  const pfx = await h.downloadByKey(page, 'Space', out);
  assert.match(pfx, /\.pfx$/);
  await h.tabTo(page, 'download-zip');
  const zip = await h.downloadByKey(page, 'Enter', out);
  assert.match(zip, /\.zip$/);
  await h.tabTo(page, 'show-password');
  await press('Space');
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid=pfx-password]');
    return el && el.textContent.trim().length === 40 && !el.textContent.includes('•');
  });
  const props = await h.javaProperties(conf);
  assert.equal((await page.getByTestId('pfx-password').textContent()).trim(), props.sharepoint_certificate_password, 'the password shown is the one in the .conf');
  await page.screenshot({ path: path.join(out, 'keyboard-done.png'), fullPage: true });
  await s.assertHealthy();
});
