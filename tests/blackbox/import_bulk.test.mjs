// Bulk load (docs/import.md "Bulk load"): a shard's share of a row group of
// at least SHARDVAULT_IMPORT_BULK_MIN_OBJECTS objects goes in as one table
// file ingested whole. The same results as the write path must hold:
// exact counts, onConflict fail/skip/replace against objects written before
// (replace keeps their creationTime), ids repeated within and across row
// groups (the last row wins), writes and deletes after the import seeing
// the imported objects, and everything acknowledged surviving kill -9.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { listAll, query } from './lib/export.mjs';

const N = 24000; // rows; ids repeat: row i has id of (i % 20000), so 4000 are repeats
const DISTINCT = 20000;
const root = tempDir('sv-import-bulk-');
const idOf = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

test.before(async () => {
  fs.mkdirSync(path.join(root, 'lake'), { recursive: true });
  // row groups of 6000: ids 0..3999 appear in row group 0 and again in row
  // group 3 (rows 20000..23999); within row group 0 every id is distinct
  await query(`COPY (SELECT ('00000000-0000-4000-8000-' || lpad((i % ${DISTINCT})::VARCHAR, 12, '0')) AS id,
      [i::FLOAT, 1.5::FLOAT] AS vec, 'row ' || i AS title, i AS n FROM range(0, ${N}) r(i) ORDER BY i)
    TO '${path.join(root, 'lake', 'bulk.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 6000)`);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));

const collection = (name) => ({ name, shards: 2, vectors: { default: { dim: 2 } },
  properties: [{ name: 'title', type: 'text' }, { name: 'n', type: 'int' }] });
const body = (id, coll, onConflict) => ({ id, source: { files: ['lake/bulk.parquet'] }, collection: coll,
  mapping: { id: 'id', vector: 'vec', properties: { title: 'title', n: 'n' } }, onConflict });

async function finished(srv, id) {
  for (let i = 0; i < 6000; i++) {
    const r = await srv.req('GET', `/v1/import/filesystem/${id}`);
    if (r.status === 200 && !['STARTED', 'TRANSFERRING'].includes(r.json.status)) return r.json;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`import ${id} never finished`);
}

async function shardCount(srv, coll) {
  const r = await srv.req('GET', `/v1/collections/${coll}/shards`);
  assert.equal(r.status, 200, r.text);
  return r.json.shards.reduce((a, s) => a + s.objects, 0);
}

const listed = async (srv, coll) => (await listAll(srv, coll)).size;

test('bulk import into an empty collection: exact counts, the last row of a repeated id wins, kill -9 after SUCCESS loses nothing', async () => {
  const dataDir = tempDir('sv-import-bulk-data-');
  const env = { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BULK_MIN_OBJECTS: '1000' };
  let srv = await startServer({ dataDir, env });
  try {
    assert.equal((await srv.req('POST', '/v1/collections', collection('Bulk'))).status, 200);
    const r = await srv.req('POST', '/v1/import/filesystem', body('b1', 'Bulk', 'replace'));
    assert.equal(r.status, 202, r.text);
    const st = await finished(srv, 'b1');
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 500));
    assert.equal(st.objectsImported, N);
    assert.equal(st.objectsFailed, 0);
    // table files went in, not the write path: each shard holds .sst files
    // and its write-ahead log stays near empty (20,000 objects through the
    // write path would sit in the log and the memtable, with no .sst yet)
    const shardsDir = path.join(dataDir, 'shards');
    for (const uid of fs.readdirSync(shardsDir)) {
      for (const sh of fs.readdirSync(path.join(shardsDir, uid))) {
        const files = fs.readdirSync(path.join(shardsDir, uid, sh));
        assert.ok(files.filter((f) => f.endsWith('.sst')).length >= 3, `${sh}: ${files}`);
        const wal = files.filter((f) => f.endsWith('.log')).reduce((a, f) => a + fs.statSync(path.join(shardsDir, uid, sh, f)).size, 0);
        assert.ok(wal < 64 * 1024, `${sh}: ${wal} bytes of WAL`);
      }
    }
    assert.equal(await shardCount(srv, 'Bulk'), DISTINCT);
    assert.equal(await listed(srv, 'Bulk'), DISTINCT);
    // id 5 was written by rows 5 and 20005: the later row holds
    let o = await srv.req('GET', `/v1/collections/Bulk/objects/${idOf(5)}`);
    assert.equal(o.status, 200, o.text);
    assert.equal(o.json.properties.n, 20005);
    assert.deepEqual(o.json.vector, [20005, 1.5]);
    o = await srv.req('GET', `/v1/collections/Bulk/objects/${idOf(4001)}`);
    assert.equal(o.json.properties.title, 'row 4001');
    // writes after the import see the imported objects: a replace keeps the
    // count and the creationTime, a delete lowers it, a new id raises it
    const before = o.json;
    const put = await srv.req('PUT', `/v1/collections/Bulk/objects/${idOf(4001)}`,
      { vector: [0, 0], properties: { title: 'changed', n: -1 } });
    assert.equal(put.status, 200, put.text);
    assert.equal((await srv.req('DELETE', `/v1/collections/Bulk/objects/${idOf(7)}`)).status, 204);
    const post = await srv.req('POST', '/v1/collections/Bulk/objects',
      { id: '00000000-0000-4000-8000-999999999999', vector: [1, 1], properties: { title: 'new', n: 1 } });
    assert.ok([200, 201].includes(post.status), post.text);
    assert.equal(await shardCount(srv, 'Bulk'), DISTINCT);
    const after = (await srv.req('GET', `/v1/collections/Bulk/objects/${idOf(4001)}`)).json;
    assert.equal(after.properties.title, 'changed');
    assert.equal(after.creationTime, before.creationTime);
    await srv.kill9();
    srv = await startServer({ dataDir, env });
    assert.equal(await shardCount(srv, 'Bulk'), DISTINCT);
    assert.equal(await listed(srv, 'Bulk'), DISTINCT);
    o = await srv.req('GET', `/v1/collections/Bulk/objects/${idOf(19999)}`);
    assert.equal(o.json.properties.n, 19999);
    assert.equal((await srv.req('GET', `/v1/collections/Bulk/objects/${idOf(7)}`)).status, 404);
    // the bulk files left nothing behind in the scratch directory
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'tmp')).filter((f) => f.startsWith('bulk-')), []);
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('bulk import over objects written before: fail, skip and replace as the write path does', async () => {
  const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BULK_MIN_OBJECTS: '1000' } });
  try {
    for (const [coll, mode] of [['Fail', 'fail'], ['Skip', 'skip'], ['Repl', 'replace']]) {
      assert.equal((await srv.req('POST', '/v1/collections', collection(coll))).status, 200);
      // 3 objects that the file also has, and one it has not
      const pre = [idOf(10), idOf(4500), idOf(19000), '00000000-0000-4000-8000-888888888888'];
      const lines = pre.map((id) => JSON.stringify({ collection: coll, id, vector: [9, 9], properties: { title: 'pre', n: 0 } })).join('\n');
      const b = await srv.req('POST', '/v1/batch/objects', lines, { 'content-type': 'application/x-ndjson' });
      assert.equal(b.status, 200, b.text);
      const created = (await srv.req('GET', `/v1/collections/${coll}/objects/${idOf(4500)}`)).json.creationTime;
      await new Promise((res) => setTimeout(res, 5));
      const r = await srv.req('POST', '/v1/import/filesystem', body(`i-${mode}`, coll, mode));
      assert.equal(r.status, 202, r.text);
      const st = await finished(srv, `i-${mode}`);
      assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 500));
      assert.equal(await shardCount(srv, coll), DISTINCT + 1, mode);
      assert.equal(await listed(srv, coll), DISTINCT + 1, mode);
      const o = (await srv.req('GET', `/v1/collections/${coll}/objects/${idOf(4500)}`)).json;
      if (mode === 'replace') {
        assert.equal(st.objectsImported, N);
        assert.equal(o.properties.title, 'row 4500');
        assert.equal(o.creationTime, created, 'a replace keeps the creation time');
      } else {
        assert.equal(o.properties.title, 'pre', mode);
        // conflicts: rows 10, 4500 and 19000 (written before), and rows
        // 20000..23999, whose ids rows 0..3999 imported (row 20010 among them)
        if (mode === 'skip') {
          assert.equal(st.objectsSkipped, 3 + 4000);
          assert.equal(st.objectsImported, N - (3 + 4000));
        } else {
          assert.equal(st.objectsFailed, 3 + 4000);
          assert.ok(st.errors.length > 0 && /already exists/.test(st.errors[0].message), JSON.stringify(st.errors[0]));
        }
      }
    }
  } finally {
    await srv.stop();
  }
});

// onConflict fail and skip are decided by each part's own write (the shard's
// lookup under its write lock), so an id repeated inside one row group is a
// conflict too: one row of the id is written and every other row of it is
// reported (fail) or counted (skip). Which row is written is not fixed (the
// convert threads' batches are merged thread by thread), the counts are.
test('an id repeated inside one row group: fail reports and skip counts every row of it but one, with bulk load on and off', async () => {
  const ROWS = 3000;
  await query(`COPY (SELECT ('00000000-0000-4000-8000-' || lpad((CASE WHEN i >= 2000 THEN i - 2000 ELSE i END)::VARCHAR, 12, '0')) AS id,
      [i::FLOAT, 2.5::FLOAT] AS vec, 'row ' || i AS title, i AS n FROM range(0, ${ROWS}) r(i) ORDER BY i)
    TO '${path.join(root, 'lake', 'dup.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 10000)`);
  for (const bulkMin of ['1000', '0']) {
    const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BULK_MIN_OBJECTS: bulkMin } });
    try {
      for (const mode of ['fail', 'skip']) {
        const coll = `Dup_${mode}`;
        assert.equal((await srv.req('POST', '/v1/collections', collection(coll))).status, 200);
        // one id the file has (rows 500 and 2500), written before
        const pre = JSON.stringify({ collection: coll, id: idOf(500), vector: [9, 9], properties: { title: 'pre', n: -5 } });
        assert.equal((await srv.req('POST', '/v1/batch/objects', pre, { 'content-type': 'application/x-ndjson' })).status, 200);
        const r = await srv.req('POST', '/v1/import/filesystem', { id: `dup-${mode}`, source: { files: ['lake/dup.parquet'] },
          collection: coll, mapping: { id: 'id', vector: 'vec', properties: { title: 'title', n: 'n' } }, onConflict: mode });
        assert.equal(r.status, 202, r.text);
        const st = await finished(srv, `dup-${mode}`);
        const what = `bulk min ${bulkMin}, ${mode}: ${JSON.stringify(st).slice(0, 400)}`;
        assert.equal(st.status, 'SUCCESS', what);
        // 2000 distinct ids in rows 0..1999 plus the one written before; rows
        // 2000..2999 repeat ids 0..999; id 500 (rows 500 and 2500) was written before
        assert.equal(st.objectsImported, ROWS - 1000 - 1, what);
        if (mode === 'fail') {
          assert.equal(st.objectsFailed, 1001, what);
          assert.equal(st.objectsSkipped, 0, what);
          for (const e of st.errors) assert.match(e.message, /already exists \(onConflict: fail\)/, what);
          // every error names a repeated id (0..999) or the one written before
          for (const e of st.errors) assert.ok(Number(e.id.slice(-12)) < 1000 || e.id === idOf(500), what);
        } else {
          assert.equal(st.objectsSkipped, 1001, what);
          assert.equal(st.objectsFailed, 0, what);
        }
        assert.equal(await shardCount(srv, coll), 2000, what);
        assert.equal(await listed(srv, coll), 2000, what);
        const held = (await srv.req('GET', `/v1/collections/${coll}/objects/${idOf(500)}`)).json;
        assert.equal(held.properties.title, 'pre', 'the object written before stays');
        const o = (await srv.req('GET', `/v1/collections/${coll}/objects/${idOf(7)}`)).json;
        assert.ok([7, 2007].includes(o.properties.n), what);
        assert.equal(o.properties.title, `row ${o.properties.n}`, 'one row, whole');
      }
    } finally {
      await srv.stop();
      srv.cleanup();
    }
  }
});
