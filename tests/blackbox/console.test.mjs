// The web console (docs/console.md) in Debian's headless Chromium, driven by
// playwright-core, against the real server: every page is used as an
// operator would, and every request the page makes must go to the server's
// own origin. Screenshots of each page land in a temp directory (printed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';

const CHROMIUM = process.env.SV_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  // Not a skip: the console has no other test.
  throw new Error(`console tests need Chromium at ${CHROMIUM}: install Debian's chromium (scripts/deps.sh --test) or set SV_CHROMIUM`);
}
const { chromium } = await import('playwright-core');

const SHOTS = mkdtempSync(path.join(tmpdir(), 'sv-console-shots-'));
const N = 120;
let browser;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  console.log(`# console screenshots: ${SHOTS}`);
});
after(async () => { await browser?.close(); });

// A page that records every request it makes and every error it logs.
async function openPage(srv, width = 1280, height = 800) {
  const ctx = await browser.newContext({ viewport: { width, height } });
  const page = await ctx.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => d.accept());
  return { ctx, page, requests, errors };
}

function assertSameOrigin(srv, requests) {
  const origin = new URL(srv.url).origin;
  assert.ok(requests.length > 5, 'the page made requests');
  for (const u of requests) assert.equal(new URL(u).origin, origin, `request to another origin: ${u}`);
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

async function seed(srv, name, n) {
  let r = await srv.req('POST', '/v1/collections', { name, shards: 2, vectors: { default: { dim: 3 } }, properties: [{ name: 'title', type: 'text' }] });
  assert.equal(r.status, 200, r.text);
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ collection: name, vector: [i, 1, 2], properties: { title: `t${i}` } }));
  r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
  assert.equal(r.json.failed, 0, r.text.slice(0, 300));
}

test('assets: content types, CSP, nosniff, caching; unknown asset 404', async () => {
  const srv = await startServer();
  try {
    for (const [p, type] of [['/console', 'text/html'], ['/console/app.js', 'text/javascript'], ['/console/app.css', 'text/css']]) {
      const r = await srv.req('GET', p);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('content-type'), new RegExp('^' + type), p);
      assert.match(r.headers.get('content-security-policy'), /default-src 'self'; script-src 'self'/);
      assert.match(r.headers.get('content-security-policy'), /frame-ancestors 'none'/);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('cache-control'), 'no-cache');
    }
    assert.equal(readFileSync(new URL('../../src/console/assets/app.js', import.meta.url), 'utf8'), (await srv.req('GET', '/console/app.js')).text,
      'the binary serves the asset as it is in the tree');
    // HEAD is GET without the body (link checkers, proxies)
    const head = await srv.req('HEAD', '/console');
    assert.equal(head.status, 200);
    assert.match(head.headers.get('content-type'), /^text\/html/);
    assert.equal(head.text, '');
    const r = await srv.req('GET', '/console/nope.js');
    assert.equal(r.status, 404);
    assert.match(r.json.error[0].message, /no console asset/);
  } finally { await srv.stop(); srv.cleanup(); }
});

test('console: collection count, snapshot to COMMITTED, restore, export per shard, errors, same origin', async () => {
  const srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '100' } });
  const { ctx, page, requests, errors } = await openPage(srv);
  try {
    await seed(srv, 'Books', N);

    // Overview: the collection with its count; the chart samples.
    await page.goto(srv.url + '/console');
    const row = page.locator('tr[data-collection="Books"]');
    await row.waitFor();
    await page.waitForFunction(() => document.querySelector('tr[data-collection="Books"] .count')?.textContent === '120');
    await page.waitForSelector('svg.chart polyline.b', { state: 'attached' });
    await page.waitForFunction(() => /requests\/s: [1-9]/.test(document.querySelector('.legend .b')?.textContent));
    assert.match(await page.textContent('[data-version]'), /^\d+\.\d+\.\d+/);
    await shot(page, 'overview-1280');

    // A bad collection name: the API's message next to the Open button.
    await page.fill('input[name="collection"]', 'no such name!');
    await page.click('[data-action="open"]');
    const err = page.locator('[data-err="open"]');
    await err.filter({ hasText: /./ }).waitFor();
    const apiMsg = (await srv.req('GET', '/v1/collections/' + encodeURIComponent('no such name!'))).json.error[0].message;
    assert.equal(await err.textContent(), apiMsg);
    await shot(page, 'overview-error-1280');

    // Collection page: count and shards; browse with the cursor.
    await page.goto(srv.url + '/console#/collection/Books');
    await page.waitForSelector('[data-count="120"]');
    assert.equal(await page.locator('tr[data-shard]').count(), 2);
    await page.selectOption('select[name="limit"]', '100');
    await page.click('[data-action="browse"]');
    await page.waitForSelector('tr[data-object]');
    assert.equal(await page.locator('tr[data-object]').count(), 100);
    await page.click('[data-action="next"]');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-object]').length === 20);
    await page.locator('tr[data-object] a').first().click();
    await page.waitForSelector('pre[data-json="object"]');
    assert.match(await page.textContent('pre[data-json="object"]'), /"collection": "Books"/);
    await shot(page, 'collection-1280');

    // Snapshot: create on the page and watch it reach COMMITTED.
    await page.goto(srv.url + '/console#/snapshots/Books');
    await page.fill('input[name="snapshot"]', 's1');
    await page.click('[data-action="create-snapshot"]');
    const snap = page.locator('tr[data-snapshot="s1"] .snap-state');
    await snap.waitFor();
    await page.waitForFunction(() => document.querySelector('tr[data-snapshot="s1"] .snap-state')?.textContent === 'COMMITTED', null, { timeout: 30000 });
    assert.equal(await page.inputValue('select[name="collection"]'), 'Books');
    await shot(page, 'snapshots-1280');

    // Restore under a new name; the new collection has the same count.
    await page.fill('tr[data-snapshot="s1"] input[name="target"]', 'BooksCopy');
    await page.click('[data-action="restore:s1"]');
    await page.waitForFunction(() => document.querySelector('tr[data-restore] .restore-state')?.textContent === 'COMPLETED', null, { timeout: 30000 });
    await page.click('tr[data-restore] a[href="#/collection/BooksCopy"]');
    await page.waitForSelector('[data-count="120"]');
    assert.equal(await page.textContent('[data-name]'), 'BooksCopy');
    // Restoring again into the same name: the API's 409 message on the page.
    await page.goto(srv.url + '/console#/snapshots/Books');
    await page.fill('tr[data-snapshot="s1"] input[name="target"]', 'BooksCopy');
    await page.click('[data-action="restore:s1"]');
    await page.locator('[data-err="restore:s1"]').filter({ hasText: /BooksCopy/ }).waitFor();

    // Jobs page: the snapshot and restore jobs, finished.
    await page.goto(srv.url + '/console#/jobs');
    await page.waitForSelector('tr[data-job]');
    const kinds = await page.locator('tr[data-job] td:nth-child(1)').allTextContents();
    assert.ok(kinds.includes('snapshot') && kinds.includes('restore'), kinds.join());
    await shot(page, 'jobs-1280');

    // Export: start one and watch each shard reach SUCCESS.
    await page.goto(srv.url + '/console#/exports');
    await page.fill('input[name="export-id"]', 'ex1');
    await page.check('input[name="include"][value="Books"]');
    await page.click('[data-action="start-export"]');
    await page.waitForSelector('tr[data-export-shard="Books/shard0000"]');
    await page.waitForFunction(() => {
      const s = [...document.querySelectorAll('tr[data-export-shard] .shard-state')].map((e) => e.textContent);
      return s.length === 2 && s.every((x) => x === 'SUCCESS');
    }, null, { timeout: 30000 });
    await page.waitForFunction(() => document.querySelector('.export-state')?.textContent === 'SUCCESS');
    await page.waitForFunction(() => document.querySelector('#live')?.textContent === 'idle');
    const exported = await page.locator('tr[data-export-shard] td:nth-child(4)').allTextContents();
    assert.equal(exported.map(Number).reduce((a, b) => a + b, 0), N);
    // The polling stopped with the export: no more requests in 2.5 s.
    const before = requests.length;
    await page.waitForTimeout(2500);
    assert.equal(requests.length, before, 'no polling once nothing runs');
    await shot(page, 'exports-1280');
    // An export id the API refuses: its message next to the button.
    await page.fill('input[name="export-id"]', 'Bad Id');
    await page.click('[data-action="start-export"]');
    await page.locator('[data-err="start-export"]').filter({ hasText: /./ }).waitFor();
    // Exclude mode: every collection but the ticked one.
    await page.fill('input[name="export-id"]', 'ex2');
    await page.selectOption('select[name="export-mode"]', 'exclude');
    await page.check('input[name="include"][value="Books"]');
    await page.click('[data-action="start-export"]');
    await page.waitForFunction(() => location.hash === '#/exports/filesystem/ex2');
    const ex2 = await srv.req('GET', '/v1/export/filesystem/ex2');
    assert.equal(ex2.status, 200, ex2.text);
    assert.ok(!ex2.json.classes.includes('Books') && ex2.json.classes.length > 0, JSON.stringify(ex2.json.classes));

    // Narrow screen: each page renders without horizontal overflow of the body.
    await page.setViewportSize({ width: 400, height: 800 });
    for (const [hash, name] of [['#/overview', 'overview'], ['#/collection/Books', 'collection'], ['#/jobs', 'jobs'],
      ['#/snapshots/Books', 'snapshots'], ['#/exports/filesystem/ex1', 'exports']]) {
      await page.goto(srv.url + '/console' + hash);
      await page.waitForSelector('main section');
      await page.waitForTimeout(300);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `${name} at 400 px overflows by ${overflow} px`);
      await shot(page, `${name}-400`);
    }

    assert.deepEqual(errors, [], 'no script errors');
    assertSameOrigin(srv, requests);
  } finally {
    await ctx.close();
    await srv.stop();
    srv.cleanup();
  }
});

test('console with auth: asks for a key; a reader sees no delete buttons, an admin does', async () => {
  const srv = await startServer({ args: ['--auth', 'apikey'] });
  const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
  const auth = { authorization: 'Bearer ' + root };
  const { ctx, page, requests, errors } = await openPage(srv);
  try {
    let r = await srv.req('POST', '/v1/collections', { name: 'Sec', shards: 1 }, auth);
    assert.equal(r.status, 200, r.text);
    r = await srv.req('POST', '/v1/collections/Sec/snapshots?wait=true', { name: 'snap1' }, auth);
    assert.equal(r.status, 200, r.text);
    r = await srv.req('POST', '/v1/authz/keys', { name: 'ro', roles: ['reader'] }, auth);
    assert.equal(r.status, 201, r.text);
    const reader = r.json.key;

    await page.goto(srv.url + '/console#/collection/Sec');
    await page.waitForSelector('input[name="key"]');
    // A wrong key: the message next to Sign in.
    await page.fill('input[name="key"]', 'sv_nope');
    await page.click('[data-action="login"]');
    await page.locator('[data-err="login"]').filter({ hasText: /refused/ }).waitFor();
    await shot(page, 'login-1280');

    await page.fill('input[name="key"]', reader);
    await page.click('[data-action="login"]');
    await page.waitForSelector('[data-count="0"]');
    assert.equal(await page.locator('[data-action="delete-collection"]').count(), 0, 'reader: no delete collection');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sv.key')), reader);
    await page.goto(srv.url + '/console#/snapshots/Sec');
    await page.waitForSelector('tr[data-snapshot="snap1"]');
    assert.equal(await page.locator('[data-action^="drop:"], [data-action^="restore:"], [data-action="create-snapshot"]').count(), 0, 'reader: no snapshot actions');
    await page.goto(srv.url + '/console#/exports');
    await page.waitForSelector('main h1');
    assert.equal(await page.locator('[data-action="start-export"]').count(), 0, 'reader: no export');
    assert.equal(await page.locator('button.danger').count(), 0);
    await shot(page, 'reader-exports-1280');

    // The same pages with the root key do show them.
    await page.click('#who button');
    await page.fill('input[name="key"]', root);
    await page.click('[data-action="login"]');
    await page.goto(srv.url + '/console#/collection/Sec');
    await page.waitForSelector('[data-action="delete-collection"]');
    await page.goto(srv.url + '/console#/snapshots/Sec');
    await page.waitForSelector('[data-action="drop:snap1"]');

    // Every API call carried the key; none went elsewhere.
    assertSameOrigin(srv, requests);
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    await srv.stop();
    srv.cleanup();
  }
});

test('console: tenants offload live and come back, the registry page (cache, pins), a mounted snapshot restores ticked objects, imports start and finish, jobs page through older ones', async () => {
  const srv = await startServer({ env: { SHARDVAULT_CACHE_BYTES: String(256 << 20) } });
  const { ctx, page, requests, errors } = await openPage(srv);
  try {
    // a multi-tenant collection with two tenants
    let r = await srv.req('POST', '/v1/collections', { name: 'Mt', multiTenancy: true, vectors: { default: { dim: 3 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    r = await srv.req('POST', '/v1/collections/Mt/tenants', [{ name: 'hot' }, { name: 'cold' }]);
    assert.equal(r.status, 200, r.text);
    const objs = Array.from({ length: 40 }, (_, i) => ({ collection: 'Mt', tenant: 'cold', vector: [i, 1, 2], properties: { title: `c${i}` } }));
    r = await srv.req('POST', '/v1/batch/objects', { objects: objs });
    assert.equal(r.json.failed, 0, r.text);

    // Offload from the page: OFFLOADED shown without a reload; the registry lists it; pin; onload back.
    await page.goto(srv.url + '/console#/collection/Mt');
    await page.click('[data-action="offload:cold"]');
    await page.locator('tr[data-tenant="cold"] .tenant-state').filter({ hasText: /^OFFLOADED$/ }).waitFor({ timeout: 60000 });
    await shot(page, 'collection-offloaded-1280');
    await page.goto(srv.url + '/console#/registry');
    await page.waitForSelector('tr[data-registry-shard="Mt/cold"]');
    await page.waitForSelector('[data-cache-bytes]');
    await page.click('[data-action="pin:Mt/cold"]');
    await page.waitForSelector('[data-action="unpin:Mt/cold"]');
    assert.equal((await srv.req('GET', '/v1/registry/shards/Mt/cold')).json.pinned, true, 'the pin reached the server');
    await page.click('[data-action="unpin:Mt/cold"]');
    await page.waitForSelector('[data-action="pin:Mt/cold"]');
    await shot(page, 'registry-1280');
    await page.goto(srv.url + '/console#/collection/Mt');
    await page.click('[data-action="act:cold"]');
    await page.locator('tr[data-tenant="cold"] .tenant-state').filter({ hasText: /^ACTIVE$/ }).waitFor({ timeout: 60000 });
    assert.equal((await srv.req('GET', '/v1/collections/Mt/tenants')).json.tenants.find((t) => t.name === 'cold').objects, 40);

    // A snapshot mounted from the page; ticked objects restored into the live collection.
    await seed(srv, 'Lib', 30);
    r = await srv.req('POST', '/v1/collections/Lib/snapshots?wait=true', { name: 'before' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    const live = (await srv.req('GET', '/v1/collections/Lib/objects?limit=100')).json.objects;
    const gone = live.slice(0, 2).map((o) => o.id);
    for (const id of gone) assert.equal((await srv.req('DELETE', `/v1/collections/Lib/objects/${id}`)).status, 204);
    await page.goto(srv.url + '/console#/snapshots/Lib');
    await page.click('tr[data-snapshot="before"] a');
    await page.waitForSelector('[data-mounted="no"]');
    await page.click('[data-action="mount"]');
    await page.waitForSelector('[data-mounted="yes"]');
    await page.click('[data-action="snap-browse"]');
    for (const id of gone) await page.check(`tr[data-object="${id}"] input[name="pick"]`);
    await page.click('[data-action="restore-selected"]');
    await page.waitForSelector('[data-restored="2"]');
    await shot(page, 'snapshot-mounted-1280');
    for (const id of gone) assert.equal((await srv.req('GET', `/v1/collections/Lib/objects/${id}`)).status, 200, 'restored from the snapshot');
    await page.click('[data-action="unmount"]');
    await page.waitForSelector('[data-mounted="no"]');

    // An import started from the page, watched to SUCCESS.
    r = await srv.req('POST', '/v1/export/filesystem', { id: 'lib-exp', include: ['Lib'] });
    assert.equal(r.status, 200, r.text);
    for (let i = 0; i < 200 && (await srv.req('GET', '/v1/export/filesystem/lib-exp')).json.status !== 'SUCCESS'; i++) await new Promise((res) => setTimeout(res, 50));
    await page.goto(srv.url + '/console#/imports');
    await page.fill('input[name="import-id"]', 'lib-back');
    await page.fill('input[name="import-from"]', 'lib-exp');
    await page.fill('input[name="import-collection"]', 'LibBack');
    await page.check('input[name="import-create"]');
    await page.click('[data-action="start-import"]');
    await page.locator('.import-state').filter({ hasText: /^SUCCESS$/ }).waitFor({ timeout: 60000 });
    await shot(page, 'import-1280');
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b/, 'no stray "null" on the import page');
    const back = (await srv.req('GET', '/v1/collections/LibBack/shards')).json.shards.reduce((a, s) => a + s.objects, 0);
    assert.equal(back, 30);

    // An import error is shown next to its action.
    await page.goto(srv.url + '/console#/imports');
    await page.fill('input[name="import-id"]', 'bad');
    await page.fill('input[name="import-from"]', 'no-such-export');
    await page.click('[data-action="start-import"]');
    await page.locator('[data-err="start-import"]').filter({ hasText: /.+/ }).waitFor();

    // Jobs: more than a page; Older shows the rest.
    for (let i = 0; i < 101; i++) assert.equal((await srv.req('POST', '/v1/snapshots/gc')).status, 200);
    const total = (await srv.req('GET', '/v1/jobs?limit=1000')).json.jobs.length;
    assert.ok(total > 100, String(total));
    await page.goto(srv.url + '/console#/jobs');
    await page.waitForSelector('[data-action="older"]');
    assert.equal(await page.locator('tr[data-job]').count(), 100);
    await page.click('[data-action="older"]');
    await page.waitForSelector('[data-action="newer"]');
    assert.equal(await page.locator('tr[data-job]').count(), total - 100);

    // The Overview shows the node and the cache.
    await page.goto(srv.url + '/console#/overview');
    await page.waitForSelector('[data-cache-bytes]');
    assertSameOrigin(srv, requests);
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    await srv.stop();
    srv.cleanup();
  }
});

test('console with auth: a 429 or a scoped key never widens what is shown; a reader sees no offload or pin', async () => {
  const srv = await startServer({ args: ['--auth', 'apikey', '--rate-limit', '3'] });
  const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
  const auth = { authorization: 'Bearer ' + root };
  const { ctx, page, errors } = await openPage(srv);
  // the setup's own calls wait out the rate limit (3/s per key)
  const req = async (...a) => {
    for (;;) {
      const x = await srv.req(...a);
      if (x.status !== 429) return x;
      await new Promise((res) => setTimeout(res, 400));
    }
  };
  try {
    let r = await req('POST', '/v1/collections', { name: 'Mt', multiTenancy: true, vectors: { default: { dim: 3 } } }, auth);
    assert.equal(r.status, 200, r.text);
    r = await req('POST', '/v1/collections/Mt/tenants', [{ name: 't1' }], auth);
    assert.equal(r.status, 200, r.text);
    r = await req('POST', '/v1/authz/keys', { name: 'ro', roles: ['reader'] }, auth);
    const reader = r.json.key;
    r = await req('POST', '/v1/authz/roles', { name: 't1mgr', permissions: [{ actions: ['read', 'write', 'manage', 'operate'], collections: 'Mt', tenants: 't1' }] }, auth);
    assert.equal(r.status, 201, r.text);
    r = await req('POST', '/v1/authz/keys', { name: 'scoped', roles: ['t1mgr'] }, auth);
    const scoped = r.json.key;

    await page.goto(srv.url + '/console#/overview');
    await page.fill('input[name="key"]', reader);
    await page.click('[data-action="login"]');
    await page.waitForSelector('#who button');
    // the key's rate is spent: /v1/authz/me answers 429, which must not read as "auth off"
    for (let i = 0; i < 8; i++) await srv.req('GET', '/v1/meta', undefined, { authorization: 'Bearer ' + reader });
    await page.goto(srv.url + '/console#/collection/Mt');
    await page.waitForSelector('main h1');
    await new Promise((res) => setTimeout(res, 300));
    assert.doesNotMatch(await page.locator('#who').innerText(), /auth off/);
    assert.equal(await page.locator('[data-action="delete-collection"], [data-action^="offload:"]').count(), 0, 'reader: no delete or offload after a 429');
    await new Promise((res) => setTimeout(res, 1500)); // the rate refills
    await page.goto(srv.url + '/console#/registry');
    await page.waitForSelector('main h1');
    assert.equal(await page.locator('[data-action^="pin:"], [data-action^="unpin:"]').count(), 0, 'reader: no pins');

    // a key scoped to tenant t1 of Mt: no collection-wide actions drawn
    await page.click('#who button');
    await page.fill('input[name="key"]', scoped);
    await page.click('[data-action="login"]');
    await page.waitForSelector('#who button');
    await page.goto(srv.url + '/console#/collection/Mt');
    await page.waitForSelector('main h1');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await page.locator('[data-action="delete-collection"]').count(), 0, 'a tenant-scoped key cannot delete the collection');
    assert.ok(!(await page.locator('main').innerText()).includes('null'), 'no stray "null" in the page');
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    await srv.stop();
    srv.cleanup();
  }
});

test('console: a restore name typed while the snapshots table polls keeps its focus and every keystroke', async () => {
  const srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '700' } });
  const { ctx, page, errors } = await openPage(srv);
  try {
    await seed(srv, 'Typ', 40);
    let r = await srv.req('POST', '/v1/collections/Typ/snapshots?wait=true', { name: 's1' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    // new data, so the next snapshot stores new files slowly: the page polls meanwhile
    const more = Array.from({ length: 40 }, (_, i) => JSON.stringify({ collection: 'Typ', vector: [i, 2, 3], properties: { title: `m${i}` } }));
    r = await srv.req('POST', '/v1/batch/objects', more.join('\n'), { 'content-type': 'application/x-ndjson' });
    assert.equal(r.json.failed, 0, r.text);
    r = await srv.req('POST', '/v1/collections/Typ/snapshots', { name: 's2' });
    assert.equal(r.status, 202, r.text);
    await page.goto(srv.url + '/console#/snapshots/Typ');
    await page.waitForSelector('tr[data-snapshot="s1"] input[name="target"]');
    await page.waitForFunction(() => document.querySelector('#live')?.textContent === 'live');
    const input = page.locator('tr[data-snapshot="s1"] input[name="target"]');
    await page.evaluate(() => { window.svRow = document.querySelector('tr[data-snapshot="s1"]'); });
    await input.click();
    const word = 'RestoredFromS1';
    for (const ch of word) {
      await page.keyboard.type(ch);
      await new Promise((res) => setTimeout(res, 200)); // the table redraws every second meanwhile
    }
    assert.equal(await input.inputValue(), word);
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'target');
    assert.equal(await page.evaluate(() => window.svRow.isConnected), false, 'the table was redrawn while we typed');
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    await srv.stop();
    srv.cleanup();
  }
});
