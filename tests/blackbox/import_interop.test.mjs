// Import, interop: Parquet written by DuckDB (v1 and v2 pages, every codec
// it has, dictionary and plain) and by Arrow's writer (parquet-wasm: PLAIN,
// dictionary, DELTA_*, BYTE_STREAM_SPLIT, its codecs) with every supported
// type, imported through the product (POST /v1/import/filesystem with a
// mapping) and read back over the API: every value equal to DuckDB's
// reading of the same file. Plus the faults: a truncated file, a corrupt
// page, a wrong mapping — the file fails with its reason, the others import.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as pw from 'parquet-wasm';
import { startServer, tempDir, f32deep } from './lib/server.mjs';
import { query, listAll } from './lib/export.mjs';

const root = tempDir('sv-import-interop-');
const lake = path.join(root, 'lake');
fs.mkdirSync(lake, { recursive: true });
let srv;

const N = 300;
// Every type of the issue; nulls in every nullable column; unicode; nesting.
const TABLE = `SELECT
  uuid() AS id,
  CASE WHEN i % 9 = 0 THEN NULL ELSE [i::FLOAT / 3, -i::FLOAT, 0.25::FLOAT, 1e-3::FLOAT] END AS vec,
  CASE WHEN i % 5 = 0 THEN NULL ELSE 'name-' || (i % 7) || ' Ünïcödé 日本 🚀' END AS s,
  (i % 100 - 50)::TINYINT AS i8, (i * 37 % 60000 - 30000)::SMALLINT AS i16, (i * 1000003)::INTEGER AS i32,
  (i * 1000000007)::BIGINT AS i64, (i % 250)::UTINYINT AS u8, (i * 7 % 65000)::USMALLINT AS u16,
  (i * 1000003)::UINTEGER AS u32, (i * 1000000007)::UBIGINT AS u64,
  CASE WHEN i % 4 = 0 THEN NULL ELSE i * 1.25 - 3 END AS dbl, (i / 7)::FLOAT AS flt,
  (i::DECIMAL(9,2) / 4) AS dec9, (i::DECIMAL(18,4) * 1234.5678) AS dec18, (i::DECIMAL(30,3) * 99.125) AS dec30,
  (i % 3 = 0) AS b, DATE '2000-02-28' + (i * 13)::INTEGER AS dt,
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 1000003) MICROSECOND AS ts_us,
  (TIMESTAMP '1969-12-31 23:59:00' + INTERVAL (i * 7) MILLISECOND)::TIMESTAMP_MS AS ts_ms,
  uuid() AS ref,
  CASE WHEN i % 6 = 0 THEN [] WHEN i % 6 = 1 THEN NULL ELSE ['p', NULL, 'q' || i] END AS tags,
  CASE WHEN i % 5 = 0 THEN NULL ELSE [[i, i + 1], [], NULL, [i + 2]] END AS nested,
  {'a': i, 'b': 'x' || i, 'c': [1.5, i::DOUBLE]} AS st,
  ('{"k":' || i || ',"arr":[1,"two",null]}')::JSON AS js,
  ('\\x00\\xff' || i)::BLOB AS bin
FROM range(0, ${N}) r(i)`;

const deepNum = (v) => (typeof v === 'bigint' ? Number(v) : Array.isArray(v) ? v.map(deepNum) : v);

// DuckDB's reading of a file, as the values the API should return.
async function expected(file) {
  // Arrow's writer keeps a UUID as plain FIXED_LEN_BYTE_ARRAY(16): DuckDB
  // reads a BLOB then; the importer takes such an id column as a UUID and
  // any other unannotated bytes (ref) as base64; its JSON is plain STRING.
  const [t] = await query(`SELECT typeof(id) AS tid, typeof(ref) AS tref, typeof(js) AS tjs FROM read_parquet('${file}') LIMIT 1`);
  const uuidOf = (c) => (t[c === 'id' ? 'tid' : 'tref'] === 'UUID' ? `${c}::VARCHAR`
    : `regexp_replace(lower(hex(${c})), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\\1-\\2-\\3-\\4-\\5')`);
  const refExpr = t.tref === 'UUID' ? 'ref::VARCHAR' : 'to_base64(ref)';
  const rows = await query(`SELECT ${uuidOf('id')} AS id, vec, s, i8, i16, i32, i64::DOUBLE AS i64, u8, u16, u32,
      u64::DOUBLE AS u64, dbl, flt, dec9::DOUBLE AS dec9, dec18::DOUBLE AS dec18, dec30::DOUBLE AS dec30, b,
      strftime(dt, '%Y-%m-%dT00:00:00Z') AS dt, strftime(ts_us, '%Y-%m-%dT%H:%M:%S.%fZ') AS ts_us,
      strftime(ts_ms, '%Y-%m-%dT%H:%M:%S.%gZ') AS ts_ms, ${refExpr} AS ref, tags, nested,
      to_json(st)::VARCHAR AS st, js::VARCHAR AS js, to_base64(bin) AS bin
    FROM read_parquet('${file}')`);
  const out = new Map();
  for (const r of rows) {
    const p = {};
    for (const [k, v] of Object.entries(r)) {
      if (k === 'id' || k === 'vec' || v === null) continue;
      if (k === 'st' || (k === 'js' && t.tjs === 'JSON')) p[k] = JSON.parse(v);
      else p[k] = deepNum(v);
    }
    const o = { id: r.id, properties: p };
    if (r.vec) o.vector = f32deep(r.vec);
    out.set(r.id, o);
  }
  return out;
}

const MAPPING = { id: 'id', vector: 'vec', properties: { '*': 'rest' } };

async function importFiles(id, files, collection, extra = {}) {
  let r = await srv.req('POST', '/v1/collections', { name: collection, vectors: { default: { dim: 4 } } });
  assert.equal(r.status, 200, r.text);
  r = await srv.req('POST', '/v1/import/filesystem', { id, source: { files }, collection, mapping: MAPPING, onConflict: 'fail', ...extra });
  assert.equal(r.status, 202, r.text);
  for (;;) {
    const s = await srv.req('GET', `/v1/import/filesystem/${id}`);
    if (!['STARTED', 'TRANSFERRING'].includes(s.json.status)) return s.json;
    await new Promise((res) => setTimeout(res, 50));
  }
}

function compare(got, want, what) {
  assert.equal(got.size, want.size, `${what}: ${got.size} objects, want ${want.size}`);
  for (const [id, w] of want) {
    const g = got.get(id);
    assert.ok(g, `${what}: ${id} missing`);
    assert.deepEqual(g.vector && f32deep(g.vector), w.vector, `${what} ${id} vector`);
    for (const [k, v] of Object.entries(w.properties)) {
      assert.deepEqual(g.properties[k], v, `${what} ${id} ${k}`);
    }
    assert.deepEqual(Object.keys(g.properties).sort(), Object.keys(w.properties).sort(), `${what} ${id} keys`);
  }
}

const variants = [];

test.before(async () => {
  await query(`CREATE OR REPLACE TABLE interop AS ${TABLE}`);
  for (const codec of ['uncompressed', 'snappy', 'zstd', 'gzip', 'lz4_raw']) {
    for (const v of ['V1', 'V2']) {
      const f = `duck_${codec}_${v}.parquet`;
      await query(`COPY interop TO '${path.join(lake, f)}' (FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${v}, ROW_GROUP_SIZE 100)`);
      variants.push(f);
    }
  }
  await query(`COPY interop TO '${path.join(lake, 'duck_plain.parquet')}' (FORMAT parquet, DICTIONARY_COMPRESSION_RATIO_THRESHOLD -1, ROW_GROUP_SIZE 128)`);
  variants.push('duck_plain.parquet');
  // Arrow's writer, from DuckDB's file (Arrow writes UUIDs as plain bytes).
  const srcBytes = new Uint8Array(fs.readFileSync(path.join(lake, 'duck_plain.parquet')));
  const arrow = {
    plain: (b) => b.setDictionaryEnabled(false).setEncoding(pw.Encoding.PLAIN),
    dict: (b) => b.setDictionaryEnabled(true),
    delta: (b) => b.setDictionaryEnabled(false).setColumnEncoding('i64', pw.Encoding.DELTA_BINARY_PACKED)
      .setColumnEncoding('i32', pw.Encoding.DELTA_BINARY_PACKED).setColumnEncoding('s', pw.Encoding.DELTA_BYTE_ARRAY)
      .setColumnEncoding('js', pw.Encoding.DELTA_LENGTH_BYTE_ARRAY).setColumnEncoding('st.b', pw.Encoding.DELTA_BYTE_ARRAY),
    bss: (b) => b.setDictionaryEnabled(false).setColumnEncoding('dec9', pw.Encoding.BYTE_STREAM_SPLIT)
      .setColumnEncoding('flt', pw.Encoding.BYTE_STREAM_SPLIT).setColumnEncoding('vec.list.element', pw.Encoding.BYTE_STREAM_SPLIT),
    snappy_v2: (b) => b.setCompression(pw.Compression.SNAPPY).setWriterVersion(pw.WriterVersion.V2),
    zstd: (b) => b.setCompression(pw.Compression.ZSTD),
    gzip: (b) => b.setCompression(pw.Compression.GZIP),
    lz4raw_v2: (b) => b.setCompression(pw.Compression.LZ4_RAW).setWriterVersion(pw.WriterVersion.V2),
  };
  for (const [name, f] of Object.entries(arrow)) {
    const props = f(new pw.WriterPropertiesBuilder().setMaxRowGroupSize(77)).build();
    fs.writeFileSync(path.join(lake, `arrow_${name}.parquet`), pw.writeParquet(pw.readParquet(srcBytes), props));
    variants.push(`arrow_${name}.parquet`);
  }
  srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root } });
});

test.after(async () => {
  await srv?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

test('every DuckDB and Arrow variant reads value by value as DuckDB reads it', async () => {
  let k = 0;
  for (const f of variants) {
    const coll = `Interop${k++}`;
    const st = await importFiles(`v${k}`, [`lake/${f}`], coll);
    assert.equal(st.status, 'SUCCESS', `${f}: ${JSON.stringify(st).slice(0, 600)}`);
    assert.equal(st.objectsImported, N, `${f}: ${JSON.stringify(st.errors.slice(0, 2))}`);
    assert.equal(st.files[0].rows, N);
    compare(await listAll(srv, coll), await expected(path.join(lake, f)), f);
  }
});

test('a glob imports every matching file; faults fail only their file, with the reason', async () => {
  const good = fs.readFileSync(path.join(lake, 'duck_zstd_V2.parquet'));
  const bad = path.join(root, 'bad');
  fs.mkdirSync(bad, { recursive: true });
  fs.writeFileSync(path.join(bad, 'a_good.parquet'), good);
  fs.writeFileSync(path.join(bad, 'b_truncated.parquet'), good.subarray(0, good.length - 100));
  const corrupt = Buffer.from(good);
  for (let i = 4; i < 400; i++) corrupt[i] ^= 0xa5; // the first pages
  fs.writeFileSync(path.join(bad, 'c_corrupt.parquet'), corrupt);
  fs.writeFileSync(path.join(bad, 'notes.txt'), 'not matched');
  const st = await importFiles('faults', ['bad/*.parquet'], 'Faults');
  assert.equal(st.status, 'FAILED');
  assert.match(st.error, /2 of 3 files failed/);
  const byName = Object.fromEntries(st.files.map((f) => [f.name, f]));
  assert.deepEqual(Object.keys(byName).sort(), ['bad/a_good.parquet', 'bad/b_truncated.parquet', 'bad/c_corrupt.parquet']);
  assert.equal(byName['bad/a_good.parquet'].status, 'SUCCESS');
  assert.equal(byName['bad/a_good.parquet'].rowsImported, N);
  assert.equal(byName['bad/b_truncated.parquet'].status, 'FAILED');
  assert.match(byName['bad/b_truncated.parquet'].error, /b_truncated\.parquet/);
  assert.equal(byName['bad/c_corrupt.parquet'].status, 'FAILED');
  assert.match(byName['bad/c_corrupt.parquet'].error, /c_corrupt\.parquet: row group 0: column/);
  assert.equal(st.objectsImported, N);
  // a wrong mapping fails the file and says which column is missing
  let r = await srv.req('POST', '/v1/collections', { name: 'Mapped', vectors: { default: { dim: 4 } } });
  r = await srv.req('POST', '/v1/import/filesystem', { id: 'badmap', source: { files: ['lake/duck_zstd_V1.parquet'] },
    collection: 'Mapped', mapping: { id: 'id', vector: 'no_such_column' } });
  assert.equal(r.status, 202, r.text);
  let s;
  do { s = (await srv.req('GET', '/v1/import/filesystem/badmap')).json; } while (['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.equal(s.status, 'FAILED');
  assert.match(s.files[0].error, /no column 'no_such_column'/);
  // bad rows: a vector of the wrong dimension fails those rows only, each with file and row
  r = await srv.req('POST', '/v1/collections', { name: 'Dim3', vectors: { default: { dim: 3 } } });
  r = await srv.req('POST', '/v1/import/filesystem', { id: 'dim3', source: { files: ['lake/duck_snappy_V1.parquet'] },
    collection: 'Dim3', mapping: { id: 'id', vector: 'vec', properties: { s: 's' } } });
  do { s = (await srv.req('GET', '/v1/import/filesystem/dim3')).json; } while (['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.equal(s.status, 'SUCCESS');
  const nulls = Math.floor((N - 1) / 9) + 1; // rows with a null vector import
  assert.equal(s.objectsImported, nulls);
  assert.equal(s.objectsFailed, N - nulls);
  assert.equal(s.errors.length, 100);
  // rows are written by parallel workers: errors come in no particular order
  const e1 = s.errors.find((e) => e.row === 1);
  assert.ok(e1, JSON.stringify(s.errors.slice(0, 3)));
  assert.equal(e1.file, 'lake/duck_snappy_V1.parquet');
  assert.match(e1.message, /dim|dimension|3/);
  assert.ok(s.errors.every((e) => e.row % 9 !== 0), 'a row with a null vector never fails');
});

test('ids from a key column (v5) are stable; absent ids are generated per file and row', async () => {
  await srv.req('POST', '/v1/collections', { name: 'Keyed', vectors: { default: { dim: 4 } } });
  const body = (id) => ({ id, source: { files: ['lake/duck_gzip_V1.parquet'] }, collection: 'Keyed',
    mapping: { idKey: 's', vector: 'vec', properties: { i32: 'i32' } }, onConflict: 'replace' });
  let r = await srv.req('POST', '/v1/import/filesystem', body('key1'));
  let s;
  do { s = (await srv.req('GET', '/v1/import/filesystem/key1')).json; } while (['STARTED', 'TRANSFERRING'].includes(s.status));
  // s is null in a fifth of the rows: those fail; the rest collapse onto 7 distinct names
  assert.equal(s.objectsFailed, N / 5);
  const first = await listAll(srv, 'Keyed');
  assert.equal(first.size, 7);
  r = await srv.req('POST', '/v1/import/filesystem', body('key2'));
  do { s = (await srv.req('GET', '/v1/import/filesystem/key2')).json; } while (['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.deepEqual([...(await listAll(srv, 'Keyed')).keys()].sort(), [...first.keys()].sort());
  assert.equal(r.status, 202);
});
