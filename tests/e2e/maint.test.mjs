// The maintenance tabs end to end against the emulator: Renew (B-4), Check permissions and
// Repair, Delete registrator (B-5), through the UI only (data-testid hooks), in headless Chromium.
// One tenant, one page, in order: add app (secret of 1 month, Chats left out) -> renew renews the
// expiring secret only and keeps the certificate lines from the current config -> forced renew
// with the current .pfx rolls the certificate over (addKey) -> check by name and by object id is
// clean -> Chats chosen: check reports the missing permissions in the spec's words -> repair ->
// clean -> delete refused while an add-app is unfinished -> deleted -> already gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('maint');
const APP = 'bacula-m365-plugin-standalone';
const AXE_SOURCE = fs.readFileSync(path.join(h.ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is (evaluated through the
 * DevTools protocol: the page's CSP stays in force). */
async function axeSerious(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const v = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((x) => ({ id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  return v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
}

before(async () => {
  emu = await h.startEmulator({ consented: true });
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

/** Java properties as the page writes them (one `key=value` a line; values escaped). */
const unescape = (v) =>
  v.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e) =>
    e.length === 5 ? String.fromCharCode(parseInt(e.slice(1), 16)) : ({ t: '\t', n: '\n', r: '\r', f: '\f' })[e] ?? e,
  );
const props = (text) =>
  Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), unescape(l.slice(l.indexOf('=') + 1))]),
  );

/** Waits for the run to finish, then returns { status, detail } per step. */
async function stepsDone(page) {
  await h.waitAllStepsDone(page, 120_000);
  return page.locator('[data-testid^="step-"]').evaluateAll((els) =>
    Object.fromEntries(els.map((e) => [e.dataset.testid.slice(5), { status: e.dataset.status, detail: e.querySelector('.detail').textContent }])),
  );
}

async function credentialRows(page) {
  await page.locator('[data-testid=credential-list]').waitFor();
  return page.locator('[data-testid=credential-list] li').evaluateAll((els) =>
    els.map((e) => ({ kind: e.dataset.kind, state: e.dataset.state, mine: e.dataset.madeByTool === 'true', text: e.textContent })),
  );
}

async function tab(page, name) {
  await page.getByTestId(`tab-${name}`).click();
  await page.getByTestId(`tab-${name}`).and(page.locator('[aria-selected=true]')).waitFor();
}

test('renew, check and repair, delete registrator', { timeout: 600_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  await s.goto();
  await h.signIn(page, h.ADMIN);

  // Add app with a 1-month secret (expires within 90 days) and without the Chats service.
  await page.locator('details.options summary').click();
  await page.getByTestId('secret-months').fill('1');
  await page.getByTestId('secret-months').press('Tab');
  await page.getByTestId('service-chats').uncheck();
  await page.getByTestId('create-button').click();
  await h.waitAllStepsDone(page, 120_000);
  const conf0 = await h.download(page, 'download-config', out);
  const pfx0 = path.join(out, 'current.pfx');
  fs.renameSync(await h.download(page, 'download-pfx', out), pfx0);
  const cfg0 = props(fs.readFileSync(conf0, 'utf8'));
  fs.copyFileSync(conf0, path.join(out, 'current.conf'));

  // --- Renew: the list shows the expiring secret and the healthy certificate. -----------------
  await tab(page, 'renew');
  let rows = await credentialRows(page);
  assert.deepEqual(rows.map((r) => [r.kind, r.state, r.mine]).sort(), [['certificate', 'ok', true], ['secret', 'expiring', true]], JSON.stringify(rows));
  assert.match(await page.getByTestId('renew-preview').textContent(), /new secret; the certificate is valid/);
  assert.ok(await page.getByTestId('renew-cert-warning').isVisible(), 'warning without the current .pfx');

  // Automatic rule, with the current config file: only the secret is renewed.
  await page.getByTestId('renew-secret-months').fill('12');
  await page.getByTestId('renew-secret-months').press('Tab');
  await page.getByTestId('current-config').setInputFiles(path.join(out, 'current.conf'));
  await page.getByTestId('current-config-read').waitFor();
  await page.getByTestId('renew-button').click();
  let steps = await stepsDone(page);
  assert.match(steps.certificate.detail, /valid for more than 90 days/, JSON.stringify(steps));
  assert.match(steps['remove-old'].detail, /1 replaced credential/, JSON.stringify(steps));
  assert.match(await page.getByTestId('finished').textContent(), /a new secret was added/);
  const conf1 = await h.download(page, 'download-config', out);
  const cfg1 = props(fs.readFileSync(conf1, 'utf8'));
  assert.notEqual(cfg1.secret, cfg0.secret, 'a new secret');
  for (const k of ['appid', 'objectid', 'tenant', 'sharepoint_certificate_path', 'sharepoint_certificate_password']) {
    assert.equal(cfg1[k], cfg0[k], `${k} kept`);
  }
  assert.equal(await page.getByTestId('download-pfx').isDisabled(), true, 'no new certificate to download');
  let state = await h.emulatorState(emu);
  let { app } = h.pluginObjects(state, APP);
  assert.equal(app.passwordCredentials.length, 1, 'the old secret was removed after the new one was added');
  assert.equal(app.keyCredentials.length, 1, 'the certificate was left alone');
  rows = await credentialRows(page);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=credential-list] li')].every((li) => li.dataset.state === 'ok'));
  await page.screenshot({ path: path.join(out, '1-renewed-secret.png'), fullPage: true });
  assert.deepEqual(await axeSerious(page), [], 'axe-core on the Renew tab');

  // Not forced, nothing due: nothing is issued.
  await page.getByTestId('renew-button').click();
  steps = await stepsDone(page);
  assert.match(await page.getByTestId('finished').textContent(), /nothing was due/);
  state = await h.emulatorState(emu);
  assert.equal(h.pluginObjects(state, APP).app.passwordCredentials.length, 1);

  // Forced, with the current .pfx and its password: addKey with a proof, then the old key removed.
  await page.getByTestId('renew-force').check();
  assert.match(await page.getByTestId('renew-preview').textContent(), /new secret and a new certificate/);
  await page.getByTestId('current-pfx').setInputFiles(pfx0);
  await page.getByTestId('current-pfx-password').fill(cfg0.sharepoint_certificate_password);
  await page.getByTestId('renew-cert-warning').waitFor({ state: 'detached' });
  const logBefore = (await h.emulatorLog(emu)).at(-1)?.seq ?? 0;
  await page.getByTestId('renew-button').click();
  steps = await stepsDone(page);
  assert.match(steps.certificate.detail, /new certificate added/, JSON.stringify(steps));
  const calls = h.graphRequests(await h.emulatorLog(emu), logBefore).map((e) => `${e.method} ${e.path}`);
  assert.ok(calls.some((c) => /\/addKey$/.test(c)), `addKey used: ${calls.join(', ')}`);
  const conf2 = await h.download(page, 'download-config', out);
  const pfx2 = await h.download(page, 'download-pfx', out);
  const cfg2 = props(fs.readFileSync(conf2, 'utf8'));
  assert.notEqual(cfg2.secret, cfg1.secret);
  assert.notEqual(cfg2.sharepoint_certificate_password, cfg0.sharepoint_certificate_password);
  assert.ok(fs.statSync(pfx2).size > 1000);
  state = await h.emulatorState(emu);
  ({ app } = h.pluginObjects(state, APP));
  assert.equal(app.passwordCredentials.length, 1);
  assert.equal(app.keyCredentials.length, 1, 'the old certificate was removed after the new one was added');
  assert.match(app.keyCredentials[0].displayName, /^bacula-m365-registrator run /);
  await page.screenshot({ path: path.join(out, '2-forced.png'), fullPage: true });

  // --- Check permissions: clean by app name and by object id. ------------------------------------
  await tab(page, 'check');
  await page.getByTestId('check-button').click();
  await stepsDone(page);
  let report = page.getByTestId('check-report');
  assert.equal(await report.getAttribute('data-status'), 'ok');
  assert.match(await report.textContent(), /All permissions are correctly set/);
  assert.equal(await page.getByTestId('repair-button').count(), 0);
  await page.getByTestId('objectid-input').fill('not-a-guid');
  assert.equal(await page.getByTestId('check-button').isDisabled(), true, 'a bad object id cannot be checked');
  await page.getByTestId('objectid-input').fill(cfg2.objectid);
  await page.getByTestId('check-button').click();
  await stepsDone(page);
  assert.equal(await page.getByTestId('check-report').getAttribute('data-status'), 'ok');

  // Chats chosen now: its permissions are missing, in the spec's words; repair grants them.
  await tab(page, 'connect');
  await page.getByTestId('service-chats').check();
  await tab(page, 'check');
  await page.getByTestId('check-button').click();
  await stepsDone(page);
  report = page.getByTestId('check-report');
  assert.equal(await report.getAttribute('data-status'), 'missing');
  const text = await report.textContent();
  assert.ok(text.includes(`Delegated permission Chat.ReadWrite was not found in your Azure service principal ${cfg2.objectid}`), text);
  assert.ok(text.includes(`Application permission ChatMember.Read.All was not found in your Azure service principal ${cfg2.objectid}`), text);
  assert.ok(text.includes('Please review your app permissions'), text);
  await page.screenshot({ path: path.join(out, '3-missing.png'), fullPage: true });
  assert.deepEqual(await axeSerious(page), [], 'axe-core on the Check tab');
  await page.getByTestId('repair-button').click();
  steps = await stepsDone(page);
  assert.ok(steps.grants, 'repair grants');
  await page.locator('[data-testid=check-report][data-status=ok]').waitFor();
  assert.match(await page.getByTestId('finished').textContent(), /Repaired/);

  // --- Delete registrator. -------------------------------------------------------------------------
  await tab(page, 'delete');
  await page.evaluate(() => sessionStorage.setItem('m365reg.run', JSON.stringify({ run_id: 'x', created: [], delivered: [], complete: false })));
  await page.getByTestId('delete-registrator-button').click();
  assert.equal(await page.getByTestId('op-result').getAttribute('data-status'), 'refused');
  assert.equal(await page.getByTestId('confirm-button').count(), 0, 'no confirmation while an add-app is unfinished');
  state = await h.emulatorState(emu);
  assert.ok(state.registrator?.servicePrincipalId, 'still there');
  await page.evaluate(() => sessionStorage.removeItem('m365reg.run'));

  await page.getByTestId('delete-registrator-button').click();
  await page.getByTestId('confirm-button').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'confirm-button', 'focus moves to the confirmation');
  assert.deepEqual(await axeSerious(page), [], 'axe-core on the Delete tab with the confirmation open');
  await page.getByTestId('cancel-button').click();
  assert.equal(await page.getByTestId('confirm-button').count(), 0);
  state = await h.emulatorState(emu);
  assert.ok(state.registrator?.servicePrincipalId, 'cancel deletes nothing');

  await page.getByTestId('delete-registrator-button').click();
  await page.keyboard.press('Enter'); // the focused confirm-button
  await page.locator('[data-testid=op-result][data-status=deleted]').waitFor();
  state = await h.emulatorState(emu);
  assert.equal(state.registrator?.servicePrincipalId ?? null, null, 'the registrator service principal is gone');
  await page.screenshot({ path: path.join(out, '4-deleted.png'), fullPage: true });

  await page.getByTestId('delete-registrator-button').click();
  await page.getByTestId('confirm-button').click();
  await page.locator('[data-testid=op-result][data-status=already-gone]').waitFor();

  await s.assertHealthy();
});

test('renew refused by a tenant lifetime policy: a clear choice of a shorter lifetime, then it completes', { timeout: 300_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  // The registrator was deleted by the test above: authorize it again (B-1) on the Connect tab.
  await s.goto();
  assert.equal(await h.consent(page), 'success');
  await h.signIn(page, h.ADMIN);
  const r = await h.httpRequest(emu, 'POST', emu.base + '/_emulator/policy', { password_max_lifetime_days: 200 });
  assert.equal(r.status, 200, r.text);

  await tab(page, 'renew');
  await credentialRows(page);
  await page.getByTestId('renew-secret-months').fill('12');
  await page.getByTestId('renew-secret-months').press('Tab');
  await page.getByTestId('renew-force').check();
  await page.getByTestId('renew-button').click();
  const panel = page.getByTestId('error-panel');
  await panel.waitFor();
  assert.equal(await panel.getAttribute('data-kind'), 'policy');
  assert.match(await panel.textContent(), /shorter secret lifetime/);
  assert.equal(await page.locator('[data-testid=step-secret][data-status=failed]').count(), 1);
  const choice = page.getByTestId('policy-choice');
  await choice.waitFor();
  assert.deepEqual(await choice.locator('button').evaluateAll((b) => b.map((x) => x.dataset.testid)), ['policy-renew-6', 'policy-renew-3']);
  let state = await h.emulatorState(emu);
  const before = h.pluginObjects(state, APP).app.passwordCredentials.map((p) => p.keyId);
  assert.equal(before.length, 1, 'the current secret is still there');

  await page.getByTestId('policy-renew-6').click();
  const steps = await stepsDone(page);
  assert.match(steps.secret.detail, /created/);
  assert.equal(await page.getByTestId('renew-secret-months').inputValue(), '6');
  assert.equal(await page.getByTestId('error-panel').count(), 0);
  state = await h.emulatorState(emu);
  const after = h.pluginObjects(state, APP).app.passwordCredentials.map((p) => p.keyId);
  assert.equal(after.length, 1);
  assert.notDeepEqual(after, before, 'the secret was replaced');
  await h.download(page, 'download-config', out);
  await s.assertHealthy();
});

test('JavaScript API: window.m365Registrator on the page, and the example page under the CSP', { timeout: 120_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  await s.goto();
  await page.waitForFunction(() => typeof window.m365Registrator?.consentUrl === 'function');
  const r = await page.evaluate(() => {
    const api = window.m365Registrator;
    let thrown = null;
    try {
      api.consentUrl('common', undefined, 'https://x.example/', 's');
    } catch (e) {
      thrown = { isError: e instanceof Error, message: e.message };
    }
    return {
      url: api.consentUrl('contoso.onmicrosoft.com', undefined, 'https://x.example/', 's'),
      result: api.parseConsentResult('?admin_consent=True&tenant=t&state=s'),
      expiry: api.credentialExpiry({ passwordCredentials: [{ keyId: 'k', endDateTime: '2020-01-01T00:00:00Z' }] }, 1767225600),
      parsed: api.parseConfig(api.renderConfig({ secret: 'a', appid: 'b', objectid: 'c', tenant: 'd', certificatePath: 'e', certificatePassword: 'f' }, 1767225600)),
      thrown,
    };
  });
  assert.equal(r.url, 'https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=8ed4fad3-3f63-44fb-b7e0-e324895d7df9&state=s&redirect_uri=https://x.example/');
  assert.equal(r.result.status, 'success');
  assert.equal(r.expiry[0].expired, true);
  assert.equal(r.parsed.certificatePassword, 'f');
  assert.equal(r.thrown?.isError, true);
  assert.match(r.thrown.message, /is not a tenant/);

  await page.goto(emu.pageUrl + 'js-api-example.html?admin_consent=True&tenant=contoso.onmicrosoft.com&state=abc');
  await page.locator('[data-testid=example-status]', { hasText: 'Ready.' }).waitFor();
  assert.match(await page.getByTestId('example-config').textContent(), /^#.*\nsecret=example-secret\nappid=/);
  assert.match(await page.getByTestId('example-consent-result').textContent(), /"status": "success"/);
  await page.getByTestId('example-make-url').click();
  assert.match(await page.getByTestId('example-consent-url').textContent(), /^https:\/\/login\.microsoftonline\.com\/contoso\.onmicrosoft\.com\/adminconsent\?client_id=8ed4fad3-/);
  await page.locator('#tenant').fill('common');
  await page.getByTestId('example-make-url').click();
  assert.match(await page.getByTestId('example-consent-url').textContent(), /^Error: "common" is not a tenant/);
  await s.assertHealthy();
});
