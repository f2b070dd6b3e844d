// Files written by the parquet module, read back by DuckDB, Arrow's Rust
// reader (parquet-wasm) and hyparquet; every value compared exactly.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  READERS, canonRows, duckdb, hyparquetMetadata, pageHeaders, randomRows, rng, tmpDir, writeParquet,
  writeParquetFails,
} from './lib/parquet.mjs';

const dir = tmpDir('interop');
let failed = false;
after(() => { if (!failed) fs.rmSync(dir, { recursive: true, force: true }); });

// Every supported shape: each leaf type required and optional, lists of
// each, list<list<>>, groups holding all of these.
const ALL = [
  { name: 'id', type: 'string', dict: true },
  { name: 'b', type: 'boolean', optional: true },
  { name: 'i32', type: 'int32' },
  { name: 'i64', type: 'int64', optional: true, dict: true },
  { name: 'f', type: 'float', optional: true },
  { name: 'd', type: 'double' },
  { name: 's', type: 'string', optional: true },
  { name: 'j', type: 'json', optional: true },
  { name: 'u', type: 'uuid', optional: true },
  { name: 'ts', type: 'timestamp' },
  { name: 'by', type: 'bytes', optional: true },
  { name: 'fx', type: 'fixed', len: 5, optional: true, dict: true },
  { name: 'vec', optional: true, element: { name: 'element', type: 'float' } },
  { name: 'vec_nulls', optional: true, element: { name: 'element', type: 'double', optional: true } },
  { name: 'tags', element: { name: 'element', type: 'string', optional: true } },
  { name: 'mv', optional: true,
    element: { name: 'element', optional: true, element: { name: 'element', type: 'float' } } },
  { name: 'props', optional: true, children: [
    { name: 'text', type: 'string', optional: true, dict: true },
    { name: 'n', type: 'int64', optional: true },
    { name: 'x', type: 'double', optional: true },
    { name: 'ok', type: 'boolean', optional: true },
    { name: 'when', type: 'timestamp', optional: true },
    { name: 'texts', optional: true, element: { name: 'element', type: 'string' } },
    { name: 'ints', optional: true, element: { name: 'element', type: 'int64', optional: true } },
    { name: 'obj', type: 'json', optional: true },
    { name: 'inner', optional: true, children: [{ name: 'k', type: 'uuid', optional: true }] },
  ] },
];

async function checkAllReaders(file, schema, rows) {
  failed = true; // until this check passes; a failure keeps the files in ${dir}
  await compareAll(file, schema, rows);
  failed = false;
}

async function compareAll(file, schema, rows) {
  const want = canonRows(schema, rows);
  for (const [name, read] of Object.entries(READERS)) {
    const got = canonRows(schema, await read(file));
    assert.equal(got.length, want.length, `${name}: row count`);
    for (let i = 0; i < want.length; i++) {
      assert.deepStrictEqual(got[i], want[i], `${name}: row ${i} differs`);
    }
  }
}

for (const codec of ['none', 'snappy', 'zstd']) {
  test(`all types, nulls, many pages and row groups: ${codec}`, async () => {
    const r = rng(codec.length * 7919 + 1);
    const rows = randomRows(r, ALL, 700, { maxList: 12 });
    rows[0].s = ''; rows[0].tags = []; rows[0].vec = []; rows[0].mv = [[], null, [1.5]];
    rows[1].s = 'ünïcødé 中文 😀'; rows[1].props = null; rows[1].vec = null;
    const spec = { options: { codec, level: 5, page_bytes: 4096, row_group_rows: 150,
      kv: { 'shardvault.test': 'yes', 'empty': '' } }, schema: ALL, rows };
    const file = writeParquet(dir, `all_${codec}`, spec);
    await checkAllReaders(file, ALL, rows);

    const meta = hyparquetMetadata(file);
    assert.equal(meta.row_groups.length, 5);
    assert.match(meta.created_by, /^shardvault version \d+\.\d+\.\d+ \(build [0-9a-z]+\)$/);
    assert.deepEqual(meta.key_value_metadata.find((k) => k.key === 'shardvault.test').value, 'yes');
    const pages = meta.row_groups[0].columns[0].meta_data;
    assert.ok(pages.encodings.includes('RLE_DICTIONARY'), 'dictionary used for id');
    assert.equal(meta.column_orders?.length ?? meta.row_groups[0].columns.length,
      meta.row_groups[0].columns.length);

    // statistics: DuckDB's view of null counts and min/max of flat columns
    const con = await duckdb();
    const st = (await con.runAndReadAll(
      `SELECT row_group_id, path_in_schema, stats_null_count, stats_min_value, stats_max_value
       FROM parquet_metadata('${file}') WHERE path_in_schema IN ('i32','s','ts')`)).getRowObjectsJS();
    for (const s of st) {
      const g = Number(s.row_group_id);
      const part = rows.slice(g * 150, g * 150 + 150).map((x) => x[s.path_in_schema]);
      const present = part.filter((x) => x !== null);
      assert.equal(Number(s.stats_null_count), part.length - present.length, `${s.path_in_schema} nulls`);
      if (s.path_in_schema === 'i32') {
        assert.equal(Number(s.stats_min_value), Math.min(...present));
        assert.equal(Number(s.stats_max_value), Math.max(...present));
      }
    }
  });
}

test('batch appends: flat columns one call each, one end_rows for all rows', async () => {
  const rows = randomRows(rng(99), ALL, 500, { maxList: 5 });
  const file = writeParquet(dir, 'batch', { options: { codec: 'zstd', batch: true, page_bytes: 2048 },
    schema: ALL, rows });
  await checkAllReaders(file, ALL, rows);
});

test('pages are about page_bytes and never split a row', async () => {
  const schema = [
    { name: 'id', type: 'string' },
    { name: 'vec', len: 100, element: { name: 'element', type: 'float' } },
  ];
  const rows = randomRows(rng(3), schema, 600);
  const pageBytes = 16384;
  const file = writeParquet(dir, 'pages', { options: { codec: 'snappy', page_bytes: pageBytes,
    row_group_rows: 300 }, schema, rows });
  await checkAllReaders(file, schema, rows);
  const groups = await pageHeaders(file);
  assert.equal(groups.length, 2);
  for (const cols of groups) {
    for (const c of cols) {
      const data = c.pages.filter((p) => p.type === 0);
      assert.equal(data.reduce((a, p) => a + p.num_values, 0), c.num_values, `${c.column}: values`);
      if (c.column !== 'vec.list.element') continue;
      assert.ok(data.length >= 6, `vec: ${data.length} pages`);
      for (const p of data) {
        assert.equal(p.num_values % 100, 0, 'a page ends on a row boundary');
        // levels + values of one row are at most ~600 bytes: a page closes past page_bytes
        assert.ok(p.uncompressed <= pageBytes + 700, `page of ${p.uncompressed} bytes`);
        assert.ok(p.uncompressed >= pageBytes * 0.9 || p === data[data.length - 1], `small page ${p.uncompressed}`);
      }
    }
  }
});

test('dictionary with thousands of entries (wide bit-packed indices)', async () => {
  const schema = [
    { name: 'k', type: 'int64', dict: true },
    { name: 's', type: 'string', dict: true, optional: true },
  ];
  const rows = [];
  for (let i = 0; i < 6000; i++) rows.push({ k: String((i * 7919) % 5003 - 2500), s: i % 11 ? `s${(i * 31) % 4099}` : null });
  const file = writeParquet(dir, 'widedict', { options: { codec: 'zstd', dict_bytes: 1 << 20 }, schema, rows });
  await checkAllReaders(file, schema, rows);
  const enc = hyparquetMetadata(file).row_groups[0].columns.map((c) => c.meta_data.encodings);
  assert.ok(enc.every((e) => e.includes('RLE_DICTIONARY')), JSON.stringify(enc));
});

test('strings longer than a page, dictionary fallback to PLAIN mid-chunk', async () => {
  const r = rng(42);
  const schema = [
    { name: 'id', type: 'string', dict: true },
    { name: 'big', type: 'string', optional: true },
    { name: 'blob', type: 'json', optional: true, dict: true },
  ];
  const rows = [];
  for (let i = 0; i < 400; i++) {
    rows.push({ id: `${i % 50}-${'é'.repeat(i % 7)}`,
      big: i % 40 === 3 ? 'x😀'.repeat(20000 + i) : (i % 9 ? `v${i}` : null),
      blob: JSON.stringify({ i, s: 'y'.repeat(r.int(200)) }) });
  }
  for (const codec of ['zstd', 'snappy']) {
    const file = writeParquet(dir, `long_${codec}`, { options: { codec, page_bytes: 8192, dict_bytes: 2048,
      row_group_rows: 250 }, schema, rows });
    await checkAllReaders(file, schema, rows);
    const meta = hyparquetMetadata(file);
    const enc = meta.row_groups[0].columns[2].meta_data.encodings;
    assert.ok(enc.includes('RLE_DICTIONARY') && enc.includes('PLAIN'), `fallback: ${enc}`);
  }
});

test('the export "typed" row shape', async () => {
  const schema = [
    { name: 'id', type: 'string' },
    { name: 'creation_time', type: 'timestamp' },
    { name: 'update_time', type: 'timestamp' },
    { name: 'vector', optional: true, len: 8, element: { name: 'element', type: 'float' } },
    { name: 'named_vectors', optional: true, children: [
      { name: 'title', optional: true, element: { name: 'element', type: 'float' } },
      { name: 'image', optional: true, element: { name: 'element', type: 'float' } }] },
    { name: 'multi_vectors', optional: true, children: [
      { name: 'colbert', optional: true, element: { name: 'element', element: { name: 'element', type: 'float' } } }] },
    { name: 'properties', optional: true, children: [
      { name: 'title', type: 'string', optional: true },
      { name: 'count', type: 'int64', optional: true },
      { name: 'price', type: 'double', optional: true },
      { name: 'active', type: 'boolean', optional: true },
      { name: 'published', type: 'timestamp', optional: true },
      { name: 'tags', optional: true, element: { name: 'element', type: 'string' } },
      { name: 'meta', type: 'json', optional: true }] },
    { name: 'properties_json', type: 'json', optional: true },
  ];
  const rows = randomRows(rng(7), schema, 300, { maxList: 20 });
  const file = writeParquet(dir, 'typed', { options: { codec: 'zstd' }, schema, rows });
  await checkAllReaders(file, schema, rows);
});

test('values that cannot be written are refused with a message', () => {
  const schema = [{ name: 'vector', len: 3, element: { name: 'element', type: 'float' } }];
  const msg = writeParquetFails(dir, 'badlen', { options: {}, schema, rows: [{ vector: [1, 2] }] });
  assert.match(msg, /vector.*3 elements, got 2/);
  const msg2 = writeParquetFails(dir, 'nullreq', { options: {}, schema: [{ name: 'a', type: 'int32' }], rows: [{ a: null }] });
  assert.match(msg2, /'a' is required/);
  assert.ok(!fs.existsSync(path.join(dir, 'never.parquet')));
});
