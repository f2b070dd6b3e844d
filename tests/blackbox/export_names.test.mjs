// Export file names stay unambiguous when collection and shard names contain
// '_': collection X with tenant y_shard0000 and collection X_y (fixed shards)
// with shard0000 once both wrote X_y_shard0000_0000.parquet, so the export
// reported SUCCESS for 5 objects while its files held 3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, rng, uuidFrom, vec } from './lib/server.mjs';
import { batch, waitExport, readExportDir, kvMetadata } from './lib/export.mjs';

test('names with underscores: every object is in the files, names do not collide', async (t) => {
  const srv = await startServer({ env: { EXPORT_PARALLELISM: '2' } });
  t.after(async () => { await srv.stop(); srv.cleanup(); });
  const rand = rng(11);
  const props = [{ name: 'n', type: 'int' }];
  let r = await srv.req('POST', '/v1/collections', { name: 'X', multiTenancy: true, vectors: { default: { dim: 4 } }, properties: props });
  assert.equal(r.status, 200, r.text);
  r = await srv.req('POST', '/v1/collections/X/tenants', { tenants: [{ name: 'y_shard0000' }] });
  assert.equal(r.status, 200, r.text);
  r = await srv.req('POST', '/v1/collections', { name: 'X_y', shards: 1, vectors: { default: { dim: 4 } }, properties: props });
  assert.equal(r.status, 200, r.text);
  const want = new Map(); // id -> [collection, shard]
  const mt = Array.from({ length: 2 }, (_, i) => ({ collection: 'X', tenant: 'y_shard0000', id: uuidFrom(rand), vector: vec(rand, 4), properties: { n: i } }));
  const st = Array.from({ length: 3 }, (_, i) => ({ collection: 'X_y', id: uuidFrom(rand), vector: vec(rand, 4), properties: { n: 10 + i } }));
  await batch(srv, mt);
  await batch(srv, st);
  for (const o of mt) want.set(o.id, ['X', 'y_shard0000']);
  for (const o of st) want.set(o.id, ['X_y', 'shard0000']);

  r = await srv.req('POST', '/v1/export/filesystem', { id: 'names-1' });
  assert.equal(r.status, 200, r.text);
  const done = await waitExport(srv, 'filesystem', 'names-1');
  assert.equal(done.status, 'SUCCESS', JSON.stringify(done));
  assert.equal(done.shardStatus.X.y_shard0000.objectsExported, 2);
  assert.equal(done.shardStatus.X_y.shard0000.objectsExported, 3);

  const dir = path.join(srv.dataDir, 'exports', 'names-1');
  const { files, rows } = await readExportDir(dir);
  assert.equal(files.length, 2, `one file per shard: ${files}`);
  assert.equal(new Set(files).size, files.length);
  // Every object is in the files, once, in the file of its own shard.
  assert.equal(rows.length, 5, `rows in the files: ${rows.length}`);
  const seen = new Set();
  for (const row of rows) {
    assert.ok(want.has(row.id), `row ${row.id} is a source object`);
    assert.ok(!seen.has(row.id), `row ${row.id} exported once`);
    seen.add(row.id);
    const [coll, shard] = want.get(row.id);
    const kv = await kvMetadata(row.filename);
    assert.equal(kv.collection, coll, `${row.id} in ${path.basename(row.filename)}`);
    assert.equal(kv['shardvault.shard'], shard, `${row.id} in ${path.basename(row.filename)}`);
  }
  assert.equal(seen.size, 5);
  // The escaped names (docs/export.md): '_' inside a name becomes '.'.
  assert.deepEqual(files.sort(), ['X.y_shard0000_0000.parquet', 'X_y.shard0000_0000.parquet']);
});
