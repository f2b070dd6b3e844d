// Import, createCollection for {"files": [...]} sources: the target's schema
// is derived from the mapping and the file's Parquet schema (vector
// dimensions from the first rows, property types from physical/logical
// types), then the rows import through it (the typed path: every property
// declared; the rows holding an object take the text path) and read back as
// DuckDB reads the file. Also: a tenant makes a multi-tenant collection, an
// existing target is left as it is, and a vector column without a readable
// dimension refuses the import up front.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir, f32deep } from './lib/server.mjs';
import { query, listAll } from './lib/export.mjs';

const root = tempDir('sv-import-create-');
const lake = path.join(root, 'lake');
fs.mkdirSync(lake, { recursive: true });
let srv;
const N = 250;

const TABLE = `SELECT uuid() AS id,
  CASE WHEN i < 3 THEN NULL ELSE [i::FLOAT / 3, -i::FLOAT, 0.25, 1e-3, 7, 8, 9, i::FLOAT * 1e-7] END AS vec,
  [i::FLOAT, 0.5, -1]::FLOAT[3] AS emb,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'title ' || i || ' Ünïcödé 🚀' END AS title,
  (i * 1000000007)::BIGINT AS n, (i % 100)::INTEGER AS small, i * 1.25 - 3 AS x, (i / 7)::FLOAT AS f,
  (i % 3 = 0) AS b, DATE '2000-02-28' + i::INTEGER AS d,
  (TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 1003) MILLISECOND)::TIMESTAMP_MS AS ts,
  CASE WHEN i % 4 = 0 THEN [] ELSE ['a', 'b' || i] END AS tags, [i::DOUBLE, 0.5] AS nums,
  [i, -i]::BIGINT[] AS ints, uuid() AS ref, CASE WHEN i % 10 = 0 THEN {'k': i, 's': 'v' || i} END AS st
FROM range(0, ${N}) r(i)`;

async function run(body) {
  const r = await srv.req('POST', '/v1/import/filesystem', body);
  if (r.status !== 202) return { status: r.status, text: r.text };
  for (;;) {
    const s = await srv.req('GET', `/v1/import/filesystem/${body.id}`);
    if (!['STARTED', 'TRANSFERRING'].includes(s.json.status)) return s.json;
    await new Promise((res) => setTimeout(res, 30));
  }
}

const MAPPING = { id: 'id', vector: 'vec', namedVectors: { e: 'emb' }, properties: { '*': 'rest' } };

test.before(async () => {
  await query(`CREATE OR REPLACE TABLE derive AS ${TABLE}`);
  await query(`COPY derive TO '${path.join(lake, 'derive.parquet')}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100)`);
  await query(`COPY (SELECT id, CASE WHEN false THEN vec END AS vec FROM derive) TO '${path.join(lake, 'novec.parquet')}' (FORMAT parquet)`);
  srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root } });
});

test.after(async () => {
  await srv?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

test('createCollection derives the schema from the mapping and the footer, then imports every row as DuckDB reads it', async () => {
  const st = await run({ id: 'derive', source: { files: ['lake/derive.parquet'] }, collection: 'Derived', createCollection: true, mapping: MAPPING, onConflict: 'fail' });
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 800));
  assert.equal(st.objectsImported, N, JSON.stringify(st.errors?.slice(0, 3)));
  const c = await srv.req('GET', '/v1/collections/Derived');
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.multiTenancy, false);
  assert.deepEqual(c.json.vectors.default, { dim: 8 }); // from the first non-null row (rows 0-2 are null)
  assert.deepEqual(c.json.vectors.named, { e: { dim: 3 } });
  const types = Object.fromEntries(c.json.properties.map((p) => [p.name, p.type]));
  assert.deepEqual(types, { title: 'text', n: 'int', small: 'int', x: 'number', f: 'number', b: 'boolean', d: 'date',
    ts: 'date', tags: 'text[]', nums: 'number[]', ints: 'int[]', ref: 'uuid', st: 'object' });
  const want = await query(`SELECT id::VARCHAR AS id, vec, emb, title, n::DOUBLE AS n, small, x, f, b,
      strftime(d, '%Y-%m-%dT00:00:00.000Z') AS d, strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ') AS ts, tags, nums,
      ints::DOUBLE[] AS ints, ref::VARCHAR AS ref, to_json(st)::VARCHAR AS st FROM derive`);
  const got = await listAll(srv, 'Derived');
  assert.equal(got.size, N);
  for (const w of want) {
    const g = got.get(w.id);
    assert.ok(g, `${w.id} missing`);
    if (w.vec) assert.deepEqual(f32deep(g.vector), f32deep(w.vec), `${w.id} vector`);
    else assert.equal(g.vector, undefined);
    assert.deepEqual(f32deep(g.namedVectors.e), f32deep(w.emb));
    const p = g.properties;
    assert.equal(p.title, w.title ?? undefined);
    assert.equal(p.n, w.n);
    assert.equal(p.small, w.small);
    assert.equal(p.x, w.x);
    assert.equal(p.f, w.f);
    assert.equal(p.b, w.b);
    assert.equal(new Date(p.d).getTime(), new Date(w.d).getTime(), `${w.id} d ${p.d} ${w.d}`);
    assert.equal(new Date(p.ts).getTime(), new Date(w.ts).getTime(), `${w.id} ts ${p.ts} ${w.ts}`);
    assert.deepEqual(p.tags, w.tags);
    assert.deepEqual(p.nums, w.nums);
    assert.deepEqual(p.ints, w.ints);
    assert.equal(p.ref, w.ref);
    if (w.st) assert.deepEqual(p.st, JSON.parse(w.st)); // rows with an object take the text path
    else assert.equal(p.st, undefined);
  }
});

test('with a tenant the derived collection is multi-tenant; an existing target is kept as it is', async () => {
  let st = await run({ id: 'mt', source: { files: ['lake/derive.parquet'] }, collection: 'DerivedMT', createCollection: true, tenant: 't1', mapping: MAPPING });
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 800));
  assert.equal(st.objectsImported, N);
  const c = await srv.req('GET', '/v1/collections/DerivedMT');
  assert.equal(c.json.multiTenancy, true);
  assert.equal((await listAll(srv, 'DerivedMT', 't1')).size, N);
  // an existing collection is not changed: undeclared columns stay undeclared properties
  let r = await srv.req('POST', '/v1/collections', { name: 'Mine', vectors: { default: { dim: 8 }, named: { e: { dim: 3 } } }, properties: [{ name: 'title', type: 'text' }] });
  assert.equal(r.status, 200, r.text);
  st = await run({ id: 'mine', source: { files: ['lake/derive.parquet'] }, collection: 'Mine', createCollection: true, mapping: MAPPING });
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 800));
  r = await srv.req('GET', '/v1/collections/Mine');
  assert.deepEqual(r.json.properties, [{ name: 'title', type: 'text' }]);
  const one = [...(await listAll(srv, 'Mine')).values()].find((o) => o.properties.small === 7);
  assert.ok(one, 'undeclared properties imported too');
});

test('a vector column whose dimension cannot be read refuses createCollection and names the column', async () => {
  const st = await run({ id: 'novec', source: { files: ['lake/novec.parquet'] }, collection: 'NoVec', createCollection: true, mapping: { id: 'id', vector: 'vec' } });
  assert.equal(st.status, 422, JSON.stringify(st));
  assert.match(st.text, /dimension of vector column vec/);
  const c = await srv.req('GET', '/v1/collections/NoVec');
  assert.equal(c.status, 404);
});

test('mistakes are refused before any row is written: mapping errors, a non-vector column, a misspelt or missing tenant, a folder', async () => {
  await query(`COPY (SELECT id, vec, title, ref, n AS "x.y" FROM derive) TO '${path.join(lake, 'dotted.parquet')}' (FORMAT parquet)`);
  let r = await srv.req('POST', '/v1/collections', { name: 'Plain', vectors: { default: { dim: 8 } } });
  assert.equal(r.status, 200, r.text);
  r = await srv.req('POST', '/v1/collections', { name: 'Tenanted', vectors: { default: { dim: 8 } }, multiTenancy: true });
  assert.equal(r.status, 200, r.text);
  r = await srv.req('POST', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1' }] });
  assert.equal(r.status, 200, r.text);
  const src = { files: ['lake/dotted.parquet'] };
  const cases = [
    ['unknown mapping field', { collection: 'Plain', mapping: { vectr: 'vec' } }, /unknown field 'vectr'/],
    ['a property mapped to a number', { collection: 'Plain', mapping: { properties: { t: 5 } } }, /properties\.t must be a column name/],
    ['a bad property name', { collection: 'Plain', mapping: { properties: { 'bad name': 'title' } } }, /not a property name/],
    ['id and idKey', { collection: 'Plain', mapping: { id: 'id', idKey: 'title' } }, /not both/],
    ['text as vectors', { collection: 'Fresh1', createCollection: true, mapping: { id: 'id', vector: 'title' } }, /column 'title' cannot hold vectors: it is text/],
    ['a UUID as vectors', { collection: 'Fresh2', createCollection: true, mapping: { id: 'id', vector: 'ref' } }, /it is a UUID/],
    ['a misspelt tenant', { collection: 'Tenanted', tenant: 't2', mapping: { id: 'id', vector: 'vec', properties: { title: 'title' } } }, /tenant 't2' does not exist/],
    ['no tenant for a multi-tenant target', { collection: 'Tenanted', mapping: { id: 'id', vector: 'vec', properties: { title: 'title' } } }, /multi-tenant: name the tenant/],
  ];
  for (const [what, extra, re] of cases) {
    const st = await run({ id: `bad-${cases.findIndex((c) => c[0] === what)}`, source: src, ...extra });
    assert.equal(st.status, 422, `${what}: ${JSON.stringify(st)}`);
    assert.match(st.text, re, what);
  }
  assert.equal((await srv.req('GET', '/v1/collections/Fresh1')).status, 404, 'nothing created for a refused import');
  assert.equal((await srv.req('GET', '/v1/collections/Tenanted/tenants')).json.tenants.length, 1, 'no tenant added');
  // a folder is not a pattern; the error does not show the server's paths
  let st = await run({ id: 'folder', source: { files: ['lake/'] }, collection: 'Plain' });
  assert.equal(st.status, 422);
  assert.match(st.text, /names a folder/);
  assert.ok(!st.text.includes(root), st.text);
  // without createCollection a non-vector column fails the file with the reason
  st = await run({ id: 'textvec', source: src, collection: 'Plain', mapping: { id: 'id', vector: 'title' } });
  assert.equal(st.status, 'FAILED');
  assert.match(st.files[0].error, /cannot hold vectors: it is text/);
  assert.equal((await srv.req('GET', '/v1/collections/Plain/objects?limit=1')).json.objects.length, 0);
  // a column named with a dot is a column, not a path into a group
  st = await run({ id: 'dotted', source: src, collection: 'Plain', mapping: { id: 'id', vector: 'vec', properties: { xy: 'x.y', title: 'title' } } });
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 600));
  assert.equal(st.objectsImported, N);
  const got = [...(await listAll(srv, 'Plain')).values()];
  assert.equal(got.length, N);
  assert.ok(got.every((o) => typeof o.properties.xy === 'number'), JSON.stringify(got[0]));
  // without a mapping the dotted column cannot be a property of its name: the file fails saying how to map it
  st = await run({ id: 'dotted-rest', source: src, collection: 'Plain', onConflict: 'skip' });
  assert.equal(st.status, 'FAILED');
  assert.match(st.files[0].error, /column 'x\.y' cannot be a property of that name/);
  // the job's figures: totals known, items equal to rows
  const jobs = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs;
  const job = jobs.find((j) => j.target === 'dotted');
  assert.equal(job.itemsTotal, N, JSON.stringify(job));
  assert.equal(job.itemsDone, N, JSON.stringify(job));
  assert.ok(job.bytesTotal > 0, JSON.stringify(job));
  // a right tenant imports
  st = await run({ id: 'tenant-ok', source: src, collection: 'Tenanted', tenant: 't1', mapping: { id: 'id', vector: 'vec', properties: { title: 'title' } } });
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 600));
  assert.equal((await listAll(srv, 'Tenanted', 't1')).size, N);
});

test('symbolic links inside the root are not followed: not listed by a glob, refused when named', async () => {
  const outside = tempDir('sv-import-outside-');
  fs.copyFileSync(path.join(lake, 'derive.parquet'), path.join(outside, 'secret.parquet'));
  fs.mkdirSync(path.join(root, 'links'), { recursive: true });
  fs.symlinkSync(path.join(outside, 'secret.parquet'), path.join(root, 'links', 'secret.parquet'));
  fs.symlinkSync(outside, path.join(root, 'links', 'dir'));
  let st = await run({ id: 'link-glob', source: { files: ['links/*'] }, collection: 'Plain' });
  assert.equal(st.status, 422, JSON.stringify(st));
  assert.match(st.text, /matches no file/);
  st = await run({ id: 'link-dir', source: { files: ['links/dir/*.parquet'] }, collection: 'Plain' });
  assert.equal(st.status, 422, JSON.stringify(st));
  st = await run({ id: 'link-file', source: { files: ['links/secret.parquet'] }, collection: 'Plain' });
  assert.ok(st.status === 422 || st.status === 'FAILED', JSON.stringify(st));
  assert.match(JSON.stringify(st), /symbolic link|does not exist/);
  st = await run({ id: 'link-file2', source: { files: ['links/dir/secret.parquet'] }, collection: 'Plain' });
  assert.ok(st.status === 422 || st.status === 'FAILED', JSON.stringify(st));
  assert.equal((await srv.req('GET', '/v1/collections/Plain')).json.name, 'Plain');
  fs.rmSync(outside, { recursive: true, force: true });
});
