// Issue 7, "Hostile input": a table of crafted redirect URLs (the page is both the admin-consent
// landing page and the sign-in redirect target) and of tenant inputs. Every row runs in a fresh
// context against one emulator and one browser, and checks: no page error, panic, console error or
// CSP violation; a visible message of the expected kind (data-testid and data-status/data-kind)
// that tells the user what to do; nothing injected (no element, no handler run, no dialog); no
// code value in the page's text or storage; the address bar cleaned; and, where the answer is not
// one this page started, no code sent to the token endpoint.
//
// Rows that carry HTML run with the context's CSP bypassed, so that the page's own escaping is
// what is tested (under the CSP an injected handler would be blocked anyway; csp.test.mjs covers
// the header).
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

// ---------------------------------------------------------------------------------------------
// Values

/** Each sets window.__pwned (or adds an element) if it is ever parsed as HTML. */
const EVIL = {
  img: '<img src=x onerror="window.__pwned=1">',
  script: '<script>window.__pwned=2</script>',
  svg: '"><svg onload="window.__pwned=3">',
  bold: "'><b id=injected>bold</b>",
};
const ALL_EVIL = Object.values(EVIL).join(' ');
const CODE = 'HOSTILE-CODE-0123456789abcdef';
/** Words that say what to do next (every message must have one). */
const WHAT_TO_DO = /\b(sign in|start again|try again|check|continue|enter|paste|copy|use|register|choose|wait|remove|find)\b/i;
const TOKEN_PATH = /\/oauth2\/v2\.0\/token$/;

/** A query or fragment from [key, value] pairs (duplicates allowed), each value encoded. */
const enc = (pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');

// ---------------------------------------------------------------------------------------------
// Flows this page starts (to get a genuine pending record and its state)

/** Follows a click on `testid` to the emulator, answering the request there with an inert page:
 * the page's pending record (sessionStorage) is written, and the state is returned. */
async function startIntercepted(s, testid, pathRe) {
  const { page } = s;
  let captured;
  const hit = (u) => u.href.startsWith(emu.base) && pathRe.test(u.pathname);
  await page.route(hit, async (route) => {
    captured = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'intercepted by the end-to-end test' });
  });
  await page.getByTestId(testid).click();
  await page.waitForURL((u) => u.href.startsWith(emu.base));
  await page.unroute(hit);
  assert.ok(captured, `${testid} navigated to the emulator`);
  const state = new URL(captured).searchParams.get('state');
  assert.ok(state && state.length >= 16, `a random state in ${captured}`);
  return state;
}

const startConsent = (s) => startIntercepted(s, 'consent-link', /\/adminconsent$/);
const startSignIn = (s) => startIntercepted(s, 'sign-in-button', /\/oauth2\/v2\.0\/authorize$/);

/** A real sign-in through the emulator, stopped where the emulator redirects back to the page:
 * returns that landing URL (code and state in the query) without loading it, or, with `rewrite`,
 * loads the URL `rewrite` returns instead. */
async function signInLanding(s, rewrite) {
  const { page } = s;
  let landing;
  const pick = (u) => u.href.startsWith(emu.base) && /\/authorize$/.test(u.pathname) && u.searchParams.has('emulator_user');
  await page.route(pick, async (route) => {
    const resp = await route.fetch({ maxRedirects: 0 });
    const loc = resp.headers()['location'];
    if (resp.status() === 302 && loc && loc.startsWith(emu.pageUrl) && new URL(loc).searchParams.has('code')) {
      landing = loc;
      const to = rewrite ? rewrite(loc) : null;
      if (to) return route.fulfill({ status: 302, headers: { Location: to, 'Cache-Control': 'no-store' } });
      return route.fulfill({ status: 200, contentType: 'text/plain', body: 'landing held back by the end-to-end test' });
    }
    return route.fulfill({ response: resp });
  });
  await page.getByTestId('sign-in-button').click();
  await h.pickUser(page, h.ADMIN);
  if (!rewrite) await page.getByText('landing held back by the end-to-end test').waitFor();
  else await page.waitForURL((u) => u.href.startsWith(emu.pageOrigin));
  await page.unroute(pick);
  assert.ok(landing, 'the emulator redirected back with a code');
  return landing;
}

// ---------------------------------------------------------------------------------------------
// Checks

/** What every row checks after the page handled the URL. */
async function checkCommon(s, { secrets = [], tokenCallsBefore, allowTokenCall }) {
  const { page } = s;
  // The address bar: no query, no fragment, so no code or state.
  await page.waitForFunction(() => location.search === '' && location.hash === '');
  assert.doesNotMatch(await page.evaluate(() => location.href), /code=|state=|error=/, 'the address bar is cleaned');
  // Nothing injected, nothing ran.
  const dom = await page.evaluate((origin) => ({
    pwned: window.__pwned,
    injected: document.querySelectorAll('#injected, img, svg, iframe, object, embed, [onerror], [onload]').length,
    scripts: [...document.querySelectorAll('script')].filter((e) => !e.src || !e.src.startsWith(origin + '/') || e.textContent.trim()).map((e) => e.outerHTML),
    text: document.body.innerText,
    // Including collapsed diagnostics (<details>), which innerText leaves out.
    content: document.body.textContent,
    storage: JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }),
  }), emu.pageOrigin);
  assert.equal(dom.pwned, undefined, 'no injected handler ran');
  assert.equal(dom.injected, 0, 'no injected element');
  assert.deepEqual(dom.scripts, [], "no script that is not the page's own");
  assert.deepEqual(s.rec.dialogs, [], 'no dialog');
  for (const v of secrets) {
    assert.ok(!dom.text.includes(v), `the page's text does not show ${v.slice(0, 40)}`);
    assert.ok(!dom.storage.includes(v), `storage does not hold ${v.slice(0, 40)}`);
  }
  if (tokenCallsBefore != null && !allowTokenCall) {
    const calls = (await h.emulatorLog(emu)).filter((e) => e.seq > tokenCallsBefore && e.method === 'POST' && TOKEN_PATH.test(e.path));
    assert.deepEqual(calls, [], 'no code was sent to the token endpoint');
  }
  await s.assertHealthy();
  return dom;
}

/** Waits for the row's expected outcome; returns the message element's text. */
async function expectOutcome(s, expect) {
  const { page } = s;
  if (expect.start) {
    await page.getByTestId('tenant-input').waitFor();
    await page.getByTestId('consent-link').waitFor();
    assert.equal(await page.getByTestId('consent-result').count(), 0, 'no consent result on a plain load');
    assert.equal(await page.getByTestId('error-panel').count(), 0, 'no error on a plain load');
    assert.equal(await page.getByTestId('sign-in-button').isEnabled(), true, 'sign-in is offered');
    return null;
  }
  if (expect.signedIn) {
    const who = await h.afterSignIn(page);
    assert.match(who, /admin@contoso\.onmicrosoft\.com/);
    return who;
  }
  let el;
  if (expect.consent) {
    el = page.locator(`[data-testid=consent-result][data-status="${expect.consent}"]`);
  } else if (expect.panel) {
    el = page.locator(`[data-testid=error-panel][data-kind="${expect.panel}"]`);
  } else {
    throw new Error('row without an expectation');
  }
  const any = page.locator('[data-testid=consent-result], [data-testid=error-panel]').first();
  try {
    await el.first().waitFor({ state: 'visible', timeout: 20_000 });
  } catch (e) {
    const shown = (await any.count())
      ? `${await any.getAttribute('data-testid')} ${await any.getAttribute('data-status')}${await any.getAttribute('data-kind')}: ${(await any.textContent()).trim()}`
      : 'nothing';
    throw new Error(`expected ${JSON.stringify(expect)}, the page shows ${shown}`);
  }
  assert.equal(await page.locator('[data-testid=consent-result], [data-testid=error-panel]').count(), 1, 'exactly one message');
  const text = (await el.textContent()).replace(/\s+/g, ' ').trim();
  assert.ok(text.length > 20, `a message with words: ${text}`);
  assert.match(text, expect.advice || WHAT_TO_DO, `the message says what to do: ${text}`);
  if (expect.notMatch) assert.doesNotMatch(text, expect.notMatch, `the message: ${text}`);
  // The user can start over: the page still offers sign-in (and consent) after any answer.
  await page.getByTestId('sign-in-button').waitFor();
  assert.equal(await page.getByTestId('sign-in-button').isEnabled(), true, 'sign-in is offered again');
  return text;
}

// ---------------------------------------------------------------------------------------------
// The redirect table. `pending`: the flow started first ('signin' | 'consent' | none), its state
// is `st` in `url`. `url(st)`: what follows the page's address ('?…', '#…', or both).

const long = (n, c = 'A') => c.repeat(n);
const ERR_65004 = 'AADSTS65004: User declined to consent to access the app.\r\nTrace ID: 0b7f\r\nCorrelation ID: 9c1e\r\nTimestamp: 2026-12-03 10:00:00Z';

const REDIRECTS = [
  // Missing parameters
  { name: 'nothing at all: the normal start page', url: () => '', expect: { start: true } },
  { name: 'a fragment that is not OAuth: the normal start page', url: () => '#top', expect: { start: true } },
  { name: 'missing state: a code alone', url: () => '?' + enc([['code', CODE]]), secrets: [CODE], expect: { panel: 'state', advice: /sign in again/i } },
  { name: 'missing state: a code alone while a sign-in is pending', pending: 'signin', url: () => '?' + enc([['code', CODE]]), secrets: [CODE], expect: { panel: 'state', advice: /sign in again/i } },
  { name: 'missing code: a state alone while a sign-in is pending', pending: 'signin', url: (st) => '?' + enc([['state', st]]), expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'missing code: an empty code while a sign-in is pending', pending: 'signin', url: (st) => '?' + enc([['code', ''], ['state', st]]), expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'admin_consent without tenant, genuine state: success', pending: 'consent', url: (st) => '?' + enc([['admin_consent', 'True'], ['state', st]]), expect: { consent: 'success', advice: /continue with sign in/i } },
  { name: 'admin_consent without tenant or state', url: () => '?' + enc([['admin_consent', 'True']]), expect: { consent: 'unknown-state' } },
  { name: 'an error without state', url: () => '?' + enc([['error', 'access_denied'], ['error_description', ERR_65004], ['admin_consent', 'True']]), expect: { consent: 'unknown-state' } },
  { name: 'an error without state while a sign-in is pending', pending: 'signin', url: () => '?' + enc([['error', 'access_denied'], ['error_description', 'AADSTS50020: x']]), expect: { panel: 'state', advice: /sign in again/i } },

  // Duplicated parameters
  { name: 'two state', pending: 'signin', url: (st) => '?' + enc([['code', CODE], ['state', st], ['state', st]]), secrets: [CODE], expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'two code', pending: 'signin', url: (st) => '?' + enc([['code', CODE], ['code', CODE + 'x'], ['state', st]]), secrets: [CODE], expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'admin_consent twice with different values', pending: 'consent', url: (st) => '?' + enc([['admin_consent', 'True'], ['admin_consent', 'False'], ['tenant', 'x'], ['state', st]]), expect: { consent: 'error', advice: /start again/i } },
  { name: 'two error_description in the fragment', url: () => '#' + enc([['error', 'x'], ['error_description', 'a'], ['error_description', 'b']]), expect: { consent: 'error', advice: /start again/i } },

  // Unknown state
  { name: 'unknown state with a code, nothing pending', url: () => '?' + enc([['code', CODE], ['state', 'not-a-state-this-page-made']]), secrets: [CODE], expect: { panel: 'state' } },
  { name: 'unknown state with a code while a sign-in is pending', pending: 'signin', url: (st) => '?' + enc([['code', CODE], ['state', st + 'x']]), secrets: [CODE], expect: { panel: 'state' } },

  // A state from another flow
  { name: "a consent's state on a sign-in answer", pending: 'consent', url: (st) => '?' + enc([['code', CODE], ['state', st]]), secrets: [CODE], expect: { panel: 'state' } },
  { name: "a sign-in's state on a consent answer", pending: 'signin', url: (st) => '?' + enc([['admin_consent', 'True'], ['tenant', 'contoso.onmicrosoft.com'], ['state', st]]), expect: { consent: 'unknown-state' } },

  // Very long values
  { name: '100 KB error_description (fragment), genuine consent state', pending: 'consent', url: (st) => '#' + enc([['error', 'invalid_request'], ['error_description', 'AADSTS90033: ' + long(100_000)], ['admin_consent', 'True'], ['state', st]]), expect: { consent: 'error' }, maxText: 6000 },
  // (A server refuses a request line over 64 KB: 15 KB each stays under it.)
  { name: '15 KB error, error_description, error_uri and tenant (query), no state', url: () => '?' + enc([['error', long(15_000, 'e')], ['error_description', long(15_000)], ['error_uri', 'https://x/' + long(3000)], ['tenant', long(3000, 't')], ['admin_consent', 'True']]), expect: { consent: 'unknown-state' }, maxText: 12_000 },
  { name: '10 KB state with a code', url: () => '?' + enc([['code', CODE], ['state', long(10_000, 's')]]), secrets: [CODE, long(200, 's')], expect: { panel: 'state' } },
  { name: '10 KB state with admin_consent', url: () => '?' + enc([['admin_consent', 'True'], ['tenant', 'contoso.onmicrosoft.com'], ['state', long(10_000, 's')]]), secrets: [long(200, 's')], expect: { consent: 'unknown-state' } },
  { name: '10 KB code, genuine sign-in state: redeemed and refused', pending: 'signin', url: (st) => '?' + enc([['code', long(10_000, 'c')], ['state', st]]), secrets: [long(200, 'c')], tokenCall: true, expect: { panel: 'sign-in', advice: /sign in again/i } },
  { name: '20 KB code, genuine sign-in state: too long, not sent', pending: 'signin', url: (st) => '?' + enc([['code', long(20_000, 'c')], ['state', st]]), secrets: [long(200, 'c')], expect: { panel: 'malformed', advice: /sign in again/i } },

  // HTML and script in every parameter
  { name: 'HTML in state (with a code)', url: () => '?' + enc([['code', CODE], ['state', ALL_EVIL]]), secrets: [CODE], html: true, expect: { panel: 'state' } },
  { name: 'HTML in code, genuine sign-in state', pending: 'signin', url: (st) => '?' + enc([['code', ALL_EVIL], ['state', st]]), secrets: [ALL_EVIL, EVIL.script], html: true, tokenCall: true, expect: { panel: 'sign-in', advice: /sign in again/i } },
  { name: 'HTML in error, error_description, error_uri, admin_consent, tenant; genuine consent state', pending: 'consent', url: (st) => '?' + enc([['error', ALL_EVIL], ['error_description', 'AADSTS50011: ' + ALL_EVIL], ['error_uri', ALL_EVIL], ['admin_consent', ALL_EVIL], ['tenant', ALL_EVIL], ['state', st]]), html: true, shownAsText: EVIL.img, expect: { consent: 'error', advice: /redirect uri/i } },
  { name: 'HTML in a sign-in error, genuine sign-in state', pending: 'signin', url: (st) => '?' + enc([['error', ALL_EVIL], ['error_description', ALL_EVIL], ['error_uri', ALL_EVIL], ['state', st]]), html: true, shownAsText: EVIL.svg, expect: { panel: 'sign-in' } },
  { name: 'HTML in tenant, admin_consent=True, no state', url: () => '?' + enc([['admin_consent', 'True'], ['tenant', ALL_EVIL]]), html: true, secrets: ['onerror', 'onload'], expect: { consent: 'unknown-state' } },
  { name: 'HTML in admin_consent, genuine consent state', pending: 'consent', url: (st) => '?' + enc([['admin_consent', ALL_EVIL], ['tenant', 'contoso.onmicrosoft.com'], ['state', st]]), html: true, expect: { consent: 'error', advice: /try again/i } },
  { name: 'HTML in every parameter at once (fragment), nothing pending', url: () => '#' + enc([['error', ALL_EVIL], ['error_description', ALL_EVIL], ['error_uri', ALL_EVIL], ['admin_consent', ALL_EVIL], ['tenant', ALL_EVIL], ['state', ALL_EVIL], ['code', ALL_EVIL]]), html: true, shownAsText: EVIL.script, expect: { consent: 'unknown-state' } },
  { name: 'HTML as a parameter name', url: () => `?${encodeURIComponent(EVIL.img)}=1&code=${CODE}&state=x`, html: true, secrets: [CODE], expect: { panel: 'state' } },

  // Broken percent-encoding
  { name: 'broken percent-encoding in code and state: % and %zz', url: () => '?code=%&state=%zz', expect: { panel: 'state' } },
  { name: 'broken percent-encoding in a consent error: %E0%A4%A, %00, %zz', pending: 'consent', url: (st) => `?error=%E0%A4%A&error_description=%00%zz%E0%A4%A%&admin_consent=True&state=${encodeURIComponent(st)}`, expect: { consent: 'error' } },
  { name: 'broken percent-encoding in tenant and state of a consent answer', url: () => '?admin_consent=True&tenant=%E0%A4%A%00&state=%', expect: { consent: 'unknown-state' } },
  { name: 'a NUL code, genuine sign-in state: redeemed and refused', pending: 'signin', url: (st) => `?code=%00&state=${encodeURIComponent(st)}`, tokenCall: true, expect: { panel: 'sign-in' } },
  { name: 'broken percent-encoding in parameter names: not OAuth', url: () => '?co%de=1&st%zzate=2&%=%', expect: { start: true } },

  // Sign-in errors Microsoft gives for a tenant's policies (found by a helper: said only in the
  // collapsed diagnostics, with generic advice).
  { name: 'MFA required on sign-in, genuine sign-in state', pending: 'signin', url: (st) => '?' + enc([['error', 'interaction_required'], ['error_description', 'AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.'], ['state', st]]), expect: { panel: 'sign-in', advice: /complete every prompt.*Microsoft's message: AADSTS50076/i } },
  { name: 'Conditional Access block on sign-in, genuine sign-in state', pending: 'signin', url: (st) => '?' + enc([['error', 'access_denied'], ['error_description', 'AADSTS53003: Access has been blocked by Conditional Access policies.'], ['state', st]]), expect: { panel: 'sign-in', advice: /Conditional Access policy.*AADSTS53003/i } },

  // A consent answered for another tenant (found by a helper: reported as success).
  { name: 'a consent answer naming no valid tenant, genuine consent state', pending: 'consent', url: (st) => '?' + enc([['admin_consent', 'True'], ['tenant', 'contoso.onmicrosoft.com\r\nSet-Cookie: x=1'], ['state', st]]), expect: { consent: 'other-tenant', advice: /authorize the registrator again/i } },
  { name: 'a consent answer for another tenant id than the one entered, genuine consent state', tenantInput: '72f988bf-86f1-41af-91ab-2d7cd011db47', pending: 'consent', url: (st) => '?' + enc([['admin_consent', 'True'], ['tenant', '11111111-2222-3333-4444-555555555555'], ['state', st]]), expect: { consent: 'other-tenant', advice: /started the consent for tenant 72f988bf-86f1-41af-91ab-2d7cd011db47, but the answer is for tenant 11111111-2222-3333-4444-555555555555/ } },
  { name: 'a consent answer for the tenant id entered, genuine consent state: success', tenantInput: '72f988bf-86f1-41af-91ab-2d7cd011db47', pending: 'consent', url: (st) => '?' + enc([['admin_consent', 'True'], ['tenant', '72F988BF-86F1-41AF-91AB-2D7CD011DB47'], ['state', st]]), expect: { consent: 'success' } },

  // Fragment versus query
  { name: 'a consent answer in the fragment (Entra uses the query), genuine state: accepted', pending: 'consent', url: (st) => '#' + enc([['admin_consent', 'True'], ['tenant', 'contoso.onmicrosoft.com'], ['state', st]]), expect: { consent: 'success' } },
  { name: 'a code in the query and in the fragment', pending: 'signin', url: (st) => `?${enc([['code', CODE], ['state', st]])}#${enc([['code', CODE + 'f'], ['state', st]])}`, secrets: [CODE], expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'an error in the query and a code in the fragment', pending: 'signin', url: (st) => `?${enc([['error', 'access_denied'], ['state', st]])}#${enc([['code', CODE], ['state', st]])}`, secrets: [CODE], expect: { panel: 'malformed', advice: /sign in again/i } },
  { name: 'a code with an unknown state in the query, an unrelated fragment', url: () => `?${enc([['code', CODE], ['state', 'x']])}#top`, secrets: [CODE], expect: { panel: 'state' } },
];

for (const row of REDIRECTS) {
  test(`redirect: ${row.name}`, { timeout: 90_000 }, async (t) => {
    const s = await h.openPage(browser, emu, row.html ? { bypassCSP: true } : {});
    t.after(() => s.close());
    const { page } = s;
    await s.goto();
    let st = null;
    if (row.tenantInput) await page.getByTestId('tenant-input').fill(row.tenantInput);
    if (row.pending === 'signin') st = await startSignIn(s);
    if (row.pending === 'consent') st = await startConsent(s);
    const seq0 = Math.max(0, ...(await h.emulatorLog(emu)).map((e) => e.seq));
    // Leave first: from the page itself, a URL that differs only in its fragment would not load it
    // again (a same-document navigation). sessionStorage (the pending flow) stays.
    await page.goto('about:blank');
    await page.goto(emu.pageUrl + row.url(st));
    await h.pageReady(page);
    const text = await expectOutcome(s, row.expect);
    const dom = await checkCommon(s, { secrets: row.secrets || [], tokenCallsBefore: seq0, allowTokenCall: row.tokenCall });
    if (row.tokenCall) {
      const calls = (await h.emulatorLog(emu)).filter((e) => e.seq > seq0 && e.method === 'POST' && TOKEN_PATH.test(e.path));
      assert.equal(calls.length, 1, 'the code was sent once to the token endpoint');
    }
    if (row.shownAsText) assert.ok(dom.content.includes(row.shownAsText), `the HTML is shown as text: ${row.shownAsText}`);
    if (row.maxText) assert.ok(text.length <= row.maxText, `a long value is cut (${text.length} characters shown)`);
  });
}

// ---------------------------------------------------------------------------------------------
// Real codes: in the fragment, and redeemed twice

test('redirect: a real code in the fragment (the page asked for the query): signed in', { timeout: 90_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  await s.goto();
  const landing = await signInLanding(s, (loc) => {
    const u = new URL(loc);
    return emu.pageUrl + '#' + u.search.slice(1);
  });
  const code = new URL(landing).searchParams.get('code');
  await expectOutcome(s, { signedIn: true });
  await checkCommon(s, { secrets: [code] });
});

test('redirect: a real code redeemed twice: AADSTS54005 said plainly; a replay without the pending sign-in is refused unsent', { timeout: 120_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  // Keep a copy of the pending sign-in as it was when the answer arrived (the page consumes it).
  await s.context.addInitScript(() => {
    const p = sessionStorage.getItem('m365reg.pending');
    if (p) sessionStorage.setItem('e2e.pending-copy', p);
  });
  await s.goto();
  const landing = await signInLanding(s);
  const code = new URL(landing).searchParams.get('code');
  assert.ok(code, 'a real code');

  // 1. The first redemption signs in.
  await page.goto(landing);
  await h.pageReady(page);
  await expectOutcome(s, { signedIn: true });
  await checkCommon(s, { secrets: [code] });
  const pending = await page.evaluate(() => sessionStorage.getItem('e2e.pending-copy'));
  assert.ok(pending, 'the pending sign-in was seen');

  // 2. The same URL again (a reload of a kept link): nothing pending, refused without a token call.
  let seq0 = Math.max(0, ...(await h.emulatorLog(emu)).map((e) => e.seq));
  await page.goto(landing);
  await h.pageReady(page);
  await expectOutcome(s, { panel: 'state', advice: /sign in again/i });
  await checkCommon(s, { secrets: [code], tokenCallsBefore: seq0 });

  // 3. The same URL with the pending sign-in back in place: the code goes to Entra a second time,
  // which answers AADSTS54005; the page says the sign-in was already used.
  await page.evaluate((p) => sessionStorage.setItem('m365reg.pending', p), pending);
  seq0 = Math.max(0, ...(await h.emulatorLog(emu)).map((e) => e.seq));
  await page.goto(landing);
  await h.pageReady(page);
  const text = await expectOutcome(s, { panel: 'sign-in', advice: /already used\. sign in again/i });
  assert.match(text, /AADSTS54005/, 'the diagnostics name AADSTS54005');
  await checkCommon(s, { secrets: [code], tokenCallsBefore: seq0, allowTokenCall: true });
  const calls = (await h.emulatorLog(emu)).filter((e) => e.seq > seq0 && e.method === 'POST' && TOKEN_PATH.test(e.path));
  assert.deepEqual(calls.map((c) => c.status), [400], 'one token call, refused');
});

// ---------------------------------------------------------------------------------------------
// The tenant field. `ok`: accepted (then `as`: the tenant in the consent URL); otherwise the
// message (data-testid tenant-message, class field-error unless `hint`) matches `says`.

const GUID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const TENANTS = [
  { name: 'empty', input: '', hint: true, says: /Entra admin center/ },
  { name: 'spaces', input: '    ', hint: true, says: /Entra admin center/ },
  { name: 'common', input: 'common', says: /"common" is not a tenant/ },
  { name: 'organizations', input: 'Organizations', says: /"organizations" is not a tenant/ },
  { name: 'a URL', input: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize', says: /not a URL\. Did you mean contoso\.onmicrosoft\.com\?/ },
  { name: 'an e-mail address', input: 'admin@contoso.onmicrosoft.com', says: /e-mail address.*contoso\.onmicrosoft\.com/ },
  { name: 'a malformed GUID', input: '72f988bf-86f1-41af-91ab-2d7cd011db4g', says: /GUID/ },
  { name: 'a GUID with a missing digit', input: '72f988bf-86f1-41af-91ab-2d7cd011db4', says: /GUID/ },
  { name: 'a 300-character domain', input: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(40)}.com`, says: /253/ },
  { name: 'HTML and script', input: ALL_EVIL, says: /tenant id.*domain/i, notSays: /URL|e-mail/ },
  { name: 'a script tag alone', input: '<script>window.__pwned=4</script>', says: /tenant id.*domain/i, notSays: /URL/ },
  { name: 'a Unicode (IDN) domain', input: 'bücher.example', says: /xn--/ },
  { name: 'the same IDN in punycode', input: 'xn--bcher-kva.example', ok: true, as: 'xn--bcher-kva.example' },
  { name: 'a trailing dot', input: 'contoso.onmicrosoft.com.', says: /contoso\.onmicrosoft\.com\b(?!\.)/ },
  { name: 'a GUID in capitals with spaces', input: `  ${GUID.toUpperCase()} `, ok: true, as: GUID },
  { name: 'a domain in capitals', input: 'Contoso.OnMicrosoft.COM', ok: true, as: 'contoso.onmicrosoft.com' },
];

for (const row of TENANTS) {
  test(`tenant field: ${row.name}`, { timeout: 60_000 }, async (t) => {
    const s = await h.openPage(browser, emu, { bypassCSP: true });
    t.after(() => s.close());
    const { page } = s;
    await s.goto();
    const input = page.getByTestId('tenant-input');
    await input.fill(row.input);
    const msg = page.getByTestId('tenant-message');
    const signIn = page.getByTestId('sign-in-button');
    if (row.ok) {
      await page.locator('[data-testid=tenant-message].hint').waitFor();
      await page.getByTestId('consent-link').waitFor();
      assert.equal(await signIn.isEnabled(), true, 'sign-in is offered');
      const href = new URL(await page.getByTestId('consent-link').getAttribute('href'));
      assert.equal(decodeURIComponent(href.pathname.split('/')[1]), row.as, 'the consent URL names the tenant, normalized');
    } else {
      await page.locator(`[data-testid=tenant-message].${row.hint ? 'hint' : 'field-error'}`).waitFor();
      const text = (await msg.textContent()).trim();
      assert.match(text, row.says, `the message: ${text}`);
      assert.match(text, WHAT_TO_DO, `the message says what to do: ${text}`);
      if (row.notSays) assert.doesNotMatch(text, row.notSays, `the message: ${text}`);
      assert.ok(!text.includes('<'), `the message does not repeat the markup: ${text}`);
      assert.equal(await signIn.isDisabled(), true, 'sign-in is not offered');
      assert.equal(await page.getByTestId('consent-link').count(), 0, 'no consent link');
      await page.getByText('Enter your tenant first.').waitFor();
      // Enter (in the field) and a forced click do nothing either.
      await input.press('Enter');
      await signIn.click({ force: true }).catch(() => {});
      assert.ok(page.url().startsWith(emu.pageOrigin), 'still on the page');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('m365reg.pending')), null, 'no sign-in started');
    }
    assert.equal(await input.inputValue(), row.input, 'the field keeps what was typed');
    await checkCommon(s, {});
  });
}

// ---------------------------------------------------------------------------------------------
// The app name (Options): it names the app in Entra, the certificate and the .pfx file whose path
// the .conf holds, so a name a file system, a zip tool or OData would change is refused up front
// (found by a helper trying to break the page: such names gave a .conf pointing to a file that did
// not exist, or failed after Graph calls with a message blaming the browser).

const APP_NAMES = [
  { name: 'empty', input: '' },
  { name: 'a path', input: '../x' },
  { name: 'Windows path separators', input: '..\\..\\evil' },
  { name: 'file-system specials', input: 'a:b*c?"<>|' },
  { name: 'a space', input: 'bacula plugin' },
  { name: '65 characters', input: 'a'.repeat(65) },
  { name: 'a valid name', input: 'bacula-m365_test.2', ok: true },
];

test('app name: refused up front unless it is safe everywhere it is used', { timeout: 120_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;
  await s.goto();
  await h.signIn(page, h.ADMIN);
  await page.getByTestId('plan').waitFor();
  await page.locator('details.options > summary').click();
  const seq0 = Math.max(0, ...(await h.emulatorLog(emu)).map((e) => e.seq));
  for (const row of APP_NAMES) {
    const input = page.getByTestId('app-name');
    await input.fill(row.input);
    await input.press('Tab');
    if (row.ok) {
      await page.getByTestId('app-name-message').waitFor({ state: 'detached' });
      assert.equal(await page.getByTestId('create-button').isEnabled(), true, `${row.name}: Create is offered`);
      assert.equal(await page.getByTestId('create-blocked').count(), 0, `${row.name}: nothing blocks Create`);
    } else {
      const msg = (await page.getByTestId('app-name-message').textContent()).trim();
      assert.match(msg, /1 to 64 characters/, `${row.name}: ${msg}`);
      assert.equal(await page.getByTestId('create-button').isDisabled(), true, `${row.name}: Create is not offered`);
      assert.match(await page.getByTestId('create-blocked').textContent(), /app name in Options/, `${row.name}: said beside Create`);
      await page.getByTestId('create-button').click({ force: true }).catch(() => {});
    }
  }
  const calls = h.graphRequests(await h.emulatorLog(emu), seq0);
  assert.deepEqual(calls.map((e) => `${e.method} ${e.path}`), [], 'no Graph call was made for a refused name');
  await s.assertHealthy();
});
