// Azure's replication lag and Graph throttling, waited out with visible progress:
//  - a 20-second replication lag of the new app and service principal: some step shows
//    `retrying` with the wait, the run completes; the create phase's wall time and its Graph
//    round trips (from the emulator's log) are printed;
//  - a 429 with Retry-After on one Graph call: the retry comes no earlier than Retry-After.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as h from './harness.mjs';

let browser;
const out = h.outDir('lag');
const LAG_MS = 20_000;

before(async () => {
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A signed-in page against a fresh, pre-consented emulator. */
async function signedIn(t, emuOpts) {
  const emu = await h.startEmulator({ consented: true, ...emuOpts });
  t.after(() => emu.stop());
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  await h.signIn(s.page, h.ADMIN);
  await s.page.getByTestId('plan').waitFor();
  return { emu, s, page: s.page };
}

const lastSeq = (log) => (log.length ? log[log.length - 1].seq : 0);

test('a 20-second replication lag is waited out with visible progress', { timeout: 240_000 }, async (t) => {
  const { emu, s, page } = await signedIn(t, { lagAppMs: LAG_MS, lagSpMs: LAG_MS });
  const seq0 = lastSeq(await h.emulatorLog(emu));

  const t0 = Date.now();
  await page.getByTestId('create-button').click();
  // Visible progress: a step says it is retrying, and why / how long.
  const retrying = page.locator('[data-testid^="step-"][data-status="retrying"]').first();
  await retrying.waitFor({ state: 'attached', timeout: 60_000 });
  const retryText = (await retrying.textContent()).trim().replace(/\s+/g, ' ');
  const retryStep = await retrying.getAttribute('data-testid');
  await page.screenshot({ path: path.join(out, 'lag-retrying.png'), fullPage: true });
  assert.match(retryText, /(wait|retry)/i, `the retrying step says it waits (${retryStep}: ${retryText})`);
  assert.match(retryText, /\d+(\.\d+)?\s*s\b/, `the retrying step shows a time (${retryStep}: ${retryText})`);

  await h.waitAllStepsDone(page, 180_000);
  const wallMs = Date.now() - t0;
  await page.screenshot({ path: path.join(out, 'lag-done.png'), fullPage: true });
  const log = await h.emulatorLog(emu);
  const requests = h.graphRequests(log, seq0);
  const wall = (wallMs / 1000).toFixed(1);
  console.log(`E2E add-app with 20 s lag: ${wall} s, ${requests.length} requests`);
  t.diagnostic(`add-app with 20 s lag: ${wall} s, ${requests.length} Graph requests; retrying shown on ${retryStep}: "${retryText}"`);
  t.diagnostic('requests: ' + requests.map((e) => `${e.method} ${e.path} ${e.status}${e.fault ? ' (' + e.fault + ')' : ''}`).join(' | '));

  // The lag was real (the service principal cannot have been used before it replicated) and
  // the run still produced exactly one app and one service principal with grants.
  assert.ok(wallMs >= LAG_MS - 1000, `the run waited for replication (${wall} s)`);
  const objs = h.pluginObjects(await h.emulatorState(emu));
  assert.equal(objs.apps.length, 1, 'one app');
  assert.equal(objs.sps.length, 1, 'one service principal');
  assert.ok(objs.assignments.length > 0 && objs.grants.length > 0, 'grants made');
  assert.ok(await page.getByTestId('download-config').isEnabled(), 'the config can be downloaded');
  await s.assertHealthy();
});

test('a 429 with Retry-After on one Graph call is honoured', { timeout: 180_000 }, async (t) => {
  const RETRY_AFTER_S = 4;
  const { emu, s, page } = await signedIn(t, {});
  // The first Graph call of the run (a top-level request: a $batch's parts come after it).
  await h.setFaults(emu, [{ match: { path_contains: '/v1.0/' }, nth: 1, kind: '429', retry_after_s: RETRY_AFTER_S }]);
  const seq0 = lastSeq(await h.emulatorLog(emu));

  await page.getByTestId('create-button').click();
  const retrying = page.locator('[data-testid^="step-"][data-status="retrying"]').first();
  await retrying.waitFor({ state: 'attached', timeout: 60_000 });
  const retryText = (await retrying.textContent()).trim().replace(/\s+/g, ' ');
  await page.screenshot({ path: path.join(out, '429-retrying.png'), fullPage: true });
  await h.waitAllStepsDone(page, 120_000);

  const log = (await h.emulatorLog(emu)).filter((e) => e.seq > seq0);
  const faulted = log.filter((e) => e.fault);
  assert.equal(faulted.length, 1, `exactly one injected 429 (${JSON.stringify(faulted)})`);
  const f = faulted[0];
  assert.equal(f.status, 429);
  const retry = log.find((e) => e.seq > f.seq && e.method === f.method && e.path === f.path && !e.fault);
  assert.ok(retry, `the throttled call ${f.method} ${f.path} was retried`);
  const waited = retry.time_ms - f.time_ms;
  t.diagnostic(`429 on ${f.method} ${f.path}; retried after ${(waited / 1000).toFixed(2)} s (Retry-After ${RETRY_AFTER_S} s); step showed "${retryText}"`);
  assert.ok(waited >= RETRY_AFTER_S * 1000, `retried after ${waited} ms, Retry-After was ${RETRY_AFTER_S} s`);
  // Nothing else was sent to that endpoint in between (no early retry).
  const early = log.filter((e) => e.seq > f.seq && e.seq < retry.seq && e.path.startsWith('/v1.0') && !e.batch_of);
  assert.deepEqual(early.map((e) => `${e.method} ${e.path}`), [], 'no Graph call while waiting out the 429');

  const objs = h.pluginObjects(await h.emulatorState(emu));
  assert.equal(objs.apps.length, 1, 'one app');
  assert.equal(objs.sps.length, 1, 'one service principal');
  await s.assertHealthy();
});
