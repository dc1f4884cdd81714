// End-to-end harness: one emulator process per test file (its own free ports, serving the built
// page with its config.json and CSP header), headless Debian Chromium through playwright-core,
// and helpers that drive the page by its data-testid hooks. No sleeps as waits: every wait is on
// a condition (an element, a status, a URL, an event).
//
// Environment: EMULATOR_BIN (default target/debug/emulator), DIST_DIR (default dist),
// CHROMIUM (default /usr/bin/chromium), E2E_OUT (default tests/e2e/out).

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const E2E_DIR = path.join(ROOT, 'tests', 'e2e');
const abs = (p) => (path.isAbsolute(p) ? p : path.join(ROOT, p));
export const EMULATOR_BIN = abs(process.env.EMULATOR_BIN || 'target/debug/emulator');
export const DIST_DIR = abs(process.env.DIST_DIR || 'dist');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const OUT_DIR = abs(process.env.E2E_OUT || 'tests/e2e/out');

export const ADMIN = 'admin@contoso.onmicrosoft.com';
export const DOMAIN = 'contoso.onmicrosoft.com';

/** A directory for one test's files (downloads, screenshots), emptied first. */
export function outDir(name) {
  const d = path.join(OUT_DIR, name);
  fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

// ---------------------------------------------------------------------------------------------
// The emulator process

/**
 * Starts `emulator` on free ports with the page from DIST_DIR.
 * opts: consented (registrator pre-consented), lagAppMs, lagSpMs, latencyMs, https (local CA,
 * needed by Python msal which only accepts https authorities), seed, faults (rules, set through
 * the control API once up), scenario (object written to a --scenario file), args (extra flags).
 * Returns { base, pageUrl, pageOrigin, tenantId, domain, https, ca, stop(), output() }.
 */
export async function startEmulator(opts = {}) {
  for (const [what, p] of [['emulator binary (EMULATOR_BIN)', EMULATOR_BIN], ['built page (DIST_DIR)', path.join(DIST_DIR, 'index.html')]]) {
    if (!fs.existsSync(p)) {
      throw new Error(`${what} not found at ${p}: build it first (scripts/test.sh does: trunk build --release; cargo build --features emulator --bin emulator)`);
    }
  }
  const port = await freePort();
  let pagePort = await freePort();
  while (pagePort === port) pagePort = await freePort();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-emulator-'));
  const args = ['--host', '127.0.0.1', '--port', String(port), '--page-dir', DIST_DIR, '--page-port', String(pagePort)];
  if (opts.consented) args.push('--consented');
  if (opts.lagAppMs != null) args.push('--lag-app-ms', String(opts.lagAppMs));
  if (opts.lagSpMs != null) args.push('--lag-sp-ms', String(opts.lagSpMs));
  if (opts.latencyMs != null) args.push('--latency-ms', String(opts.latencyMs));
  if (opts.seed != null) args.push('--seed', String(opts.seed));
  const caPath = path.join(work, 'emulator-ca.pem');
  if (opts.https) args.push('--https', '--ca-out', caPath);
  if (opts.scenario) {
    const f = path.join(work, 'scenario.json');
    fs.writeFileSync(f, JSON.stringify(opts.scenario));
    args.push('--scenario', f);
  }
  if (opts.args) args.push(...opts.args);

  const proc = spawn(EMULATOR_BIN, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  // Never leave this emulator behind, even if the test process dies without running after().
  const reap = () => proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.removeListener('exit', reap));
  const lines = [];
  const keep = (prefix) => (chunk) => {
    for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(prefix + l);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  proc.stderr.on('data', keep('[emulator stderr] '));
  const info = await new Promise((resolve, reject) => {
    let buf = '';
    const got = {};
    const timer = setTimeout(() => reject(new Error(`emulator did not start in 60 s:\n${lines.join('\n')}`)), 60_000);
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`emulator exited early (${code ?? sig}): ${args.join(' ')}\n${lines.join('\n')}`));
    });
    proc.stdout.on('data', (chunk) => {
      keep('[emulator] ')(chunk);
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        let m;
        if ((m = l.match(/^Emulator: (\S+)/))) got.base = m[1];
        else if ((m = l.match(/^Tenant: (\S+) \(([^,]+), (.*)\)$/))) Object.assign(got, { tenantId: m[1], domain: m[2], tenantName: m[3] });
        else if ((m = l.match(/^Page: (\S+)/))) got.pageUrl = m[1];
        if (got.base && got.pageUrl) {
          clearTimeout(timer);
          proc.removeAllListeners('exit');
          resolve(got);
        }
      }
    });
  });
  const emu = {
    ...info,
    pageOrigin: new URL(info.pageUrl).origin,
    https: !!opts.https,
    ca: opts.https ? fs.readFileSync(caPath, 'utf8') : null,
    caPath: opts.https ? caPath : null,
    proc,
    output: () => lines.join('\n'),
    async stop() {
      if (proc.exitCode != null || proc.signalCode != null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
  // The page server must answer before tests start (it is started after the login server).
  await waitFor(async () => (await httpRequest(emu, 'GET', info.pageUrl)).status === 200, 20_000, 'page server');
  if (opts.faults) await setFaults(emu, opts.faults);
  return emu;
}

async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

/** A plain HTTP(S) request from Node (trusting the emulator's CA). Returns {status, headers, text, json}. */
export function httpRequest(emu, method, url, body) {
  const u = new URL(url, emu.base);
  const mod = u.protocol === 'https:' ? https : http;
  const payload = body == null ? null : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method,
        ca: emu.ca || undefined,
        headers: payload == null ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    if (payload != null) req.write(payload);
    req.end();
  });
}

async function control(emu, method, p, body) {
  const r = await httpRequest(emu, method, emu.base + p, body);
  assert.equal(r.status, 200, `${method} ${p} answered ${r.status}: ${r.text}`);
  return r.json;
}

/** GET /_emulator/state. */
export const emulatorState = (emu) => control(emu, 'GET', '/_emulator/state');
/** GET /_emulator/log → the entries. */
export const emulatorLog = async (emu) => (await control(emu, 'GET', '/_emulator/log')).value;
/** POST /_emulator/faults (replaces the rules). */
export const setFaults = (emu, rules) => control(emu, 'POST', '/_emulator/faults', rules);
/** POST /_emulator/lag. */
export const setLag = (emu, appMs, spMs) => control(emu, 'POST', '/_emulator/lag', { app_ms: appMs, sp_ms: spMs });

/** The plugin app, its service principal and everything hanging off it, from the state. */
export function pluginObjects(state, appName = 'bacula-m365-plugin-standalone') {
  const apps = state.applications.filter((a) => a.displayName === appName || a.uniqueName === appName);
  const app = apps[0];
  const sps = app ? state.servicePrincipals.filter((s) => s.appId === app.appId) : [];
  const sp = sps[0];
  const assignments = sp ? state.appRoleAssignments.filter((a) => a.principalId === sp.id) : [];
  const grants = sp ? state.oauth2PermissionGrants.filter((g) => g.clientId === sp.id) : [];
  return { apps, app, sps, sp, assignments, grants };
}

// ---------------------------------------------------------------------------------------------
// The browser

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** Browser console noise that is not the page's own output: failed network loads (every 4xx/5xx
 * answer the flow provokes on purpose, e.g. replication 404s, throttling 429s). */
const NETWORK_NOISE = /^Failed to load resource: /;

/**
 * A fresh context and page against `emu`, recording page errors, console messages, CSP
 * violations (via an init script + binding, so they survive navigations), the page's document
 * responses (for the CSP header) and dialogs (accepted and recorded).
 * ctxOpts: extra Playwright context options (e.g. bypassCSP for a test that must inject a script).
 */
export async function openPage(browser, emu, ctxOpts = {}) {
  const context = await browser.newContext({
    acceptDownloads: true,
    ignoreHTTPSErrors: emu.https,
    viewport: { width: 1200, height: 900 },
    ...ctxOpts,
  });
  context.setDefaultTimeout(60_000);
  const rec = { pageErrors: [], console: [], csp: [], documents: [], dialogs: [] };
  const cspWaiters = [];
  await context.exposeBinding('__e2eCspViolation', ({ frame }, v) => {
    rec.csp.push({ ...v, frameUrl: frame.url() });
    for (const w of cspWaiters.splice(0)) w();
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      // The binding is installed by the test harness through the DevTools protocol.
      window.__e2eCspViolation({
        directive: e.violatedDirective,
        effective: e.effectiveDirective,
        blocked: e.blockedURI,
        source: e.sourceFile,
        line: e.lineNumber,
        sample: e.sample,
        origin: location.origin,
      });
    });
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => rec.pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (m) => rec.console.push({ type: m.type(), text: m.text(), url: page.url() }));
  page.on('dialog', (d) => {
    rec.dialogs.push({ type: d.type(), message: d.message() });
    d.accept().catch(() => {});
  });
  page.on('response', (r) => {
    if (r.request().resourceType() === 'document' && r.url().startsWith(emu.pageOrigin)) {
      rec.documents.push({ url: r.url(), status: r.status(), csp: r.headers()['content-security-policy'] });
    }
  });
  const s = {
    context,
    page,
    rec,
    emu,
    /** Opens the page (optionally with a query string, e.g. a landing). */
    async goto(query = '') {
      await page.goto(emu.pageUrl + query);
      await pageReady(page);
    },
    /** Asserts the page never threw, never panicked, logged no error, hit no CSP violation, and
     * every page document came with the CSP header. Call at the end of a test. */
    async assertHealthy({ allowCsp = false } = {}) {
      assert.deepEqual(rec.pageErrors, [], 'the page threw');
      if (!page.isClosed() && page.url().startsWith(emu.pageOrigin)) {
        assert.equal(await page.locator('[data-testid=error-panel].fatal').count(), 0, 'the page panicked (fatal error panel)');
      }
      if (!allowCsp) {
        const ours = rec.csp.filter((v) => v.origin === emu.pageOrigin);
        assert.deepEqual(ours, [], 'Content-Security-Policy violations on the page');
      }
      const errors = rec.console.filter((m) => m.type === 'error' && !NETWORK_NOISE.test(m.text) && m.url.startsWith(emu.pageOrigin));
      assert.deepEqual(errors, [], 'console errors on the page');
      assert.ok(rec.documents.length > 0, 'the page was loaded');
      for (const d of rec.documents) {
        assert.ok(d.csp, `no Content-Security-Policy header on ${d.url}`);
        assert.match(d.csp, /script-src 'self'/, `weak CSP on ${d.url}: ${d.csp}`);
      }
    },
    /** Resolves at the next recorded CSP violation (or at once if one is already recorded). */
    cspViolation(timeoutMs = 10_000) {
      if (rec.csp.length) return Promise.resolve(rec.csp[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no CSP violation recorded')), timeoutMs);
        cspWaiters.push(() => {
          clearTimeout(timer);
          resolve(rec.csp[0]);
        });
      });
    },
    async close() {
      await context.close().catch(() => {});
    },
  };
  return s;
}

/** Waits for the page to have booted: the tenant field, or an error panel (then throws with its text). */
export async function pageReady(page) {
  const first = page.locator('[data-testid=tenant-input], [data-testid=error-panel], .boot-error').first();
  await first.waitFor({ state: 'visible' });
  if ((await first.getAttribute('data-testid')) !== 'tenant-input') {
    // The tenant field may still come (an error panel can sit beside it); give it a moment only if
    // the panel is not fatal.
    const fatal = await page.locator('[data-testid=error-panel].fatal, .boot-error').count();
    if (fatal || !(await page.getByTestId('tenant-input').count())) {
      throw new Error(`the page did not boot: ${await first.textContent()}`);
    }
  }
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Sign-in through the UI: sign-in-button, pick the user on the emulator, accept consent if
 * prompted, back on the page until signed-in-user shows. Throws with the page's error text. */
export async function signIn(page, upn = ADMIN) {
  await byTestId(page, 'sign-in-button').click();
  await pickUser(page, upn);
  const next = page.locator('[data-testid=emulator-accept], [data-testid=signed-in-user], [data-testid=error-panel], [data-testid=emulator-error]').first();
  await next.waitFor({ state: 'visible' });
  if ((await next.getAttribute('data-testid')) === 'emulator-accept') await next.click();
  return afterSignIn(page);
}

/** On the emulator's account picker: choose `upn`. */
export async function pickUser(page, upn) {
  const user = page.locator(`[data-testid=emulator-user][data-upn="${upn}"]`);
  const first = page.locator(`[data-testid=emulator-user][data-upn="${upn}"], [data-testid=emulator-error]`).first();
  await first.waitFor({ state: 'visible' });
  if ((await first.getAttribute('data-testid')) === 'emulator-error') {
    throw new Error(`the emulator refused the request: ${await first.textContent()} (at ${page.url()})`);
  }
  await user.click();
}

/** Waits until the page shows the signed-in user; throws with an error panel's text. */
export async function afterSignIn(page) {
  const done = page.locator('[data-testid=signed-in-user], [data-testid=error-panel], [data-testid=emulator-error]').first();
  await done.waitFor({ state: 'visible' });
  const id = await done.getAttribute('data-testid');
  if (id !== 'signed-in-user') throw new Error(`sign-in failed (${id}): ${(await done.textContent()).trim()}`);
  return (await done.textContent()).trim();
}

/** Admin consent (B-1) through the UI: consent-link, user, accept (or cancel). Returns the
 * landing's consent-result data-status. */
export async function consent(page, { cancel = false, upn = ADMIN } = {}) {
  await byTestId(page, 'consent-link').click();
  await pickUser(page, upn);
  const button = page.locator(`[data-testid=${cancel ? 'emulator-cancel' : 'emulator-accept'}], [data-testid=consent-result], [data-testid=emulator-error]`).first();
  await button.waitFor({ state: 'visible' });
  const id = await button.getAttribute('data-testid');
  if (id === 'emulator-error') throw new Error(`the emulator refused the consent: ${await button.textContent()}`);
  if (id !== 'consent-result') await button.click();
  const result = byTestId(page, 'consent-result');
  await result.waitFor({ state: 'visible' });
  return result.getAttribute('data-status');
}

/** Waits until step-<name> has data-status=status. */
export async function waitStep(page, name, status, timeout = 30_000) {
  await page.locator(`[data-testid="step-${name}"][data-status="${status}"]`).waitFor({ state: 'attached', timeout });
}

/**
 * Waits until every step-* is done; fails fast (with the text) when one fails or an error panel
 * shows. Returns the step names.
 */
export async function waitAllStepsDone(page, timeout = 120_000) {
  const h = await page.waitForFunction(
    () => {
      const panel = document.querySelector('[data-testid=error-panel]');
      if (panel) return 'error panel: ' + panel.textContent.trim().replace(/\s+/g, ' ');
      const steps = [...document.querySelectorAll('[data-testid^="step-"]')];
      const failed = steps.filter((s) => s.dataset.status === 'failed');
      if (failed.length) return 'failed: ' + failed.map((s) => s.dataset.testid + ': ' + s.textContent.trim()).join(' | ');
      if (document.querySelector('[data-testid=generating]')) return false;
      return steps.length > 0 && steps.every((s) => s.dataset.status === 'done') ? 'ok' : false;
    },
    null,
    { timeout, polling: 100 },
  );
  const v = await h.jsonValue();
  if (v !== 'ok') throw new Error(`the run did not complete: ${v}`);
  return page.locator('[data-testid^="step-"]').evaluateAll((els) => els.map((e) => e.dataset.testid.slice(5)));
}

/** Clicks a download button, saves the file into `dir`, returns its path. */
export async function download(page, testid, dir) {
  const [dl] = await Promise.all([page.waitForEvent('download'), byTestId(page, testid).click()]);
  const failure = await dl.failure();
  if (failure) throw new Error(`download ${testid} failed: ${failure}`);
  const p = path.join(dir, dl.suggestedFilename());
  await dl.saveAs(p);
  return p;
}

/** Same, by keyboard: the element must already have focus; `key` is Enter or Space. */
export async function downloadByKey(page, key, dir) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.keyboard.press(key)]);
  const p = path.join(dir, dl.suggestedFilename());
  await dl.saveAs(p);
  return p;
}

/** Presses Tab until the element with data-testid `id` has focus (at most `max` presses);
 * fails if it never does (i.e. it is not reachable by keyboard). */
export async function tabTo(page, id, max = 80) {
  for (let i = 0; i < max; i++) {
    const cur = await page.evaluate(() => document.activeElement && document.activeElement.getAttribute('data-testid'));
    if (cur === id) return i;
    await page.keyboard.press('Tab');
  }
  throw new Error(`${id} was not reached with ${max} Tab presses`);
}

// ---------------------------------------------------------------------------------------------
// Real peers (Java, Python)

/** java.util.Properties reading the file (Java's own parser), as an object. */
export async function javaProperties(file) {
  const { stdout } = await execFileP('java', [path.join(E2E_DIR, 'peers', 'PropsRead.java'), file], { timeout: 120_000 });
  return JSON.parse(stdout);
}

/** Runs tests/e2e/peers/msal_token.py with args; returns its JSON (it exits 0 also on a refused token:
 * the result says ok:false with the error). */
export async function python(args) {
  try {
    const { stdout } = await execFileP('python3', [path.join(E2E_DIR, 'peers', 'msal_token.py'), ...args], { timeout: 120_000, maxBuffer: 16 << 20 });
    return JSON.parse(stdout);
  } catch (e) {
    throw new Error(`msal_token.py ${args[0]} failed: ${e.stderr || e.message}`);
  }
}

/** The entries of a zip (names and bytes, CRCs checked) through Python's zipfile. */
export async function zipEntries(file) {
  const code = [
    'import zipfile, sys, json, base64',
    'z = zipfile.ZipFile(sys.argv[1])',
    'bad = z.testzip()',
    'print(json.dumps({"bad": bad, "entries": {i.filename: base64.b64encode(z.read(i)).decode() for i in z.infolist()}}))',
  ].join('\n');
  const { stdout } = await execFileP('python3', ['-c', code, file], { maxBuffer: 16 << 20 });
  const r = JSON.parse(stdout);
  assert.equal(r.bad, null, `corrupt zip entry ${r.bad}`);
  return Object.fromEntries(Object.entries(r.entries).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

/** Graph requests the page made (top-level, not $batch parts) after log sequence `afterSeq`. */
export function graphRequests(log, afterSeq = 0) {
  return log.filter((e) => e.seq > afterSeq && !e.batch_of && (e.path === '/v1.0' || e.path.startsWith('/v1.0/')));
}

/** A bacula_m365_config.conf read the way java.util.Properties reads the values it holds (the
 * escapes our writer uses; javaProperties() runs Java itself). */
export function readConf(file) {
  const o = {};
  for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^((?:[^=:\\]|\\.)*)[=:](.*)$/);
    if (m) o[m[1].replace(/\\(.)/g, '$1')] = m[2].replace(/\\(.)/g, '$1');
  }
  return o;
}

/** A client-credentials token from the emulator with a .conf's appid and secret. */
export async function tokenWithConf(emu, conf) {
  const body = new URLSearchParams({
    client_id: conf.appid,
    client_secret: conf.secret,
    grant_type: 'client_credentials',
    scope: 'https://graph.microsoft.com/.default',
  });
  const r = await fetch(`${emu.base}/${conf.tenant}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body,
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}
