// Property test: random schemas (every leaf type, lists, list<list>, nested
// groups, random nullability and dictionaries), random rows and random writer
// options; DuckDB must read back exactly what was written. The seed is in
// every failure message; SV_PQ_FUZZ_SEED / SV_PQ_FUZZ_ITERS replay or extend.
import { test } from 'node:test';
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { canonRows, randomRows, randomSchema, readDuckDB, rng, tmpDir, writeParquet } from './lib/parquet.mjs';

const dir = tmpDir('fuzz');
const base = Number(process.env.SV_PQ_FUZZ_SEED ?? Date.now() % 100000);
const iters = Number(process.env.SV_PQ_FUZZ_ITERS ?? 60);

test(`random schemas and rows read back by DuckDB (seeds ${base}..${base + iters - 1})`, async () => {
  for (let k = 0; k < iters; k++) {
    const seed = base + k;
    const r = rng(seed * 2654435761);
    const schema = randomSchema(r, 1 + r.int(8));
    const nrows = r() < 0.05 ? 0 : r.int(300);
    const rows = randomRows(r, schema, nrows, { nullRate: r() * 0.5, maxList: 1 + r.int(10),
      longStrings: r() < 0.1 });
    const options = {
      codec: r.pick(['none', 'snappy', 'zstd']),
      level: 1 + r.int(9),
      page_bytes: 64 + r.int(65536),
      row_group_rows: 1 + r.int(200),
      dict_bytes: 16 + r.int(8192),
    };
    const spec = { options, schema, rows };
    let file;
    try {
      file = writeParquet(dir, `fuzz_${seed}`, spec);
    } catch (e) {
      assert.fail(`seed ${seed}: writer refused valid input: ${e.stderr ?? e}`);
    }
    const got = canonRows(schema, await readDuckDB(file));
    const want = canonRows(schema, rows);
    assert.equal(got.length, want.length, `seed ${seed}: row count`);
    for (let i = 0; i < want.length; i++) {
      assert.deepStrictEqual(got[i], want[i], `seed ${seed} (${dir}/fuzz_${seed}.json): row ${i} differs`);
    }
    fs.rmSync(file); // a failing case keeps its .json and .parquet for replay
    fs.rmSync(file.replace(/\.parquet$/, '.json'));
  }
});
