// Import, random-schema property test: tables of random column types
// (scalars of every supported type, lists, lists of lists, structs, with
// random null rates) written by DuckDB with a random codec, page version and
// row group size, imported through the API, and every value compared with
// DuckDB's own reading (to_json) of the same file. The seed is printed; set
// IMPORT_PROPERTY_SEED to replay one.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir, rng } from './lib/server.mjs';
import { query, listAll } from './lib/export.mjs';

const SEED = Number(process.env.IMPORT_PROPERTY_SEED || Date.now() % 100000);
const TABLES = 6;
const ROWS = 200;

const SCALARS = {
  BOOLEAN: (v) => `(hash(${v}) % 2 = 0)`,
  TINYINT: (v) => `((hash(${v}) % 256)::INTEGER - 128)::TINYINT`,
  SMALLINT: (v) => `((hash(${v}) % 65536)::INTEGER - 32768)::SMALLINT`,
  INTEGER: (v) => `((hash(${v}) % 4294967296)::BIGINT - 2147483648)::INTEGER`,
  BIGINT: (v) => `((hash(${v}) >> 12)::BIGINT - 2251799813685248)`,
  UTINYINT: (v) => `(hash(${v}) % 256)::UTINYINT`,
  USMALLINT: (v) => `(hash(${v}) % 65536)::USMALLINT`,
  UINTEGER: (v) => `(hash(${v}) % 4294967296)::UINTEGER`,
  FLOAT: (v) => `((hash(${v}) % 1000000)::DOUBLE / 7 - 50000)::FLOAT`,
  DOUBLE: (v) => `((hash(${v}) % 100000000)::DOUBLE / 3 - 1000000)`,
  'DECIMAL(9,2)': (v) => `(((hash(${v}) % 100000000)::BIGINT - 50000000) / 100)::DECIMAL(9,2)`,
  'DECIMAL(18,3)': (v) => `(((hash(${v}) % 100000000000000)::BIGINT - 50000000000000) / 1000)::DECIMAL(18,3)`,
  VARCHAR: (v) => `('s' || (hash(${v}) % 1000) || ' ü日')`,
  DATE: (v) => `(DATE '1950-01-01' + (hash(${v}) % 40000)::INTEGER)`,
  TIMESTAMP: (v) => `(TIMESTAMP '1990-01-01' + to_microseconds((hash(${v}) % 2000000000000000)::BIGINT))`,
  TIMESTAMP_MS: (v) => `(TIMESTAMP '1990-01-01' + to_milliseconds((hash(${v}) % 2000000000000)::BIGINT))::TIMESTAMP_MS`,
  UUID: (v) => `md5((${v})::VARCHAR)::UUID`,
};
const NAMES = Object.keys(SCALARS);

function randType(rand, depth = 0) {
  const x = rand();
  if (depth < 2 && x < 0.2) return { kind: 'list', el: randType(rand, depth + 1) };
  if (depth < 2 && x < 0.3) return { kind: 'struct', fields: { a: randType(rand, depth + 1), b: randType(rand, depth + 1) } };
  return { kind: 'scalar', t: NAMES[Math.floor(rand() * NAMES.length)] };
}

let lambda = 0;
function gen(d, v, nullPct) {
  let e;
  if (d.kind === 'scalar') e = SCALARS[d.t](v);
  else if (d.kind === 'list') {
    const j = `j${lambda++}`;
    e = `list_transform(range((hash(${v}, 7) % 4)::BIGINT), ${j} -> ${gen(d.el, `(${v}) * 5 + ${j}`, nullPct / 2)})`;
  } else e = `{'a': ${gen(d.fields.a, `(${v}) + 1`, nullPct / 2)}, 'b': ${gen(d.fields.b, `(${v}) + 2`, nullPct / 2)}}`;
  return nullPct > 0 ? `CASE WHEN hash(${v}, 3) % 100 < ${nullPct} THEN NULL ELSE ${e} END` : e;
}

const show = (d) => (d.kind === 'scalar' ? d.t : d.kind === 'list' ? `${show(d.el)}[]` : `STRUCT(a ${show(d.fields.a)}, b ${show(d.fields.b)})`);

// got: the API's value; want: DuckDB's to_json of the same value.
function same(d, got, want, where) {
  if (want === null) {
    assert.ok(got === null || got === undefined, `${where}: ${JSON.stringify(got)}, want null`);
    return;
  }
  if (d.kind === 'list') {
    assert.ok(Array.isArray(got) && got.length === want.length, `${where}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
    want.forEach((w, i) => same(d.el, got[i], w, `${where}[${i}]`));
  } else if (d.kind === 'struct') {
    assert.equal(typeof got, 'object', where);
    same(d.fields.a, got.a, want.a, `${where}.a`);
    same(d.fields.b, got.b, want.b, `${where}.b`);
  } else if (d.t === 'DATE') {
    assert.equal(got, `${want}T00:00:00Z`, where);
  } else if (d.t.startsWith('TIMESTAMP')) {
    const frac = (want.split('.')[1] || '').padEnd(d.t === 'TIMESTAMP_MS' ? 3 : 6, '0');
    assert.equal(got, `${want.split('.')[0].replace(' ', 'T')}.${frac}Z`, where);
  } else if (d.t === 'FLOAT') {
    assert.equal(Math.fround(got), Math.fround(want), where);
  } else {
    assert.equal(got, want, where);
  }
}

test(`random schemas read value by value as DuckDB reads them (seed ${SEED})`, async () => {
  const root = tempDir('sv-import-prop-');
  fs.mkdirSync(path.join(root, 'lake'));
  const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root } });
  try {
    const rand = rng(SEED);
    for (let t = 0; t < TABLES; t++) {
      const ncols = 2 + Math.floor(rand() * 6);
      const cols = Array.from({ length: ncols }, (_, c) => ({ name: `c${c}`, d: randType(rand), nulls: Math.floor(rand() * 40) }));
      const codec = ['uncompressed', 'snappy', 'zstd', 'gzip', 'lz4_raw'][Math.floor(rand() * 5)];
      const version = rand() < 0.5 ? 'V1' : 'V2';
      const rg = 20 + Math.floor(rand() * 200);
      const file = path.join(root, 'lake', `t${t}.parquet`);
      const salt = Math.floor(rand() * 1e6);
      const select = cols.map((c) => `${gen(c.d, `i + ${salt + 1000 * Number(c.name.slice(1))}`, c.nulls)} AS ${c.name}`).join(', ');
      await query(`COPY (SELECT md5('row' || i || '${salt}')::UUID AS id, ${select} FROM range(0, ${ROWS}) r(i))
        TO '${file}' (FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${version}, ROW_GROUP_SIZE ${rg})`);
      const what = `table ${t} (${codec} ${version} rg ${rg}): ${cols.map((c) => `${c.name} ${show(c.d)} ${c.nulls}% null`).join(', ')}`;
      const coll = `Prop${t}`;
      assert.equal((await srv.req('POST', '/v1/collections', { name: coll })).status, 200);
      let r = await srv.req('POST', '/v1/import/filesystem', { id: `p${t}`, source: { files: [`lake/t${t}.parquet`] },
        collection: coll, mapping: { id: 'id', properties: { '*': 'rest' } } });
      assert.equal(r.status, 202, r.text);
      let st;
      do { st = (await srv.req('GET', `/v1/import/filesystem/p${t}`)).json; } while (['STARTED', 'TRANSFERRING'].includes(st.status));
      assert.equal(st.status, 'SUCCESS', `${what}: ${JSON.stringify(st).slice(0, 500)}`);
      assert.equal(st.objectsImported, ROWS, `${what}: ${JSON.stringify(st.errors.slice(0, 2))}`);
      const want = await query(`SELECT id::VARCHAR AS id, ${cols.map((c) => `to_json(${c.name})::VARCHAR AS ${c.name}`).join(', ')} FROM '${file}'`);
      const got = await listAll(srv, coll);
      for (const w of want) {
        const o = got.get(w.id);
        assert.ok(o, `${what}: ${w.id} missing`);
        for (const c of cols) same(c.d, o.properties[c.name], w[c.name] === null ? null : JSON.parse(w[c.name]), `${what}: row ${w.id} ${c.name}`);
      }
    }
  } finally {
    await srv.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
