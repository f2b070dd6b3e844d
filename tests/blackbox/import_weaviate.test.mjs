// Import of files in Weaviate's own export layout (as Weaviate writes them:
// no shardvault footer metadata; vector as little-endian float32 bytes;
// named/multi vectors and properties as JSON bytes), written here by DuckDB
// into {root}/{id}/ with an export_metadata.json, imported by
// {"source": {"export": id}} into an existing collection.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { query, listAll } from './lib/export.mjs';

test("Weaviate's export layout imports into an existing collection", async () => {
  const root = tempDir('sv-import-wv-');
  fs.mkdirSync(path.join(root, 'wv-1'));
  fs.writeFileSync(path.join(root, 'wv-1', 'export_metadata.json'), JSON.stringify({ id: 'wv-1', status: 'SUCCESS', classes: ['Article'] }));
  await query(`COPY (SELECT
      md5('wv' || i)::UUID::VARCHAR AS id, 1700000000000 + i AS creation_time, 1700000000000 + i AS update_time,
      CASE WHEN i % 4 = 0 THEN NULL ELSE from_hex(
        CASE WHEN i % 2 = 0 THEN '0000803F' ELSE '00000040' END || '0000003F' || '000080BF') END AS vector,
      encode('{"title":[' || i || ',1]}')::BLOB AS named_vectors,
      CASE WHEN i % 3 = 0 THEN NULL ELSE encode('{"colbert":[[1,2],[3,' || i || ']]}')::BLOB END AS multi_vectors,
      encode('{"title":"Wv ' || i || ' ü","views":' || i || ',"tags":["a","b"]}')::BLOB AS properties
    FROM range(0, 50) r(i)) TO '${path.join(root, 'wv-1', 'Article_shard0000_0000.parquet')}' (FORMAT parquet)`);
  const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root } });
  try {
    let r = await srv.req('POST', '/v1/collections', { name: 'Article',
      vectors: { default: { dim: 3 }, named: { title: { dim: 2 } }, multi: { colbert: { dim: 2 } } },
      properties: [{ name: 'title', type: 'text' }, { name: 'views', type: 'int' }, { name: 'tags', type: 'text[]' }] });
    assert.equal(r.status, 200, r.text);
    // without the schema in the footer a missing target cannot be created
    r = await srv.req('POST', '/v1/import/filesystem', { id: 'wv-new', source: { export: 'wv-1' }, collection: 'Fresh', createCollection: true });
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.error[0].message, /shardvault\.schema/);
    r = await srv.req('POST', '/v1/import/filesystem', { id: 'wv', source: { export: 'wv-1' } });
    assert.equal(r.status, 202, r.text);
    let st;
    do { st = (await srv.req('GET', '/v1/import/filesystem/wv')).json; } while (['STARTED', 'TRANSFERRING'].includes(st.status));
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 600));
    assert.equal(st.objectsImported, 50, JSON.stringify(st.errors.slice(0, 2)));
    const got = await listAll(srv, 'Article');
    assert.equal(got.size, 50);
    const want = await query(`SELECT i, md5('wv' || i)::UUID::VARCHAR AS id FROM range(0, 50) r(i)`);
    for (const { i: bi, id } of want) {
      const i = Number(bi);
      const o = got.get(id);
      assert.ok(o, id);
      assert.deepEqual(o.vector ?? null, i % 4 === 0 ? null : [i % 2 === 0 ? 1 : 2, 0.5, -1], `${id} vector`);
      assert.deepEqual(o.namedVectors, { title: [i, 1] });
      assert.deepEqual(o.multiVectors ?? null, i % 3 === 0 ? null : { colbert: [[1, 2], [3, i]] });
      assert.deepEqual(o.properties, { title: `Wv ${i} ü`, views: i, tags: ['a', 'b'] });
    }
  } finally {
    await srv.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
