// Issue 7, found by a helper trying to break the page: a tab opened from another during a run
// (window.open, the browser's "Duplicate tab") starts with a copy of that tab's sessionStorage,
// including its unfinished run record. It must neither resume that run while the first tab runs
// it or holds its undownloaded secret, nor, once the first tab is done, remove the secret that tab
// delivered (which would kill the downloaded .conf).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('tabs');

before(async () => {
  emu = await h.startEmulator({ consented: true });
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

test("a tab duplicated mid-run neither resumes nor undoes the first tab's run", { timeout: 240_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  await h.setLag(emu, 3000, 8000);
  await s.goto();
  await h.signIn(page, h.ADMIN);
  await page.getByTestId('plan').waitFor();
  await page.getByTestId('create-button').click();
  await h.waitStep(page, 'secret', 'done', 60_000);

  // The second tab, opened from the first: same origin, a copy of its sessionStorage.
  const [page2] = await Promise.all([
    s.context.waitForEvent('page'),
    page.evaluate((u) => { window.open(u); }, s.emu.pageUrl),
  ]);
  await h.pageReady(page2);
  const copied = await page2.evaluate(() => sessionStorage.getItem('m365reg.run'));
  assert.ok(copied && !JSON.parse(copied).complete, `the second tab holds the first's unfinished run record: ${copied}`);

  // While the first tab runs (or holds its new secret undownloaded), the second refuses to run.
  await h.signIn(page2, h.ADMIN);
  await page2.getByTestId('plan').waitFor();
  const seqRefused = Math.max(0, ...(await h.emulatorLog(emu)).map((e) => e.seq));
  await page2.getByTestId('create-button').click();
  await page2.locator('[data-testid=error-panel][data-kind=other-tab]').waitFor();
  const text = await page2.locator('[data-testid=error-panel][data-kind=other-tab]').textContent();
  assert.match(text, /another tab/i);

  // The first tab finishes; its .conf is downloaded and works.
  await h.waitAllStepsDone(page, 120_000);
  const conf = h.readConf(await h.download(page, 'download-config', out));
  assert.equal((await h.tokenWithConf(emu, conf)).status, 200, 'the first tab\'s .conf authenticates');
  const first = h.pluginObjects(await h.emulatorState(emu));
  const ids = (o) => ({ secrets: o.app.passwordCredentials.map((p) => p.keyId), certs: o.app.keyCredentials.map((k) => k.keyId) });

  // Now the second tab's Create: nothing of the first tab's run is removed or replaced.
  await page2.getByTestId('create-button').click();
  await h.waitAllStepsDone(page2, 120_000);
  const log = (await h.emulatorLog(emu)).filter((e) => e.seq > seqRefused);
  const undoing = h.graphRequests(log).filter((e) => /removePassword|removeKey|addKey|addPassword/.test(e.path));
  assert.deepEqual(undoing.map((e) => `${e.method} ${e.path}`), [], 'the second tab removed or added credentials');
  assert.equal((await h.tokenWithConf(emu, conf)).status, 200, 'the first tab\'s .conf still authenticates');
  const o = h.pluginObjects(await h.emulatorState(emu));
  assert.deepEqual(ids(o), ids(first), "the first tab's secret and certificate are the app's, unchanged");
  await s.assertHealthy();
});
