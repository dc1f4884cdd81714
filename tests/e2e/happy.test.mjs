// The whole happy path through the UI, from a fresh page with the registrator NOT yet consented:
// consent (B-1), sign-in, plan, create, downloads; then the files checked by real peers (Java
// Properties, Python msal and cryptography) against the emulator's state; then a second run that
// must create nothing new.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from './harness.mjs';

let emu;
let browser;
const out = h.outDir('happy');

before(async () => {
  // https: Python msal accepts only https authorities (the emulator makes a local CA).
  emu = await h.startEmulator({ https: true });
  browser = await h.launchBrowser();
});
after(async () => {
  await browser?.close();
  await emu?.stop();
});

test('happy path: consent, sign in, create, download; files work with Java and msal; a second run creates nothing', { timeout: 300_000 }, async (t) => {
  const s = await h.openPage(browser, emu);
  t.after(() => s.close());
  const { page } = s;

  // 1. Fresh page: the tenant field starts filled with the emulated tenant's verified domain.
  await s.goto();
  await assert.doesNotReject(page.getByTestId('tenant-input').waitFor());
  assert.equal(await page.getByTestId('tenant-input').inputValue(), h.DOMAIN, 'tenant field pre-filled with the verified domain');
  let state = await h.emulatorState(emu);
  assert.equal(state.registrator?.servicePrincipalId ?? null, null, 'registrator not consented yet');
  await page.screenshot({ path: path.join(out, '1-start.png'), fullPage: true });

  // 2. Authorize the registrator (B-1) through the emulator's real admin-consent flow.
  assert.equal(await h.consent(page), 'success', 'consent landing reports success');
  assert.equal(new URL(page.url()).search, '', 'the landing URL is cleaned');
  state = await h.emulatorState(emu);
  assert.ok(state.registrator?.servicePrincipalId, 'the registrator has a service principal after consent');
  await page.screenshot({ path: path.join(out, '2-consented.png'), fullPage: true });

  // 3. Sign in (auth code + PKCE) as the Global Administrator.
  const who = await h.signIn(page, h.ADMIN);
  assert.match(who, new RegExp(h.ADMIN.replace(/\./g, '\\.')), 'signed-in user shown');
  assert.match(who, new RegExp(emu.tenantId), 'tenant id shown');
  assert.equal(new URL(page.url()).search, '', 'code and state removed from the address bar');
  await page.getByTestId('plan').waitFor();
  assert.ok((await page.getByTestId('plan').textContent()).trim().length > 0, 'the plan lists the calls');
  await page.screenshot({ path: path.join(out, '3-signed-in-plan.png'), fullPage: true });

  // 4. Create: every step reaches done.
  const t0 = Date.now();
  await page.getByTestId('create-button').click();
  const steps = await h.waitAllStepsDone(page, 120_000);
  const createMs = Date.now() - t0;
  t.diagnostic(`create phase ${(createMs / 1000).toFixed(1)} s, steps: ${steps.join(', ')}`);
  for (const name of ['app', 'service-principal', 'secret', 'owner', 'grants']) {
    assert.ok(steps.includes(name), `step-${name} shown (steps: ${steps.join(', ')})`);
  }
  await page.screenshot({ path: path.join(out, '4-done.png'), fullPage: true });

  // 5. Downloads and the password.
  const confPath = await h.download(page, 'download-config', out);
  const pfxPath = await h.download(page, 'download-pfx', out);
  const zipPath = await h.download(page, 'download-zip', out);
  assert.equal(path.basename(confPath), 'bacula_m365_config.conf');
  assert.match(path.basename(pfxPath), /\.pfx$/);
  assert.match(path.basename(zipPath), /\.zip$/);
  const masked = (await page.getByTestId('pfx-password').textContent()).trim();
  await page.getByTestId('show-password').click();
  const pwLocator = page.getByTestId('pfx-password');
  await page.waitForFunction((el) => !/•/.test(el.textContent), await pwLocator.elementHandle());
  const password = (await pwLocator.textContent()).trim();
  assert.notEqual(password, masked, 'show-password reveals the password');
  assert.equal(password.length, 40, 'a 40-character password');
  assert.match(password, /^[\x21-\x7e]+$/, 'ASCII password');
  await page.screenshot({ path: path.join(out, '5-downloads.png'), fullPage: true });

  // 6. The .conf through java.util.Properties, against the emulator's state.
  state = await h.emulatorState(emu);
  const objs = h.pluginObjects(state);
  assert.equal(objs.apps.length, 1, 'exactly one plugin app');
  assert.equal(objs.sps.length, 1, 'exactly one service principal');
  const conf = await h.javaProperties(confPath);
  assert.deepEqual(
    Object.keys(conf).sort(),
    ['appid', 'objectid', 'secret', 'sharepoint_certificate_password', 'sharepoint_certificate_path', 'tenant'],
    'the .conf holds exactly the plugin keys',
  );
  assert.equal(conf.appid, objs.app.appId, 'appid = the app id');
  assert.equal(conf.objectid, objs.sp.id, "objectid = the service principal's object id");
  assert.equal(conf.tenant, emu.tenantId, 'tenant = tenant id');
  assert.ok(conf.sharepoint_certificate_path.endsWith('/' + path.basename(pfxPath)), `certificate path ${conf.sharepoint_certificate_path} ends with the .pfx name`);
  assert.equal(conf.sharepoint_certificate_password, password, 'the .conf password is the one shown');
  assert.match(fs.readFileSync(confPath, 'latin1').split('\n')[0], /^#\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}$/, 'first line is a Java Date comment');

  // 7. Real peers: the secret and the certificate get tokens from the emulator (msal).
  const authority = `${emu.base}/${emu.tenantId}`;
  const bySecret = await h.python(['secret', authority, conf.appid, conf.secret, emu.caPath]);
  assert.equal(bySecret.ok, true, `client-credentials with the secret: ${JSON.stringify(bySecret)}`);
  assert.equal(bySecret.appid, conf.appid);
  assert.equal(bySecret.tid, emu.tenantId);
  const pfx = await h.python(['pfx', pfxPath, conf.sharepoint_certificate_password]);
  assert.equal(pfx.key_bits, 2048, 'RSA 2048');
  assert.match(pfx.subject, /CN=bacula-m365-plugin-standalone/);
  const byCert = await h.python(['cert', authority, conf.appid, pfxPath, conf.sharepoint_certificate_password, emu.caPath]);
  assert.equal(byCert.ok, true, `client-credentials by certificate assertion: ${JSON.stringify(byCert)}`);
  assert.equal(byCert.appid, conf.appid);

  // 8. The zip: the .conf, the .pfx and a Fileset sample.
  const zip = await h.zipEntries(zipPath);
  const names = Object.keys(zip);
  assert.ok(names.includes('bacula_m365_config.conf'), `zip holds the .conf (${names})`);
  assert.ok(names.includes(path.basename(pfxPath)), `zip holds the .pfx (${names})`);
  const fileset = names.find((n) => /fileset/i.test(n));
  assert.ok(fileset, `zip holds a Fileset sample (${names})`);
  assert.match(zip[fileset].toString('utf8'), /Fileset\s*\{[\s\S]*Plugin\s*=\s*"m365:[^"]*bacula_m365_config\.conf/);
  assert.deepEqual(zip[path.basename(pfxPath)], fs.readFileSync(pfxPath), 'the zip .pfx is the downloaded .pfx');
  const zipConf = path.join(out, 'zip-bacula_m365_config.conf');
  fs.writeFileSync(zipConf, zip['bacula_m365_config.conf']);
  assert.deepEqual(await h.javaProperties(zipConf), conf, 'the zip .conf is the downloaded .conf');

  // 9. A second run (reload, sign in again, create) creates nothing new.
  const before = {
    apps: objs.apps.length,
    sps: objs.sps.length,
    owners: objs.app.owners,
    assignments: objs.assignments.length,
    grants: objs.grants.length,
    allAssignments: state.appRoleAssignments.length,
    allGrants: state.oauth2PermissionGrants.length,
    allSps: state.servicePrincipals.length,
    allApps: state.applications.length,
    secrets: (objs.app.passwordCredentials || []).length,
    certificates: (objs.app.keyCredentials || []).length,
  };
  const admin = state.users.find((u) => u.userPrincipalName === h.ADMIN);
  assert.deepEqual(before.owners, [admin.id], 'the admin is the one owner');
  assert.ok(before.assignments > 0, 'app role assignments were made');
  assert.ok(before.grants > 0, 'delegated grants were made');
  assert.equal(before.secrets, 1, 'one client secret');
  assert.equal(before.certificates, 1, 'one certificate');

  await s.goto();
  await h.signIn(page, h.ADMIN);
  await page.getByTestId('create-button').click();
  await h.waitAllStepsDone(page, 120_000);
  await page.screenshot({ path: path.join(out, '6-second-run.png'), fullPage: true });
  const state2 = await h.emulatorState(emu);
  const objs2 = h.pluginObjects(state2);
  assert.deepEqual(
    {
      apps: objs2.apps.length,
      sps: objs2.sps.length,
      owners: objs2.app.owners,
      assignments: objs2.assignments.length,
      grants: objs2.grants.length,
      allAssignments: state2.appRoleAssignments.length,
      allGrants: state2.oauth2PermissionGrants.length,
      allSps: state2.servicePrincipals.length,
      allApps: state2.applications.length,
      secrets: (objs2.app.passwordCredentials || []).length,
      certificates: (objs2.app.keyCredentials || []).length,
    },
    before,
    'the second run created nothing new',
  );
  assert.equal(objs2.app.appId, objs.app.appId, 'same app');
  assert.equal(objs2.sp.id, objs.sp.id, 'same service principal');

  await s.assertHealthy();
});
