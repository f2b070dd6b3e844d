// Import from the s3 backend (s3rver): files found by a glob under the
// bucket's prefix, read with ranged GETs (footer first), equal to DuckDB's
// reading; and the S3 server killed mid-import: the file fails with the
// store's error, the import ends FAILED (never stuck), the objects of its
// committed row groups stay, and a new import completes once S3 is back.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { startS3 } from './lib/s3.mjs';
import { query, listAll } from './lib/export.mjs';

const N = 60000;

async function put(s3, bucket, key, file) {
  const res = await fetch(`${s3.endpoint}/${bucket}/${key}`, { method: 'PUT', body: fs.readFileSync(file) });
  assert.equal(res.status, 200, await res.text());
}

async function until(srv, id, pred) {
  for (let i = 0; i < 20000; i++) {
    const r = await srv.req('GET', `/v1/import/s3/${id}`);
    if (r.status === 200 && pred(r.json)) return r.json;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`import ${id} never got there`);
}

test('s3 backend: import by glob; S3 killed mid-import fails the file, a new import completes', async (t) => {
  const work = tempDir('sv-import-s3-');
  const s3dir = tempDir('sv-import-s3rver-');
  let s3 = await startS3({ dir: s3dir });
  let srv;
  t.after(async () => {
    if (srv) await srv.stop();
    await s3.stop();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(s3dir, { recursive: true, force: true });
  });
  await s3.createBucket('lake');
  const small = path.join(work, 'small.parquet');
  const big = path.join(work, 'big.parquet');
  await query(`COPY (SELECT uuid() AS id, [i::FLOAT, 0.5::FLOAT] AS vec, 'v' || i AS s FROM range(0, 500) r(i))
    TO '${small}' (FORMAT parquet, COMPRESSION snappy)`);
  await query(`COPY (SELECT uuid() AS id, [i::FLOAT, 0.5::FLOAT] AS vec, 'v' || i AS s, i AS n, i * 2 AS m, i * 3 AS k
    FROM range(0, ${N}) r(i)) TO '${big}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)`);
  await put(s3, 'lake', 'team/in/a/part-1.parquet', small);
  await put(s3, 'lake', 'team/in/a/part-2.parquet', small);
  await put(s3, 'lake', 'team/in/a/notes.txt', small);
  await put(s3, 'lake', 'team/in/big.parquet', big);
  const env = { ...s3.env, EXPORT_DEFAULT_BUCKET: 'lake', EXPORT_DEFAULT_PATH: 'team',
    EXPORT_FILESYSTEM_PATH: path.join(work, 'fs'), SHARDVAULT_S3_RETRIES: '1', SHARDVAULT_S3_RETRY_BASE_MS: '50',
    SHARDVAULT_S3_CONNECT_TIMEOUT_MS: '500', SHARDVAULT_S3_STALL_TIMEOUT_MS: '2000', SHARDVAULT_IMPORT_BATCH_ROWS: '256' };
  srv = await startServer({ env });
  for (const name of ['S3a', 'S3big', 'S3again']) {
    assert.equal((await srv.req('POST', '/v1/collections', { name, vectors: { default: { dim: 2 } } })).status, 200);
  }
  const mapping = { id: 'id', vector: 'vec', properties: { s: 's' } };
  let r = await srv.req('POST', '/v1/import/s3', { id: 'glob', source: { files: ['in/a/*.parquet'] }, collection: 'S3a', mapping, onConflict: 'skip' });
  assert.equal(r.status, 202, r.text);
  let st = await until(srv, 'glob', (s) => !['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 500));
  assert.deepEqual(st.files.map((f) => f.name), ['in/a/part-1.parquet', 'in/a/part-2.parquet']);
  assert.equal(st.objectsImported, 500);
  assert.equal(st.objectsSkipped, 500); // the same rows twice
  const want = await query(`SELECT id::VARCHAR AS id, s FROM '${small}'`);
  const got = await listAll(srv, 'S3a');
  assert.equal(got.size, 500);
  for (const w of want) assert.equal(got.get(w.id).properties.s, w.s);

  // the fault: S3 dies in the middle of the big file
  r = await srv.req('POST', '/v1/import/s3', { id: 'killed', source: { files: ['in/big.parquet'] }, collection: 'S3big', mapping, onConflict: 'fail' });
  assert.equal(r.status, 202, r.text);
  const mid = await until(srv, 'killed', (s) => s.status === 'TRANSFERRING' && s.objectsImported > 0);
  await s3.kill();
  st = await until(srv, 'killed', (s) => !['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.ok(mid.objectsImported < N, 'the import finished before S3 was killed; make N larger');
  assert.equal(st.status, 'FAILED', JSON.stringify(st).slice(0, 500));
  assert.equal(st.files[0].status, 'FAILED');
  assert.match(st.files[0].error, /big\.parquet/);
  assert.ok(st.objectsImported >= mid.objectsImported && st.objectsImported < N);
  const job = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs.find((j) => j.target === 'killed');
  assert.equal(job.state, 'FAILED');
  assert.equal((await listAll(srv, 'S3big')).size, st.objectsImported, 'committed row groups stay, counted exactly');

  // S3 back (same data): a new import of the file completes
  s3 = await startS3({ dir: s3dir });
  await srv.stop();
  srv = await startServer({ dataDir: srv.dataDir, env: { ...env, ...s3.env } });
  r = await srv.req('POST', '/v1/import/s3', { id: 'again', source: { files: ['in/big.parquet'] }, collection: 'S3again', mapping, onConflict: 'fail' });
  assert.equal(r.status, 202, r.text);
  st = await until(srv, 'again', (s) => !['STARTED', 'TRANSFERRING'].includes(s.status));
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 500));
  assert.equal(st.objectsImported, N);
  assert.ok(st.bytesRead > 0 && st.bytesRead <= fs.statSync(big).size, `${st.bytesRead} bytes read`);
});
