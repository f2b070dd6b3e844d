// Authorization matrix: every route of the server's table (GET /v1/authz/routes)
// x every kind of caller -> the exact status. A route without a row here fails
// the completeness test, so a new route cannot ship unchecked.
//
// Requests are chosen so that an allowed caller gets a deterministic answer that
// changes nothing (validation errors, unknown names, listings); the admin's answer
// is the "allowed" status and every other allowed caller must get the same one,
// every refused caller 403 (401 without a valid key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer } from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const NOID = '00000000-0000-4000-8000-000000000000';

// A caller's grants, as the server should read them.
const ALL = ['read', 'write', 'manage', 'operate'];
const PRINCIPALS = {
  anonymous: null,
  unknown: null,
  revoked: null,
  expired: null,
  reader: [{ actions: ['read'], c: '*', t: '*' }],
  writer: [{ actions: ['read', 'write'], c: '*', t: '*' }],
  operator: [{ actions: ['read', 'operate'], c: '*', t: '*' }],
  admin: [{ actions: ALL, c: '*', t: '*' }],
  art: [{ actions: ALL, c: 'Art*', t: '*' }],
  tenant: [{ actions: ['read', 'write'], c: 'ArtMT', t: 't1' }],
};

const glob = (g, s) => new RegExp('^' + g.replace(/\*/g, '.*') + '$').test(s); // test-side model only
function allowed(grants, action, coll, tenant) {
  return grants.some((g) => g.actions.includes(action) &&
    (coll === null ? g.c === '*' && g.t === '*' : glob(g.c, coll) && (tenant == null ? g.t === '*' : glob(g.t, tenant))));
}

// One row per route: the request to send and what it is checked against.
// res: [collection, tenant] | null (the whole server) | 'any' (any valid key) |
// a function (grants) => bool for routes checked against several collections.
function rows(ctx) {
  const obj = (c) => ({ collection: c, vector: [1, 2, 3], properties: {} });
  return {
    'GET /v1/.well-known/live': { path: '/v1/.well-known/live', res: 'public' },
    'GET /v1/.well-known/ready': { path: '/v1/.well-known/ready', res: 'public' },
    'GET /metrics': { path: '/metrics', res: 'public' },
    'GET /console': { path: '/console', res: 'public' },
    'GET /console/{}': { path: '/console/app.js', res: 'public' },
    'GET /v1/meta': { path: '/v1/meta', res: 'any' },
    'GET /v1/nodes': { path: '/v1/nodes', res: null },
    'POST /v1/collections': { path: '/v1/collections', body: { name: 'Art9', shards: -1 }, res: ['Art9'] },
    'GET /v1/collections': { path: '/v1/collections', res: 'any' },
    'GET /v1/collections/{}': { path: '/v1/collections/Art1', res: ['Art1'] },
    'DELETE /v1/collections/{}': { path: '/v1/collections/ArtNope', res: ['ArtNope'] },
    'GET /v1/collections/{}/tenants': { path: '/v1/collections/ArtMT/tenants', res: ['ArtMT'] },
    'POST /v1/collections/{}/tenants': { path: '/v1/collections/ArtMT/tenants', body: { tenants: [{ name: 't1' }] }, res: ['ArtMT', 't1'] },
    'PUT /v1/collections/{}/tenants': { path: '/v1/collections/ArtMT/tenants', body: { tenants: [{ name: 't1', status: 'BOGUS' }] }, res: ['ArtMT', 't1'] },
    'DELETE /v1/collections/{}/tenants': { path: '/v1/collections/ArtMT/tenants', body: { tenants: ['tNope'] }, res: ['ArtMT', 'tNope'] },
    'GET /v1/collections/{}/shards': { path: '/v1/collections/Art1/shards', res: ['Art1'] },
    'POST /v1/collections/{}/shards/{}/move': { path: '/v1/collections/Art1/shards/shard0000/move', body: { to: 'n2' }, res: ['Art1'] },
    'POST /v1/collections/{}/tenants/{}/move': { path: '/v1/collections/ArtMT/tenants/t1/move', body: { to: 'n2' }, res: ['ArtMT'] },
    'POST /v1/internal/moves': { path: '/v1/internal/moves', body: { step: 'discard' }, res: null },
    'POST /v1/collections/{}/objects': { path: '/v1/collections/ArtMT/objects?tenant=t1', body: { vector: 'x' }, res: ['ArtMT', 't1'] },
    'GET /v1/collections/{}/objects': { path: '/v1/collections/ArtMT/objects?tenant=t1', res: ['ArtMT', 't1'] },
    'GET /v1/collections/{}/objects/{}': { path: `/v1/collections/ArtMT/objects/${NOID}?tenant=t2`, res: ['ArtMT', 't2'] },
    'PUT /v1/collections/{}/objects/{}': { path: `/v1/collections/ArtMT/objects/${NOID}?tenant=t1`, body: { vector: 'x' }, res: ['ArtMT', 't1'] },
    'DELETE /v1/collections/{}/objects/{}': { path: `/v1/collections/Other/objects/${NOID}`, res: ['Other'] },
    'POST /v1/batch/objects': { path: '/v1/batch/objects', body: { objects: [obj('Other')] }, res: 'batch', coll: 'Other' },
    'POST /v1/export/{}': { path: '/v1/export/filesystem', body: { id: 'Bad id!', include: ['Art1'] }, res: (g) => allowed(g, 'operate', 'Art1') },
    'GET /v1/export/{}': { path: '/v1/export/filesystem', res: 'any' },
    // node-to-node only: 403 to every client (admin included), whatever its key
    'POST /v1/cluster/export/prepare': { path: '/v1/cluster/export/prepare', body: { id: 'x' }, res: 'node' },
    'POST /v1/cluster/export/{}/commit': { path: '/v1/cluster/export/x/commit', res: 'node' },
    'POST /v1/cluster/export/{}/abort': { path: '/v1/cluster/export/x/abort', res: 'node' },
    'POST /v1/cluster/snapshot/cut': { path: '/v1/cluster/snapshot/cut', body: { id: 'x', collection: 'x' }, res: 'node' },
    'POST /v1/cluster/snapshot/{}/release': { path: '/v1/cluster/snapshot/x/release', res: 'node' },
    'POST /v1/cluster/snapshot/{}/upload': { path: '/v1/cluster/snapshot/x/upload', res: 'node' },
    'POST /v1/cluster/snapshot/{}/abort': { path: '/v1/cluster/snapshot/x/abort', res: 'node' },
    'POST /v1/cluster/restore/lay': { path: '/v1/cluster/restore/lay', body: { job: 'x' }, res: 'node' },
    'POST /v1/cluster/restore/unlay': { path: '/v1/cluster/restore/unlay', body: { uid: 'x' }, res: 'node' },
    'GET /v1/export/{}/{}': { path: `/v1/export/filesystem/${ctx.exportId}`, res: ['Other'] },
    'DELETE /v1/export/{}/{}': { path: `/v1/export/filesystem/${ctx.exportId}`, res: ['Other'], action: 'operate' },
    'POST /v1/import/{}': { path: '/v1/import/filesystem', body: { id: 'Bad id!', source: { export: 'ex1' }, collection: 'Art1' }, res: (g) => allowed(g, 'operate', 'Art1') && allowed(g, 'write', 'Art1') },
    'GET /v1/import/{}/{}': { path: `/v1/import/filesystem/${ctx.importId}`, res: ['Other'] },
    'DELETE /v1/import/{}/{}': { path: `/v1/import/filesystem/${ctx.importId}`, res: ['Other'], action: 'operate' },
    'POST /v1/collections/{}/snapshots': { path: '/v1/collections/Art1/snapshots', body: { name: 'bad name!' }, res: ['Art1'] },
    'GET /v1/collections/{}/snapshots': { path: '/v1/collections/Art1/snapshots', res: ['Art1'] },
    'GET /v1/collections/{}/snapshots/{}': { path: '/v1/collections/Art1/snapshots/s1', res: ['Art1'] },
    'DELETE /v1/collections/{}/snapshots/{}': { path: '/v1/collections/Art1/snapshots/nope', res: ['Art1'] },
    'POST /v1/collections/{}/snapshots/{}/restore': { path: '/v1/collections/Art1/snapshots/nope/restore', body: { target: 'Art5' }, res: (g) => allowed(g, 'operate', 'Art1') && allowed(g, 'operate', 'Art5') },
    'GET /v1/restore-jobs': { path: '/v1/restore-jobs', res: 'any' },
    'GET /v1/restore-jobs/{}': { path: `/v1/restore-jobs/${ctx.restoreId}`, res: (g) => allowed(g, 'read', 'Art1') && allowed(g, 'read', 'ArtCopy') },
    'POST /v1/snapshots/gc': { path: '/v1/snapshots/gc', res: null },
    'POST /v1/collections/{}/snapshots/{}/mount': { path: '/v1/collections/Art1/snapshots/nope/mount', res: ['Art1'] },
    'DELETE /v1/collections/{}/snapshots/{}/mount': { path: '/v1/collections/Art1/snapshots/nope/mount', res: ['Art1'] },
    'GET /v1/collections/{}/snapshots/{}/objects': { path: '/v1/collections/Art1/snapshots/s1/objects', res: ['Art1'] },
    'GET /v1/collections/{}/snapshots/{}/objects/{}': { path: `/v1/collections/Art1/snapshots/s1/objects/${NOID}`, res: ['Art1'] },
    'POST /v1/collections/{}/snapshots/{}/objects/restore': { path: '/v1/collections/ArtMT/snapshots/s1/objects/restore', body: { ids: [], tenant: 't1' }, res: ['ArtMT', 't1'], action: 'write' },
    'GET /v1/registry': { path: '/v1/registry', res: null },
    'GET /v1/registry/shards': { path: '/v1/registry/shards', res: 'any' },
    'GET /v1/registry/shards/{}/{}': { path: '/v1/registry/shards/Art1/shard0000', res: ['Art1'], action: 'read' },
    'POST /v1/registry/shards/{}/{}/recover': { path: '/v1/registry/shards/Art1/nope/recover', res: ['Art1'], action: 'operate' },
    'POST /v1/registry/shards/{}/{}/pin': { path: '/v1/registry/shards/Art1/nope/pin', res: ['Art1'], action: 'operate' },
    'POST /v1/registry/shards/{}/{}/unpin': { path: '/v1/registry/shards/Art1/nope/unpin', res: ['Art1'], action: 'operate' },
    'POST /v1/registry/gc': { path: '/v1/registry/gc', res: null },
    'POST /v1/maintenance/rebuild': { path: '/v1/maintenance/rebuild', body: { source: 'bogus' }, res: null },
    'POST /v1/maintenance/verify': { path: '/v1/maintenance/verify', body: { readData: 'x' }, res: null },
    'POST /v1/maintenance/move': { path: '/v1/maintenance/move', body: { target: 'ftp://nope' }, res: null },
    'POST /v1/maintenance/analyze': { path: '/v1/maintenance/analyze', body: { blobs: 0 }, res: null },
    'GET /v1/maintenance/status': { path: '/v1/maintenance/status', res: null },
    'GET /v1/maintenance/recovery-kit': { path: '/v1/maintenance/recovery-kit', res: null },
    'DELETE /v1/maintenance/lease': { path: '/v1/maintenance/lease', res: null },
    'POST /v1/maintenance/checkpoint': { path: '/v1/maintenance/checkpoint', res: null },
    'GET /v1/jobs': { path: '/v1/jobs', res: 'any' },
    'GET /v1/jobs/{}': { path: `/v1/jobs/${ctx.snapJob}`, res: ['Art1'] },
    'POST /v1/jobs/{}/cancel': { path: `/v1/jobs/${ctx.snapJob}/cancel`, res: ['Art1'], action: 'operate' },
    'POST /v1/schedules': { path: '/v1/schedules', body: { name: 'm', kind: 'snapshot', collection: 'Art1', every: '0s' }, res: (g) => allowed(g, 'manage', 'Art1') && allowed(g, 'operate', 'Art1') },
    'GET /v1/schedules': { path: '/v1/schedules', res: 'any' },
    'GET /v1/schedules/{}': { path: '/v1/schedules/nightly', res: ['Art1'] },
    'PUT /v1/schedules/{}': { path: '/v1/schedules/nightly', body: { paused: 'yes' }, res: ['Art1'] },
    'DELETE /v1/schedules/{}': { path: '/v1/schedules/nope', res: 'lookup' },
    'GET /v1/authz/me': { path: '/v1/authz/me', res: 'any' },
    'GET /v1/authz/routes': { path: '/v1/authz/routes', res: null },
    'POST /v1/authz/keys': { path: '/v1/authz/keys', body: { name: '', roles: ['reader'] }, res: null },
    'GET /v1/authz/keys': { path: '/v1/authz/keys', res: null },
    'DELETE /v1/authz/keys/{}': { path: '/v1/authz/keys/nope', res: null },
    'PUT /v1/authz/keys/{}': { path: '/v1/authz/keys/nope', body: { roles: ['reader'] }, res: null },
    'POST /v1/authz/keys/{}/rotate': { path: '/v1/authz/keys/nope/rotate', res: null },
    'POST /v1/authz/roles': { path: '/v1/authz/roles', body: { name: 'Bad!', permissions: [] }, res: null },
    'GET /v1/authz/roles': { path: '/v1/authz/roles', res: null },
    'GET /v1/authz/roles/{}': { path: '/v1/authz/roles/reader', res: null },
    'DELETE /v1/authz/roles/{}': { path: '/v1/authz/roles/nope', res: null },
  };
}

async function as(srv, key, method, p, body) {
  return srv.req(method, p, body, key ? { authorization: `Bearer ${key}` } : {});
}

async function setup() {
  // The matrix fails hundreds of logins on purpose: no slow-down here.
  const srv = await startServer({ args: ['--auth', 'apikey'], env: { SHARDVAULT_AUTH_FAIL_DELAY_MS: '0' } });
  const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
  const adm = (m, p, b) => as(srv, root, m, p, b);
  const mk = async (name, roles, extra = {}) => {
    const r = await adm('POST', '/v1/authz/keys', { name, roles, ...extra });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  for (const [name, perm] of [['art', { actions: ALL, collections: 'Art*', tenants: '*' }],
    ['tenant', { actions: ['read', 'write'], collections: 'ArtMT', tenants: 't1' }]]) {
    const r = await adm('POST', '/v1/authz/roles', { name, permissions: [perm] });
    assert.equal(r.status, 201, r.text);
  }
  const keys = { anonymous: null, unknown: 'sv_0123456789ab_' + '0'.repeat(64) };
  for (const p of ['reader', 'writer', 'operator', 'admin', 'art', 'tenant']) keys[p] = (await mk(p, [p])).key;
  const revoked = await mk('revoked', ['admin']);
  assert.equal((await adm('DELETE', `/v1/authz/keys/${revoked.id}`)).status, 204);
  keys.revoked = revoked.key;
  keys.expired = (await mk('expired', ['admin'], { expiresAt: Date.now() + 1500 })).key;
  // data
  let r = await adm('POST', '/v1/collections', { name: 'Art1', vectors: { default: { dim: 3 } } });
  assert.equal(r.status, 200, r.text);
  r = await adm('POST', '/v1/collections', { name: 'Other', vectors: { default: { dim: 3 } } });
  assert.equal(r.status, 200, r.text);
  r = await adm('POST', '/v1/collections', { name: 'ArtMT', multiTenancy: true, vectors: { default: { dim: 3 } } });
  assert.equal(r.status, 200, r.text);
  r = await adm('POST', '/v1/collections/ArtMT/tenants', { tenants: [{ name: 't1' }, { name: 't2' }] });
  assert.equal(r.status, 200, r.text);
  r = await adm('POST', '/v1/collections/Art1/objects', { vector: [1, 2, 3], properties: {} });
  assert.equal(r.status, 200, r.text);
  r = await adm('POST', '/v1/collections/Art1/snapshots?wait=true', { name: 's1' });
  assert.equal(r.json.status, 'COMMITTED', r.text);
  const snapJob = (await adm('GET', '/v1/jobs?kind=snapshot')).json.jobs[0].id;
  r = await adm('POST', '/v1/collections/Art1/snapshots/s1/restore', { target: 'ArtCopy' });
  assert.equal(r.status, 202, r.text);
  const restoreId = r.json.jobId;
  r = await adm('POST', '/v1/export/filesystem', { id: 'ex1', include: ['Other'] });
  assert.equal(r.status, 200, r.text);
  for (let i = 0; i < 200; i++) {
    const s = await adm('GET', '/v1/export/filesystem/ex1');
    if (s.json.status === 'SUCCESS') break;
    await sleep(25);
  }
  // an import (of Art1's one object) into Other, for the import rows
  r = await adm('POST', '/v1/export/filesystem', { id: 'ex2', include: ['Art1'] });
  assert.equal(r.status, 200, r.text);
  for (let i = 0; i < 2000; i++) {
    const s = await adm('GET', '/v1/export/filesystem/ex2');
    if (s.json.status === 'SUCCESS') break;
    await sleep(25);
  }
  r = await adm('POST', '/v1/import/filesystem', { id: 'im1', source: { export: 'ex2' }, collection: 'Other', onConflict: 'replace' });
  assert.equal(r.status, 202, r.text);
  for (let i = 0; i < 2000; i++) {
    const s = await adm('GET', '/v1/import/filesystem/im1');
    if (s.json.status === 'SUCCESS') break;
    await sleep(25);
  }
  r = await adm('POST', '/v1/schedules', { name: 'nightly', kind: 'snapshot', collection: 'Art1', cron: '0 3 * * *' });
  assert.equal(r.status, 201, r.text);
  await sleep(1600); // the expiring key is past its time now
  return { srv, root, keys, ctx: { exportId: 'ex1', importId: 'im1', restoreId, snapJob } };
}

test('authorization matrix: every route x every caller', async () => {
  const { srv, root, keys, ctx } = await setup();
  try {
    const table = (await as(srv, root, 'GET', '/v1/authz/routes')).json.routes;
    const spec = rows(ctx);
    // completeness: a route without a row fails here
    const missing = table.map((r) => `${r.method} ${r.pattern}`).filter((k) => !spec[k]);
    assert.deepEqual(missing, [], 'routes without a row in the authorization matrix');
    for (const route of table) assert.notEqual(route.action, 'none', `${route.method} ${route.pattern} has no action`);
    const failures = [];
    let checks = 0;
    for (const route of table) {
      const key = `${route.method} ${route.pattern}`;
      const row = spec[key];
      const admin = await as(srv, keys.admin, route.method, row.path, row.body);
      if (row.res === 'node') assert.equal(admin.status, 403, `${key}: admin got ${admin.status} ${admin.text}`);
      else assert.ok(![401, 403, 500].includes(admin.status), `${key}: admin got ${admin.status} ${admin.text}`);
      const action = row.action || route.action;
      for (const [who, grants] of Object.entries(PRINCIPALS)) {
        const r = await as(srv, keys[who], route.method, row.path, row.body);
        checks++;
        let want;
        if (row.res === 'node') want = 403;
        else if (row.res === 'public') want = admin.status;
        else if (!grants) want = 401;
        else if (row.res === 'any' || row.res === 'lookup') want = admin.status;
        else if (row.res === 'batch') want = 200;
        else if (typeof row.res === 'function') want = row.res(grants) ? admin.status : 403;
        else if (row.res === null) want = allowed(grants, action, null) ? admin.status : 403;
        else want = allowed(grants, action, row.res[0], row.res[1]) ? admin.status : 403;
        if (r.status !== want) failures.push(`${key} as ${who}: ${r.status}, want ${want} (${r.text.slice(0, 120)})`);
        if (r.status === 401) assert.match(r.headers.get('www-authenticate') || '', /Bearer/);
        if (row.res === 'batch' && grants) {
          const forbidden = /forbidden/.test(r.text);
          const may = allowed(grants, 'write', row.coll, null);
          if (forbidden === may) failures.push(`${key} as ${who}: batch object forbidden=${forbidden}, may=${may}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.equal(checks, table.length * Object.keys(PRINCIPALS).length);
    assert.ok(table.length >= 50, `${table.length} routes`);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('regressions: glob injection, same 403 for existing and missing, cross-tenant, grants, rotation, query keys', async () => {
  const { srv, root, keys } = await setup();
  try {
    const adm = (m, p, b) => as(srv, root, m, p, b);
    for (const bad of ['o|*', '.*', '(', 'Art[0-9]', 'a b', '*/..', '']) {
      const r = await adm('POST', '/v1/authz/roles', { name: 'inj', permissions: [{ actions: ['read'], collections: bad }] });
      assert.equal(r.status, 422, `${bad}: ${r.text}`);
    }
    // same 403 for an existing and a missing collection
    const a = await as(srv, keys.art, 'GET', '/v1/collections/Other');
    const b = await as(srv, keys.art, 'GET', '/v1/collections/NoSuch');
    assert.equal(a.status, 403);
    assert.equal(b.status, 403);
    assert.equal(a.text.replace('Other', 'X'), b.text.replace('NoSuch', 'X'));
    // cross-tenant: t1 yes, t2 no, and the batch refuses the t2 object only
    assert.equal((await as(srv, keys.tenant, 'GET', '/v1/collections/ArtMT/objects?tenant=t1')).status, 200);
    assert.equal((await as(srv, keys.tenant, 'GET', '/v1/collections/ArtMT/objects?tenant=t2')).status, 403);
    const batch = await as(srv, keys.tenant, 'POST', '/v1/batch/objects', { objects: [
      { collection: 'ArtMT', tenant: 't1', vector: [1, 2, 3], properties: {} },
      { collection: 'ArtMT', tenant: 't2', vector: [1, 2, 3], properties: {} }] });
    assert.equal(batch.status, 200, batch.text);
    assert.equal(batch.json.ok, 1);
    assert.match(JSON.stringify(batch.json.results[1]), /forbidden/);
    // an export naming a forbidden collection: 403 listing it, nothing started
    let r = await as(srv, keys.art, 'POST', '/v1/export/filesystem', { id: 'sneaky', include: ['Art1', 'Other'] });
    assert.equal(r.status, 403, r.text);
    assert.match(r.json.error[0].message, /'Other'/);
    r = await as(srv, keys.art, 'POST', '/v1/export/filesystem', { id: 'sneaky2' }); // everything: includes Other
    assert.equal(r.status, 403, r.text);
    assert.equal((await adm('GET', '/v1/export/filesystem/sneaky')).status, 404);
    // lists hold only what the caller may read
    const cols = (await as(srv, keys.art, 'GET', '/v1/collections')).json.collections.map((c) => c.name).sort();
    assert.deepEqual(cols, ['Art1', 'ArtCopy', 'ArtMT'].filter((c) => cols.includes(c)));
    assert.ok(!cols.includes('Other'));
    // a caller grants only what it holds
    r = await as(srv, keys.art, 'POST', '/v1/authz/keys', { name: 'x', roles: ['admin'] });
    assert.equal(r.status, 403, r.text);
    const mgr = await adm('POST', '/v1/authz/roles', { name: 'artmgr', permissions: [{ actions: ['manage', 'read'], collections: 'Art*' }] });
    assert.equal(mgr.status, 201, mgr.text);
    const mk = await adm('POST', '/v1/authz/keys', { name: 'mgr', roles: ['artmgr'] });
    // key management is server-wide: an Art* manager may not create keys at all
    r = await as(srv, mk.json.key, 'POST', '/v1/authz/keys', { name: 'y', roles: ['reader'] });
    assert.equal(r.status, 403, r.text);
    // rotation: the old secret works during the grace, then not
    const k = await adm('POST', '/v1/authz/keys', { name: 'rot', roles: ['reader'] });
    r = await adm('POST', `/v1/authz/keys/${k.json.id}/rotate`, { graceSeconds: 2 });
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.json.key, k.json.key);
    assert.equal((await as(srv, k.json.key, 'GET', '/v1/authz/me')).status, 200);
    assert.equal((await as(srv, r.json.key, 'GET', '/v1/authz/me')).status, 200);
    await sleep(2300);
    assert.equal((await as(srv, k.json.key, 'GET', '/v1/authz/me')).status, 401);
    assert.equal((await as(srv, r.json.key, 'GET', '/v1/authz/me')).status, 200);
    // expiry
    assert.equal((await as(srv, keys.expired, 'GET', '/v1/authz/me')).status, 401);
    // keys travel only in the header; encoded separators are refused before routing
    r = await srv.req('GET', `/v1/collections?api_key=${encodeURIComponent(keys.admin)}`);
    assert.equal(r.status, 400);
    assert.ok(!r.text.includes(keys.admin));
    assert.equal((await as(srv, keys.admin, 'GET', '/v1/collections/Art1%2F..%2FOther')).status, 400);
    // key listings never show secrets
    const list = await adm('GET', '/v1/authz/keys');
    for (const key of Object.values(keys)) if (key) assert.ok(!list.text.includes(key.split('_')[2]));
    // a manager of keys may not rotate (take over), re-role or delete a more powerful key
    const mgrAll = await adm('POST', '/v1/authz/roles', { name: 'keymgr', permissions: [{ actions: ['manage'], collections: '*' }] });
    assert.equal(mgrAll.status, 201, mgrAll.text);
    const km = (await adm('POST', '/v1/authz/keys', { name: 'km', roles: ['keymgr'] })).json;
    const victim = (await adm('POST', '/v1/authz/keys', { name: 'victim', roles: ['admin'] })).json;
    r = await as(srv, km.key, 'POST', `/v1/authz/keys/${victim.id}/rotate`);
    assert.equal(r.status, 403, r.text);
    assert.ok(!r.text.includes('"key"'));
    assert.equal((await as(srv, km.key, 'PUT', `/v1/authz/keys/${victim.id}`, { roles: ['keymgr'] })).status, 403);
    assert.equal((await as(srv, km.key, 'DELETE', `/v1/authz/keys/${victim.id}`)).status, 403);
    assert.equal((await as(srv, victim.key, 'GET', '/v1/authz/me')).status, 200, 'the victim key still works');
    // a tenant-scoped key acts on its tenant only, never on the whole collection
    const tmgr = await adm('POST', '/v1/authz/roles', { name: 'tmgr', permissions: [{ actions: ALL, collections: 'ArtMT', tenants: 't1' }] });
    assert.equal(tmgr.status, 201, tmgr.text);
    const tk = (await adm('POST', '/v1/authz/keys', { name: 'tk', roles: ['tmgr'] })).json.key;
    assert.equal((await as(srv, tk, 'DELETE', '/v1/collections/ArtMT?tenant=t1')).status, 403);
    assert.equal((await as(srv, tk, 'POST', '/v1/collections/ArtMT/snapshots?tenant=t1', { name: 'x' })).status, 403);
    assert.equal((await as(srv, tk, 'GET', '/v1/collections/ArtMT/objects?tenant=t1')).status, 200);
    // an export schedule is checked on what it exports (include, or everything), never on an ignored field
    r = await as(srv, keys.art, 'POST', '/v1/schedules', { name: 'sneak', kind: 'export', backend: 'filesystem', collection: 'Art1', every: '1h' });
    assert.ok([403, 422].includes(r.status), r.text);
    r = await as(srv, keys.art, 'POST', '/v1/schedules', { name: 'sneak', kind: 'export', backend: 'filesystem', include: ['Other'], every: '1h' });
    assert.equal(r.status, 403, r.text);
    r = await as(srv, keys.art, 'POST', '/v1/schedules', { name: 'sneak', kind: 'export', backend: 'filesystem', every: '1h' });
    assert.equal(r.status, 403, r.text);
    r = await adm('POST', '/v1/schedules', { name: 'sneak', kind: 'export', backend: 'filesystem', collection: 'Art1', every: '1h' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.error[0].message, /collection/);
    // whoami
    const me = await as(srv, keys.art, 'GET', '/v1/authz/me');
    assert.deepEqual(me.json.roles, ['art']);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
