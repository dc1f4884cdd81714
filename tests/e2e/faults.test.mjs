// Issue 7, "Faults" through the real page: each Graph step of add-app × {429 with Retry-After,
// 503, a dropped connection (after the server acted), a replication 404, a request the browser
// resent}, injected once by the emulator; then a reload at each step boundary. Every case ends
// with exactly one app, one service principal, one owner entry, every grant, one client secret and
// one certificate on the app, and a downloaded .conf whose secret gets a client-credentials token
// from the emulator; no secret is left in the browser's storage or address bar.
//
// One emulator and one browser for the file; before each case the emulator is reset (same seed:
// same tenant, users and ids) and the case gets a fresh browser context.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('faults');

before(async () => {
  emu = await h.startEmulator({ consented: true });
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

/** The first request of each step of a fresh add-app (the n-th match of the rule, counted from
 * when the rule is set, i.e. from the click on Create). Mirrors tests/flow_engine.rs. */
const STEPS = [
  { step: 'discover', match: { method: 'POST', path_contains: '$batch' }, nth: 1, created: false },
  { step: 'app', match: { method: 'PATCH', path_contains: '/applications(' }, nth: 1, created: false },
  { step: 'service-principal', match: { method: 'PATCH', path_contains: '/servicePrincipals(' }, nth: 1, created: true },
  { step: 'secret', match: { method: 'POST', path_contains: '/addPassword' }, nth: 1, created: true },
  { step: 'owner', match: { method: 'POST', path_contains: '/owners/' }, nth: 1, created: true },
  { step: 'grants', match: { method: 'POST', path_contains: '$batch' }, nth: 2, created: true },
  // Inside the grants' $batch: connection faults (drop, resend) belong to the $batch request
  // (the 'grants' row); the emulator applies only answer faults to a batch's requests.
  { step: 'grants (an app role assignment)', match: { method: 'POST', path_contains: '/appRoleAssignedTo' }, nth: 3, created: true, inBatch: true },
  { step: 'grants (the delegated grant)', match: { method: 'POST', path_contains: '/oauth2PermissionGrants' }, nth: 1, created: true, inBatch: true },
];
const RETRY_AFTER_S = 1;
const KINDS = [
  { kind: '429', retry_after_s: RETRY_AFTER_S, label: '429 + Retry-After' },
  { kind: '503', label: '503' },
  { kind: 'drop_after', label: 'dropped connection', connection: true },
  { kind: 'lag404', label: 'replication 404' },
  // The connection closes unanswered after the server acted, and the browser sends the request
  // again by itself (what Chromium does on a reused keep-alive connection): the server acts twice.
  { kind: 'resend', label: 'request resent by the browser', connection: true, logged: ['resend', 'resent'] },
];

const reset = () => h.httpRequest(emu, 'POST', '/_emulator/reset', {}).then((r) => assert.equal(r.status, 200, r.text));

/** The plugin's objects as the tenant holds them, checked complete and unduplicated. */
async function assertTenantComplete(what) {
  const state = await h.emulatorState(emu);
  const o = h.pluginObjects(state);
  assert.equal(o.apps.length, 1, `${what}: one app`);
  assert.equal(o.sps.length, 1, `${what}: one service principal`);
  assert.equal((o.app.owners || []).length, 1, `${what}: one owner entry (${JSON.stringify(o.app.owners)})`);
  assert.equal(o.app.passwordCredentials.length, 1, `${what}: one client secret on the app (${o.app.passwordCredentials.map((p) => p.displayName).join(', ')})`);
  assert.equal(o.app.keyCredentials.length, 1, `${what}: one certificate on the app`);
  // Every requested application permission is assigned once, every delegated scope granted once.
  const wantRoles = o.app.requiredResourceAccess.flatMap((r) => r.resourceAccess.filter((a) => a.type === 'Role').map((a) => a.id)).sort();
  const gotRoles = o.assignments.map((a) => a.appRoleId).sort();
  assert.deepEqual(gotRoles, wantRoles, `${what}: every app role assigned once`);
  const wantScopes = o.app.requiredResourceAccess.filter((r) => r.resourceAccess.some((a) => a.type === 'Scope')).length;
  assert.equal(o.grants.length, wantScopes, `${what}: one delegated grant per resource with scopes`);
  return { state, ...o };
}

/** The downloaded .conf matches Graph and authenticates; nothing secret is left in storage or the URL. */
async function assertDelivered(s, what, o) {
  const confPath = await h.download(s.page, 'download-config', out);
  const conf = h.readConf(confPath);
  assert.equal(conf.appid, o.app.appId, `${what}: the .conf's appid is the app's`);
  assert.equal(conf.objectid, o.sp.id, `${what}: the .conf's objectid is the service principal's`);
  const tok = await h.tokenWithConf(emu, conf);
  assert.equal(tok.status, 200, `${what}: the .conf's secret gets a token: ${JSON.stringify(tok.json)}`);
  assert.ok(tok.json.access_token, `${what}: an access token`);
  const kept = await s.page.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, u: location.href, n: window.name }));
  for (const [label, v] of [['client secret', conf.secret], ['PFX password', conf.sharepoint_certificate_password]]) {
    assert.ok(!kept.includes(v), `${what}: the ${label} is in storage or the URL`);
  }
  assert.ok(!/[?#&](code|access_token|id_token)=/.test(s.page.url()), `${what}: no code or token in the address bar`);
}

/** A fresh signed-in page (the emulator just reset). */
async function signedIn(t) {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  await h.signIn(s.page, h.ADMIN);
  await s.page.getByTestId('plan').waitFor();
  return s;
}

const lastSeq = (log) => (log.length ? log[log.length - 1].seq : 0);

test('add-app survives one fault on each Graph step', { timeout: 900_000 }, async (t) => {
  const table = [];
  for (const st of STEPS) {
    for (const k of KINDS) {
      // A replication 404 only happens on objects this run created.
      if (k.kind === 'lag404' && !st.created) continue;
      if (k.connection && st.inBatch) continue;
      const what = `${st.step} × ${k.label}`;
      await t.test(what, async (tt) => {
        await reset();
        const s = await signedIn(tt);
        const rule = { match: st.match, nth: st.nth, kind: k.kind };
        if (k.retry_after_s) rule.retry_after_s = k.retry_after_s;
        await h.setFaults(emu, [rule]);
        const seq0 = lastSeq(await h.emulatorLog(emu));
        const t0 = Date.now();
        await s.page.getByTestId('create-button').click();
        await h.waitAllStepsDone(s.page, 120_000);
        const ms = Date.now() - t0;
        const state = await h.emulatorState(emu);
        assert.equal(state.config.faults[0].fired, 1, `${what}: the fault fired once`);
        const log = (await h.emulatorLog(emu)).filter((e) => e.seq > seq0);
        const faulted = log.filter((e) => e.fault);
        // A resent request is logged twice: the attempt whose answer was lost, and the resend.
        assert.deepEqual(faulted.map((e) => e.fault), k.logged || [faulted[0]?.fault].filter(Boolean), `${what}: the faulted request (${JSON.stringify(faulted)})`);
        assert.ok(faulted.length >= 1, `${what}: a faulted request`);
        if (k.retry_after_s) {
          const f = faulted[0];
          // Its retry: the same call later, not a sibling in the same $batch.
          const again = log.find((e) => e.seq > f.seq && e.method === f.method && e.path === f.path && !e.fault && (f.batch_of == null || e.batch_of !== f.batch_of));
          assert.ok(again, `${what}: the throttled call was retried`);
          assert.ok(again.time_ms - f.time_ms >= k.retry_after_s * 1000, `${what}: retried after ${again.time_ms - f.time_ms} ms, Retry-After ${k.retry_after_s} s`);
        }
        const o = await assertTenantComplete(what);
        await assertDelivered(s, what, o);
        await s.assertHealthy();
        table.push(`${what}: ${(ms / 1000).toFixed(1)} s, ${h.graphRequests(log).length} Graph requests`);
      });
    }
  }
  t.diagnostic(table.join('\n'));
  const skipped = STEPS.filter((s) => !s.created).length + STEPS.filter((s) => s.inBatch).length * KINDS.filter((k) => k.connection).length;
  assert.equal(table.length, STEPS.length * KINDS.length - skipped, 'every case ran');
});

// A reload at each step boundary: the first request of the next step is held by the emulator
// (it has already acted on it: the object or the secret exists) while the page is reloaded. After
// signing in again, Create resumes: no duplicate, and the secret the page never delivered is gone.
test('a reload at each step boundary resumes without duplicates or orphan secrets', { timeout: 600_000 }, async (t) => {
  const boundaries = STEPS.slice(1, 6); // before app, service-principal, secret, owner, grants
  const table = [];
  for (let i = 0; i < boundaries.length; i++) {
    const next = boundaries[i];
    const prev = STEPS[i].step;
    const what = `reload between ${prev} and ${next.step}`;
    await t.test(what, async (tt) => {
      await reset();
      const s = await signedIn(tt);
      const { page } = s;
      await h.setFaults(emu, [{ match: next.match, nth: next.nth, kind: 'latency', latency_ms: 20_000 }]);
      await page.getByTestId('create-button').click();
      await h.waitStep(page, prev, 'done', 60_000);
      // The held request has reached the emulator (and been acted on).
      const end = Date.now() + 30_000;
      while (!(await h.emulatorLog(emu)).some((e) => e.fault === 'latency')) {
        assert.ok(Date.now() < end, `${what}: the held request never arrived`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const before = h.pluginObjects(await h.emulatorState(emu));
      await page.reload();
      await h.pageReady(page);
      await h.setFaults(emu, []);
      // Signed out (the token lived in memory only); the page says a run is unfinished.
      assert.equal(await page.getByTestId('signed-in-user').count(), 0, `${what}: signed out after the reload`);
      assert.match(await page.getByTestId('resume-note').textContent(), /interrupted.*press Create/, `${what}: the page says the run will be finished`);
      await h.signIn(page, h.ADMIN);
      await page.getByTestId('plan').waitFor();
      await page.getByTestId('create-button').click();
      await h.waitAllStepsDone(page, 120_000);
      const o = await assertTenantComplete(what);
      if (before.apps.length) assert.equal(o.app.id, before.app.id, `${what}: the same app object`);
      if (before.app && before.app.passwordCredentials.length) {
        const old = before.app.passwordCredentials.map((p) => p.keyId);
        assert.ok(!o.app.passwordCredentials.some((p) => old.includes(p.keyId)), `${what}: the undelivered secret was removed`);
      }
      await assertDelivered(s, what, o);
      await s.assertHealthy();
      table.push(`${what}: before the reload ${before.apps.length} app / ${before.sps.length} SP / ${before.app ? before.app.passwordCredentials.length : 0} secret(s); after: complete`);
    });
  }
  t.diagnostic(table.join('\n'));
  assert.equal(table.length, boundaries.length, 'every boundary ran');
});

// A run that fails before its secret exists offers nothing to download: the .pfx made for it is
// kept for the next Create, not offered as a configuration (found by a helper); the next Create
// reuses it and then offers everything.
test('a run that fails before its secret offers no download; the next Create completes', { timeout: 400_000 }, async (t) => {
  await reset();
  const s = await signedIn(t);
  const { page } = s;
  await h.setFaults(emu, [{ match: { method: 'POST', path_contains: '/addPassword' }, kind: '500', every: 1 }]);
  await page.getByTestId('create-button').click();
  // Persistent 500s: the engine retries within its budget (about 90 s), then gives up.
  await page.locator('[data-testid=error-panel]').first().waitFor({ timeout: 300_000 });
  await h.waitStep(page, 'secret', 'failed', 10_000);
  assert.equal(await page.getByTestId('download-pfx').count(), 0, 'no .pfx offered');
  assert.equal(await page.getByTestId('pfx-password').count(), 0, 'no password shown');
  await h.setFaults(emu, []);
  await page.getByTestId('create-button').click();
  try {
    await h.waitAllStepsDone(page, 120_000);
  } catch (e) {
    const shown = await page.evaluate(() => [...document.querySelectorAll('[data-testid^=step-], [data-testid=error-panel], [data-testid=create-button]')].map((e) => `${e.dataset.testid} ${e.dataset.status || ''} ${e.disabled ?? ''}: ${e.textContent.trim().slice(0, 200)}`).join('\n'));
    throw new Error(`${e.message}\n${shown}`);
  }
  const o = await assertTenantComplete('after the failed run');
  await assertDelivered(s, 'after the failed run', o);
  await s.assertHealthy();
});
