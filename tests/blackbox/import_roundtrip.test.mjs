// Import, round trip: a shardvault export (typed and weaviate schemas,
// single- and multi-tenant, every property type, named and multi vectors,
// unicode, nulls) imported into new collections created from the export's
// metadata is equal object by object (times aside: the store assigns them).
// Also: the job in /v1/jobs, onConflict, a renamed target, API errors.
import test from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rng } from './lib/server.mjs';
import { EVERYTHING, makeObject, batch, listAll, waitExport } from './lib/export.mjs';

let srv;
const src = new Map();
const srcMT = {};

async function waitImport(backend, id, timeoutMs = 120000) {
  const t0 = Date.now();
  for (;;) {
    const r = await srv.req('GET', `/v1/import/${backend}/${id}`);
    assert.equal(r.status, 200, r.text);
    if (['SUCCESS', 'FAILED', 'CANCELED'].includes(r.json.status)) return r.json;
    if (Date.now() - t0 > timeoutMs) throw new Error(`import ${id} still ${r.json.status}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

// The API view without the times the store assigns.
// noTenant: a multi-tenant source imported into a single-tenant target.
const strip = (o, noTenant) => {
  const c = { ...o };
  delete c.creationTime;
  delete c.updateTime;
  delete c.collection;
  if (noTenant) delete c.tenant;
  return c;
};

function assertSame(got, want, what, noTenant = false) {
  assert.equal(got.size, want.size, `${what}: ${got.size} objects, want ${want.size}`);
  for (const [id, o] of want) {
    assert.ok(got.has(id), `${what}: ${id} missing`);
    assert.deepEqual(strip(got.get(id), noTenant), strip(o, noTenant), `${what}: object ${id}`);
  }
}

test.before(async () => {
  srv = await startServer({ env: { EXPORT_ROWS_PER_FILE: '150', EXPORT_ROW_GROUP_BYTES: '65536' } });
  assert.equal((await srv.req('POST', '/v1/collections', EVERYTHING('Everything'))).status, 200);
  const rand = rng(7);
  const objs = Array.from({ length: 400 }, (_, i) => makeObject(rand, 'Everything', i));
  await batch(srv, objs);
  for (const [id, o] of await listAll(srv, 'Everything')) src.set(id, o);
  const mt = EVERYTHING('Tenanted', { shards: undefined, multiTenancy: true });
  delete mt.shards;
  assert.equal((await srv.req('POST', '/v1/collections', mt)).status, 200);
  assert.equal((await srv.req('POST', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 'alpha' }, { name: 'beta_2' }] })).status, 200);
  for (const t of ['alpha', 'beta_2']) {
    const tobjs = Array.from({ length: 60 }, (_, i) => ({ ...makeObject(rand, 'Tenanted', i), tenant: t }));
    await batch(srv, tobjs);
    srcMT[t] = await listAll(srv, 'Tenanted', t);
  }
  for (const schema of ['typed', 'weaviate']) {
    const r = await srv.req('POST', '/v1/export/filesystem', { id: `rt-${schema}`, options: { schema } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await waitExport(srv, 'filesystem', `rt-${schema}`)).status, 'SUCCESS');
  }
});

test.after(async () => {
  await srv.stop();
});

for (const schema of ['typed', 'weaviate']) {
  test(`${schema} export -> import into a renamed new collection: equal object by object`, async () => {
    const target = `Copy_${schema}`;
    let r = await srv.req('POST', '/v1/import/filesystem', {
      id: `imp-${schema}`, source: { export: `rt-${schema}` }, collection: target, createCollection: true, onConflict: 'fail',
    });
    // the export holds two collections: a renamed single target gets the single-tenant files only when
    // both cannot share it; here the multi-tenant files go into the single-tenant target too
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json.status, 'STARTED');
    assert.equal(r.json.id, `imp-${schema}`);
    const st = await waitImport('filesystem', `imp-${schema}`);
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 800));
    assert.equal(st.objectsFailed, 0, JSON.stringify(st.errors.slice(0, 3)));
    assert.equal(st.objectsImported, 400 + 120);
    assert.ok(st.files.length >= 4);
    for (const f of st.files) {
      assert.equal(f.status, 'SUCCESS');
      assert.equal(f.rows, f.rowsImported);
    }
    assert.ok(st.startedAt && st.completedAt && st.tookInMs >= 0);
    const got = await listAll(srv, target);
    const want = new Map([...src, ...srcMT.alpha, ...srcMT.beta_2]);
    assertSame(got, want, `${schema} -> ${target}`, true);
    // the job
    const jobs = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs;
    const job = jobs.find((j) => j.target === `imp-${schema}`);
    assert.ok(job, JSON.stringify(jobs));
    assert.equal(job.kind, 'import');
    assert.equal(job.state, 'SUCCEEDED');
  });
}

test('original names: single- and multi-tenant collections come back with their tenants', async () => {
  // Import into the original names on a second server that has none of them.
  const s2 = await startServer({ env: { EXPORT_DEFAULT_PATH: `${srv.dataDir}/exports` } });
  try {
    const r = await s2.req('POST', '/v1/import/filesystem', { id: 'orig', source: { export: 'rt-typed' }, createCollection: true });
    assert.equal(r.status, 202, r.text);
    let st;
    for (;;) {
      st = (await s2.req('GET', '/v1/import/filesystem/orig')).json;
      if (!['STARTED', 'TRANSFERRING'].includes(st.status)) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 800));
    assertSame(await listAll(s2, 'Everything'), src, 'Everything');
    for (const t of ['alpha', 'beta_2']) assertSame(await listAll(s2, 'Tenanted', t), srcMT[t], `Tenanted/${t}`);
    const c = (await s2.req('GET', '/v1/collections/Everything')).json;
    const c0 = (await srv.req('GET', '/v1/collections/Everything')).json;
    assert.deepEqual(c.properties, c0.properties);
  } finally {
    await s2.stop();
  }
});

test('onConflict: fail reports every existing id with file and row, skip counts them, replace rewrites', async () => {
  let r = await srv.req('POST', '/v1/import/filesystem', { id: 'again-fail', source: { export: 'rt-typed' }, collection: 'Copy_typed', onConflict: 'fail' });
  assert.equal(r.status, 202, r.text);
  let st = await waitImport('filesystem', 'again-fail');
  assert.equal(st.status, 'SUCCESS');
  assert.equal(st.objectsImported, 0);
  assert.equal(st.objectsFailed, 520);
  assert.equal(st.errors.length, 100);
  assert.match(st.errors[0].message, /already exists/);
  assert.ok(st.errors[0].file.endsWith('.parquet'));
  assert.equal(typeof st.errors[0].row, 'number');
  r = await srv.req('POST', '/v1/import/filesystem', { id: 'again-skip', source: { export: 'rt-typed' }, collection: 'Copy_typed', onConflict: 'skip' });
  st = await waitImport('filesystem', 'again-skip');
  assert.equal(st.objectsSkipped, 520);
  assert.equal(st.objectsImported, 0);
  r = await srv.req('POST', '/v1/import/filesystem', { id: 'again-replace', source: { export: 'rt-weaviate' }, collection: 'Copy_typed', onConflict: 'replace' });
  st = await waitImport('filesystem', 'again-replace');
  assert.equal(st.objectsImported, 520);
  assertSame(await listAll(srv, 'Copy_typed'), new Map([...src, ...srcMT.alpha, ...srcMT.beta_2]), 'after replace', true);
});

test('API errors: statuses and messages', async () => {
  const cases = [
    ['bad id', 'filesystem', { id: 'Bad!', source: { export: 'rt-typed' } }, 422, /id/],
    ['unknown backend', 'gcs', { id: 'x1', source: { export: 'rt-typed' } }, 422, /backend/],
    ['no source', 'filesystem', { id: 'x2' }, 422, /source/],
    ['both sources', 'filesystem', { id: 'x3', source: { export: 'rt-typed', files: ['a'] } }, 422, /source/],
    ['missing export', 'filesystem', { id: 'x4', source: { export: 'nope' } }, 422, /nope/],
    ['files without collection', 'filesystem', { id: 'x5', source: { files: ['*.parquet'] } }, 422, /collection/],
    ['path escape', 'filesystem', { id: 'x6', source: { files: ['../etc/*.parquet'] }, collection: 'Everything' }, 422, /\.\./],
    ['absolute path', 'filesystem', { id: 'x7', source: { files: ['/etc/passwd'] }, collection: 'Everything' }, 422, /relative/],
    ['bad onConflict', 'filesystem', { id: 'x8', source: { export: 'rt-typed' }, onConflict: 'merge' }, 422, /onConflict/],
    ['unknown field', 'filesystem', { id: 'x9', source: { export: 'rt-typed' }, path: '/tmp' }, 422, /path/],
    ['missing target', 'filesystem', { id: 'x10', source: { export: 'rt-typed' }, collection: 'NoSuch' }, 422, /createCollection/],
    ['nothing matches', 'filesystem', { id: 'x11', source: { files: ['nothing-*.parquet'] }, collection: 'Everything' }, 422, /matches no file/],
    ['id taken', 'filesystem', { id: 'imp-typed', source: { export: 'rt-typed' } }, 409, /already exists/],
  ];
  for (const [what, backend, body, status, re] of cases) {
    const r = await srv.req('POST', `/v1/import/${backend}`, body);
    assert.equal(r.status, status, `${what}: ${r.text}`);
    assert.match(r.json.error[0].message, re, what);
  }
  assert.equal((await srv.req('GET', '/v1/import/filesystem/never')).status, 404);
  assert.equal((await srv.req('DELETE', '/v1/import/filesystem/never')).status, 404);
  assert.equal((await srv.req('DELETE', '/v1/import/filesystem/imp-typed')).status, 409);
});
