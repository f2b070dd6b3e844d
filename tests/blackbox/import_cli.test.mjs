// `shardvault import FILE.parquet` (read locally, sent as batches) and
// `shardvault import-parquet create|status|cancel` against a running server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, BIN, tempDir } from './lib/server.mjs';
import { query, listAll } from './lib/export.mjs';

test('import CLI: a local .parquet file, and import-parquet create --wait / status / cancel', async (t) => {
  const root = tempDir('sv-import-cli-');
  fs.mkdirSync(path.join(root, 'lake'));
  const file = path.join(root, 'lake', 'docs.parquet');
  await query(`COPY (SELECT uuid() AS doc_id, [i::FLOAT, 1::FLOAT, 2::FLOAT] AS emb, 'title ' || i AS title, i AS n
    FROM range(0, 2500) r(i)) TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 1000)`);
  const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root } });
  t.after(async () => { await srv.stop(); fs.rmSync(root, { recursive: true, force: true }); });
  for (const name of ['Local', 'Remote']) {
    const r = await srv.req('POST', '/v1/collections', { name, vectors: { default: { dim: 3 } }, properties: [{ name: 'title', type: 'text' }, { name: 'n', type: 'int' }] });
    assert.equal(r.status, 200, r.text);
  }
  const mapping = JSON.stringify({ id: 'doc_id', vector: 'emb', properties: { title: 'title', n: 'n' } });
  const run = (...args) => spawnSync(BIN, ['--url', srv.url, ...args], { encoding: 'utf8' });

  const l = run('import', file, '--collection', 'Local', '--mapping', mapping, '--batch-size', '700');
  assert.equal(l.status, 0, l.stderr);
  assert.match(l.stdout, /imported 2500, failed 0/);
  const local = await listAll(srv, 'Local');
  assert.equal(local.size, 2500);
  const one = [...local.values()].find((o) => o.properties.n === 7);
  assert.equal(one.properties.title, 'title 7');
  assert.deepEqual(one.vector, [7, 1, 2]);

  const c = run('import-parquet', 'create', 'cli-1', '--files', 'lake/*.parquet', '--collection', 'Remote',
    '--mapping', mapping, '--on-conflict', 'fail', '--wait');
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /2500\/2500 rows/);
  const final = JSON.parse(c.stdout);
  assert.equal(final.status, 'SUCCESS');
  assert.equal(final.objectsImported, 2500);
  assert.deepEqual([...(await listAll(srv, 'Remote')).keys()].sort(), [...local.keys()].sort());

  const s = run('import-parquet', 'status', 'cli-1');
  assert.equal(s.status, 0, s.stderr);
  assert.equal(JSON.parse(s.stdout).id, 'cli-1');
  const x = run('import-parquet', 'cancel', 'cli-1');
  assert.equal(x.status, 1);
  assert.match(x.stderr, /HTTP 409.*already finished/);
  const bad = run('import-parquet', 'create', 'cli-2', '--files', '../x/*.parquet', '--collection', 'Remote');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /HTTP 422/);
  const nf = run('import-parquet', 'status', 'missing');
  assert.match(nf.stderr, /HTTP 404/);
  assert.equal(run('import-parquet', '--help').status, 0);
  const badfile = run('import', path.join(root, 'nope.parquet'), '--collection', 'Local');
  assert.equal(badfile.status, 1);
  assert.match(badfile.stderr, /nope\.parquet/);
});
