// Export API on the filesystem backend: every value survives (both schemas,
// all codecs, single- and multi-tenant, named and multi vectors, every
// property type, unicode), read back by DuckDB; validation errors; status,
// list, id reuse, empty collections, key-range splitting, metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, rng } from './lib/server.mjs';
import {
  EVERYTHING, makeObject, batch, listAll, waitExport, readExportDir, kvMetadata, query,
  checkTypedRow, checkWeaviateRow,
} from './lib/export.mjs';

let srv;
let src;       // id -> API object, collection Everything
let srcMT;     // tenant -> Map(id -> object), collection Tenanted
const root = () => path.join(srv.dataDir, 'exports');

before(async () => {
  // Small files so shards split into several key ranges.
  srv = await startServer({ env: { EXPORT_ROWS_PER_FILE: '150', EXPORT_PARALLELISM: '3' } });
  const rand = rng(7);
  assert.equal((await srv.req('POST', '/v1/collections', EVERYTHING('Everything'))).status, 200);
  const objs = Array.from({ length: 900 }, (_, i) => makeObject(rand, 'Everything', i));
  await batch(srv, objs);
  src = await listAll(srv, 'Everything');
  assert.equal(src.size, objs.length);

  const mt = EVERYTHING('Tenanted', { shards: undefined, multiTenancy: true });
  delete mt.shards;
  assert.equal((await srv.req('POST', '/v1/collections', mt)).status, 200, 'MT collection');
  const t = await srv.req('POST', '/v1/collections/Tenanted/tenants',
    { tenants: [{ name: 'alpha' }, { name: 'beta' }, { name: 'gamma' }, { name: 'empty' }] });
  assert.equal(t.status, 200, t.text);
  srcMT = {};
  for (const [tenant, n] of [['alpha', 200], ['beta', 40], ['gamma', 330]]) {
    const o = Array.from({ length: n }, (_, i) => ({ ...makeObject(rand, 'Tenanted', i), tenant }));
    await batch(srv, o);
    srcMT[tenant] = await listAll(srv, 'Tenanted', tenant);
    assert.equal(srcMT[tenant].size, n);
  }
  // beta is INACTIVE: captured from disk without loading.
  const d = await srv.req('PUT', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 'beta', status: 'INACTIVE' }] });
  assert.equal(d.status, 200, d.text);
  assert.equal((await srv.req('POST', '/v1/collections', { name: 'Empty', shards: 2, properties: [{ name: 'x', type: 'text' }] })).status, 200);
});

after(async () => {
  if (srv) { await srv.stop(); srv.cleanup(); }
});

async function runExport(id, body) {
  const r = await srv.req('POST', '/v1/export/filesystem', { id, ...body });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id, id);
  assert.equal(r.json.backend, 'filesystem');
  assert.equal(r.json.status, 'STARTED');
  assert.equal(r.json.path, path.join(fs.realpathSync(root()), id));
  assert.ok(!Number.isNaN(Date.parse(r.json.startedAt)));
  const st = await waitExport(srv, 'filesystem', id);
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st));
  return { created: r.json, st };
}

for (const schema of ['typed', 'weaviate']) {
  for (const compression of ['zstd', 'snappy', 'none']) {
    test(`every value survives: schema ${schema}, ${compression}`, async () => {
      const id = `all-${schema}-${compression}`;
      const { created, st } = await runExport(id, {
        file_format: 'parquet', include: ['Everything', 'Tenanted'],
        options: { schema, compression, ...(compression === 'zstd' ? { compression_level: 5 } : {}) },
      });
      assert.deepEqual(created.classes, ['Everything', 'Tenanted']);
      assert.ok(st.tookInMs >= 0 && st.completedAt);
      // Shard status: 3 shards, 4 tenants (one SKIPPED "no data").
      assert.deepEqual(Object.keys(st.shardStatus).sort(), ['Everything', 'Tenanted']);
      const ev = st.shardStatus.Everything;
      assert.deepEqual(Object.keys(ev).sort(), ['shard0000', 'shard0001', 'shard0002']);
      assert.equal(Object.values(ev).reduce((a, s) => a + s.objectsExported, 0), src.size);
      for (const s of Object.values(ev)) { assert.equal(s.status, 'SUCCESS'); assert.ok(s.bytesWritten > 0); }
      const tn = st.shardStatus.Tenanted;
      assert.deepEqual(tn.empty, { status: 'SKIPPED', objectsExported: 0, bytesWritten: 0, skipReason: 'no data' });
      for (const t of ['alpha', 'beta', 'gamma']) {
        assert.equal(tn[t].status, 'SUCCESS', t);
        assert.equal(tn[t].objectsExported, srcMT[t].size, t);
      }

      const dir = path.join(root(), id);
      const { files, rows } = await readExportDir(dir);
      // Key-range files: ~150 rows per file, names {collection}_{shard}_{range:04d}.parquet.
      for (const f of files) assert.match(f, /^(Everything_shard000[0-2]|Tenanted_(alpha|beta|gamma))_\d{4}\.parquet$/);
      assert.ok(files.filter((f) => f.startsWith('Everything_shard0000_')).length >= 2, `shards split: ${files}`);
      assert.ok(files.includes('Tenanted_gamma_0002.parquet'), 'gamma (330 objects) split into 3 ranges');
      assert.ok(!files.some((f) => f.includes('empty')), 'no file for an empty tenant');
      assert.equal(rows.length, src.size + 570);
      const check = schema === 'typed' ? checkTypedRow : checkWeaviateRow;
      const seen = new Set();
      for (const row of rows) {
        const base = path.basename(row.filename);
        const tenant = base.startsWith('Tenanted_') ? base.split('_')[1] : null;
        const s = tenant ? srcMT[tenant].get(row.id) : src.get(row.id);
        assert.ok(s, `row ${row.id} in ${base} is a source object`);
        assert.ok(!seen.has(row.id), `row ${row.id} exported once`);
        seen.add(row.id);
        check(row, s);
      }
      // Footer key-value metadata.
      const kv = await kvMetadata(path.join(dir, 'Tenanted_alpha_0000.parquet'));
      assert.equal(kv.collection, 'Tenanted');
      assert.equal(kv.tenant, 'alpha');
      assert.equal(kv['shardvault.export_id'], id);
      const desc = JSON.parse(kv['shardvault.schema']);
      assert.equal(desc.schema, schema);
      assert.ok(Array.isArray(desc.columns) && desc.columns.some((c) => c.name === 'id'));
      const kv2 = await kvMetadata(path.join(dir, 'Everything_shard0001_0000.parquet'));
      assert.equal(kv2.collection, 'Everything');
      assert.equal(kv2.tenant, undefined, 'no tenant key for a single-tenant collection');
      // Codec as DuckDB sees it.
      const codecs = await query(`SELECT DISTINCT compression FROM parquet_metadata('${path.join(dir, 'Everything_shard0000_0000.parquet')}')`);
      assert.deepEqual(codecs.map((c) => c.compression), [{ zstd: 'ZSTD', snappy: 'SNAPPY', none: 'UNCOMPRESSED' }[compression]]);
      // The metadata file is the source of truth and matches the status.
      const meta = JSON.parse(fs.readFileSync(path.join(dir, 'export_metadata.json'), 'utf8'));
      assert.equal(meta.status, 'SUCCESS');
      assert.equal(meta.format_version, 1);
      assert.deepEqual(meta.shardStatus, st.shardStatus);
      assert.deepEqual(meta.nodeAssignments.node1.Everything, ['shard0000', 'shard0001', 'shard0002']);
      const node = JSON.parse(fs.readFileSync(path.join(dir, 'node_node1_status.json'), 'utf8'));
      assert.equal(node.status, 'SUCCESS');
      assert.deepEqual(node.shardProgress, st.shardStatus);
    });
  }
}

test('DuckDB: SELECT properties.title, len(vector) just works', async () => {
  const id = 'duck';
  await runExport(id, { include: ['Everything'] });
  const f = path.join(root(), id, 'Everything_shard0000_0000.parquet');
  const rows = await query(`SELECT id, properties.title, len(vector) AS n FROM '${f}'`);
  assert.ok(rows.length > 0);
  for (const r of rows) {
    const s = src.get(r.id);
    assert.equal(r.title, s.properties.title ?? null);
    assert.equal(r.n === null ? null : Number(r.n), s.vector ? 8 : null);
  }
  const types = await query(`DESCRIBE SELECT * FROM '${f}'`);
  const t = Object.fromEntries(types.map((x) => [x.column_name, x.column_type]));
  assert.equal(t.id, 'VARCHAR');
  assert.equal(t.creation_time, 'TIMESTAMP WITH TIME ZONE');
  assert.equal(t.vector, 'FLOAT[]');
  assert.equal(t.properties.replaceAll('"', ''), 'STRUCT(title VARCHAR, views BIGINT, score DOUBLE, published BOOLEAN, '
    + 'when TIMESTAMP WITH TIME ZONE, ref VARCHAR, tags VARCHAR[], counts BIGINT[], weights DOUBLE[], flags BOOLEAN[], '
    + 'dates TIMESTAMP WITH TIME ZONE[], refs VARCHAR[], meta JSON)');
  assert.equal(t.named_vectors, 'STRUCT(title FLOAT[], image FLOAT[])');
  assert.equal(t.multi_vectors, 'STRUCT(colbert FLOAT[][])');
  assert.equal(t.properties_json, 'JSON');
});

test('exclude, default options, empty collection, id reuse, list', async () => {
  const { created, st } = await runExport('exclude-1', { exclude: ['Everything', 'Tenanted'] });
  assert.deepEqual(created.classes, ['Empty']);
  assert.deepEqual(st.shardStatus.Empty, {
    shard0000: { status: 'SKIPPED', objectsExported: 0, bytesWritten: 0, skipReason: 'no data' },
    shard0001: { status: 'SKIPPED', objectsExported: 0, bytesWritten: 0, skipReason: 'no data' },
  });
  const files = fs.readdirSync(path.join(root(), 'exclude-1')).sort();
  assert.deepEqual(files, ['export_metadata.json', 'node_node1_status.json']);
  // An id is used once its metadata exists, whatever the outcome.
  const again = await srv.req('POST', '/v1/export/filesystem', { id: 'exclude-1', include: ['Empty'] });
  assert.equal(again.status, 409, again.text);
  assert.match(again.json.error[0].message, /already used/);
  const list = await srv.req('GET', '/v1/export/filesystem');
  assert.equal(list.status, 200);
  assert.ok(Array.isArray(list.json));
  const ids = list.json.map((e) => e.id);
  assert.ok(ids.includes('exclude-1') && ids.includes('all-typed-zstd'), ids.join(','));
  for (const e of list.json) assert.equal(e.status, 'SUCCESS');
  const starts = list.json.map((e) => e.startedAt);
  assert.deepEqual(starts, [...starts].sort(), 'oldest first');
  // The metrics saw them.
  const m = await srv.req('GET', '/metrics');
  const succ = Number(/shardvault_export_operations_total\{status="success"\} (\d+)/.exec(m.text)[1]);
  assert.ok(succ >= 2);
  assert.match(m.text, /shardvault_export_objects_total [1-9]\d*/);
  assert.match(m.text, /shardvault_export_bytes_total [1-9]\d*/);
  assert.match(m.text, /shardvault_export_duration_seconds_count [1-9]/);
});

test('validation errors', async () => {
  const post = (backend, body) => srv.req('POST', `/v1/export/${backend}`, body);
  const cases = [
    ['bad id', 'filesystem', { id: 'Bad-ID' }, 422, /invalid/],
    ['id too long', 'filesystem', { id: 'a'.repeat(129) }, 422, /128|long/],
    ['id with slash', 'filesystem', { id: '../x' }, 422, /a-z0-9/],
    ['no id', 'filesystem', { include: ['Everything'] }, 422, /"id" is required/],
    ['both include and exclude', 'filesystem', { id: 'x1', include: ['Everything'], exclude: ['Empty'] }, 422, /not both/],
    ['unknown collection only', 'filesystem', { id: 'x2', include: ['Nope'] }, 422, /Nope/],
    ['everything excluded', 'filesystem', { id: 'x3', exclude: ['Everything', 'Tenanted', 'Empty'] }, 422, /nothing to export/],
    ['unknown backend', 'gcs', { id: 'x4' }, 422, /unknown export backend/],
    ['file format', 'filesystem', { id: 'x5', file_format: 'csv' }, 422, /parquet/],
    ['bad schema option', 'filesystem', { id: 'x6', options: { schema: 'arrow' } }, 422, /typed/],
    ['bad codec', 'filesystem', { id: 'x7', options: { compression: 'lz4' } }, 422, /zstd/],
    ['bad level', 'filesystem', { id: 'x8', options: { compression_level: 99 } }, 422, /1 to 22/],
    ['path from request', 'filesystem', { id: 'x9', config: { path: '/etc' } }, 422, /set by the server/],
    ['s3 without bucket', 's3', { id: 'x10' }, 422, /EXPORT_DEFAULT_BUCKET/],
  ];
  for (const [name, backend, body, status, re] of cases) {
    const r = await post(backend, body);
    assert.equal(r.status, status, `${name}: ${r.text}`);
    assert.match(r.json.error[0].message, re, name);
  }
  const bad = await srv.req('POST', '/v1/export/filesystem', '{"id":');
  assert.equal(bad.status, 400);
  // Nothing was created by the refused requests.
  for (let i = 1; i <= 10; i++) assert.ok(!fs.existsSync(path.join(root(), `x${i}`)));
  assert.equal((await srv.req('GET', '/v1/export/filesystem/nope')).status, 404);
  assert.equal((await srv.req('GET', '/v1/export/filesystem/..')).status, 404);
  assert.equal((await srv.req('DELETE', '/v1/export/filesystem/nope')).status, 404);
  const fin = await srv.req('DELETE', '/v1/export/filesystem/duck');
  assert.equal(fin.status, 409, 'cancel of a finished export');
  assert.match(fin.json.error[0].message, /already finished \(SUCCESS\)/);
});

test('EXPORT_ENABLED=false refuses exports', async () => {
  const s = await startServer({ env: { EXPORT_ENABLED: 'false' } });
  try {
    await s.req('POST', '/v1/collections', { name: 'A', properties: [] });
    const r = await s.req('POST', '/v1/export/filesystem', { id: 'x' });
    assert.equal(r.status, 422);
    assert.match(r.json.error[0].message, /EXPORT_ENABLED/);
  } finally {
    await s.stop();
    s.cleanup();
  }
});
