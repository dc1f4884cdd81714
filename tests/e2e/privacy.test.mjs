// Issue 7, "Nothing left behind": after the whole flow (consent, sign-in, create, downloads), no
// access token, id token, authorization code, PKCE verifier, client secret, PFX password or private
// key material is in localStorage, sessionStorage, IndexedDB, Cache Storage, cookies, window.name,
// the address bar, any history entry or any console message. The values are the real ones of this
// run: the token response and the code are intercepted on the wire, the secret and the password
// come from the downloaded .conf, the key from the downloaded .pfx.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('privacy');

before(async () => {
  emu = await h.startEmulator({});
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

/** Slices of a long value (a store could hold it whole, or wrapped in lines). */
function slices(label, value, len = 32) {
  const v = String(value);
  if (v.length <= len * 2) return [{ label, value: v }];
  const out = [];
  for (const at of [8, Math.floor(v.length / 2) - len / 2, v.length - len - 8]) out.push({ label: `${label}[${at}..]`, value: v.slice(at, at + len) });
  return out;
}

test('nothing left behind: storage, cookies, URL, history and console hold no secret', { timeout: 240_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page, context } = s;

  // Learn the real values on the wire.
  const wire = { codes: [], verifiers: [], tokens: [] };
  page.on('request', (r) => {
    const u = r.url();
    if (r.isNavigationRequest() && u.startsWith(emu.pageOrigin)) {
      const code = new URL(u).searchParams.get('code');
      if (code) wire.codes.push(code);
    }
    if (r.method() === 'POST' && /\/oauth2\/v2\.0\/token$/.test(new URL(u).pathname)) {
      const form = new URLSearchParams(r.postData() || '');
      if (form.get('code_verifier')) wire.verifiers.push(form.get('code_verifier'));
      if (form.get('code')) wire.codes.push(form.get('code'));
    }
  });
  const tokenBodies = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && /\/oauth2\/v2\.0\/token$/.test(new URL(r.url()).pathname)) {
      tokenBodies.push(r.json().then((j) => wire.tokens.push(j)).catch(() => {}));
    }
  });

  await s.goto();
  assert.equal(await h.consent(page), 'success');
  await h.signIn(page, h.ADMIN);
  await page.getByTestId('create-button').click();
  await h.waitAllStepsDone(page, 120_000);
  const confPath = await h.download(page, 'download-config', out);
  const pfxPath = await h.download(page, 'download-pfx', out);
  await h.download(page, 'download-zip', out);
  await Promise.all(tokenBodies);

  // The secrets of this run.
  const conf = await h.javaProperties(confPath);
  const pfx = await h.python(['pfx', pfxPath, conf.sharepoint_certificate_password]);
  const jwk = crypto.createPrivateKey({ key: Buffer.from(pfx.key_pkcs8_b64, 'base64'), format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
  assert.ok(wire.codes.length >= 1 && wire.codes[0].length > 10, 'the authorization code was seen on the wire');
  assert.ok(wire.verifiers.length >= 1 && wire.verifiers[0].length >= 43, 'the PKCE verifier was seen on the wire');
  assert.ok(wire.tokens.length >= 1 && wire.tokens[0].access_token, 'the token response was seen on the wire');
  assert.ok(conf.secret && conf.secret.length >= 16, 'the .conf holds a secret');
  assert.equal(conf.sharepoint_certificate_password.length, 40, 'the .conf holds the password');

  const secrets = [];
  for (const c of wire.codes) secrets.push(...slices('authorization code', c));
  for (const v of wire.verifiers) secrets.push({ label: 'PKCE verifier', value: v });
  for (const tok of wire.tokens) {
    secrets.push(...slices('access token', tok.access_token));
    if (tok.id_token) secrets.push(...slices('id token', tok.id_token.split('.')[2] || tok.id_token));
    if (tok.refresh_token) secrets.push(...slices('refresh token', tok.refresh_token));
  }
  secrets.push({ label: 'client secret', value: conf.secret });
  secrets.push({ label: 'PFX password', value: conf.sharepoint_certificate_password });
  // Key material: the PKCS#8 key as base64 (slices inside one 64-character PEM line), as hex, as
  // JWK members; the PFX itself as base64.
  for (const line of [2, 8, 14]) secrets.push({ label: `private key (PEM line ${line})`, value: pfx.key_pkcs8_b64.slice(line * 64 + 8, line * 64 + 48) });
  secrets.push(...slices('private key (hex)', pfx.key_pkcs8_hex, 40));
  for (const m of ['d', 'p', 'q']) secrets.push(...slices(`private key (JWK ${m})`, jwk[m]));
  secrets.push(...slices('PFX (base64)', fs.readFileSync(pfxPath).toString('base64').slice(200)));
  for (const x of secrets) assert.ok(x.value && x.value.length >= 8, `usable needle for ${x.label}`);

  // Everything the browser keeps that a script or the next user could read.
  const inPage = await page.evaluate(async () => {
    const dump = (st) => Object.fromEntries(Array.from({ length: st.length }, (_, i) => st.key(i)).map((k) => [k, st.getItem(k)]));
    const idb = {};
    const dbs = (await indexedDB.databases?.()) || [];
    for (const info of dbs) {
      const db = await new Promise((res, rej) => {
        const r = indexedDB.open(info.name);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      idb[info.name] = {};
      for (const store of db.objectStoreNames) {
        const all = await new Promise((res) => {
          const q = db.transaction(store).objectStore(store).getAll();
          q.onsuccess = () => res(q.result);
          q.onerror = () => res([]);
        });
        idb[info.name][store] = JSON.stringify(all, (k, v) => (v instanceof CryptoKey ? '[CryptoKey: key material]' : v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? Array.from(new Uint8Array(v.buffer || v)).map((b) => b.toString(16).padStart(2, '0')).join('') : v));
      }
      db.close();
    }
    const cacheUrls = [];
    if (self.caches) for (const name of await caches.keys()) for (const req of await (await caches.open(name)).keys()) cacheUrls.push(name + ' ' + req.url);
    return {
      localStorage: dump(localStorage),
      sessionStorage: dump(sessionStorage),
      indexedDB: idb,
      caches: cacheUrls,
      windowName: window.name,
      url: location.href,
      historyLength: history.length,
      dom: document.documentElement.outerHTML,
    };
  });
  const cookies = await context.cookies();
  const cdp = await context.newCDPSession(page);
  const { entries } = await cdp.send('Page.getNavigationHistory');
  assert.equal(entries.length, inPage.historyLength, 'every history entry observed');

  const places = {
    localStorage: JSON.stringify(inPage.localStorage),
    sessionStorage: JSON.stringify(inPage.sessionStorage),
    indexedDB: JSON.stringify(inPage.indexedDB),
    'Cache Storage': JSON.stringify(inPage.caches),
    cookies: JSON.stringify(cookies),
    'window.name': inPage.windowName,
    'address bar': inPage.url + ' ' + page.url(),
    history: JSON.stringify(entries.map((e) => [e.url, e.userTypedURL, e.title])),
    console: JSON.stringify(s.rec.console.map((m) => m.text)),
  };
  t.diagnostic(`sessionStorage keys: ${Object.keys(inPage.sessionStorage).join(', ') || '(none)'}; localStorage keys: ${Object.keys(inPage.localStorage).join(', ') || '(none)'}; IndexedDB: ${Object.keys(inPage.indexedDB).join(', ') || '(none)'}; cookies: ${cookies.length}; history: ${entries.length} entries; console: ${s.rec.console.length} messages`);
  const findLeaks = (where) => {
    const found = [];
    for (const [place, text] of Object.entries(where)) {
      for (const x of secrets) {
        const forms = [x.value, encodeURIComponent(x.value), JSON.stringify(x.value).slice(1, -1), JSON.stringify(JSON.stringify(x.value)).slice(3, -3)];
        if (forms.some((f) => text.includes(f))) found.push(`${x.label} in ${place}`);
      }
    }
    return found;
  };
  // The check itself works: a probe holding every needle (as JSON, like the stores) is caught.
  assert.equal(findLeaks({ probe: JSON.stringify(secrets.map((x) => 'x' + x.value + 'y')) }).length, secrets.length, 'the leak check finds planted values');
  assert.deepEqual(findLeaks(places), [], 'secrets left behind');
  assert.ok(!places.indexedDB.includes('[CryptoKey'), 'no CryptoKey kept in IndexedDB');
  assert.equal(new URL(inPage.url).search, '', 'no query in the address bar');

  // The DOM never shows the token, the code, the verifier or the key (the password and secret
  // may be shown on request; they were not here).
  const domLeaks = secrets
    .filter((x) => !/client secret|PFX password/.test(x.label))
    .filter((x) => inPage.dom.includes(x.value))
    .map((x) => x.label);
  assert.deepEqual(domLeaks, [], 'secrets in the DOM');

  await s.assertHealthy();
});
