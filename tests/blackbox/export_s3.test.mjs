// The s3 backend end to end against s3rver: multipart uploads of Parquet
// files under EXPORT_DEFAULT_BUCKET/EXPORT_DEFAULT_PATH, then the files read
// back with awscli + DuckDB and compared with the source objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, rng, tempDir } from './lib/server.mjs';
import { startS3 } from './lib/s3.mjs';
import { runAws } from './lib/location.mjs';
import { EVERYTHING, makeObject, batch, listAll, waitExport, readExportDir, kvMetadata, checkTypedRow, checkWeaviateRow } from './lib/export.mjs';

test('s3 backend: export, list, read back with awscli + DuckDB', async (t) => {
  const s3 = await startS3();
  let srv;
  const dl = tempDir('sv-export-s3-');
  t.after(async () => {
    if (srv) { await srv.stop(); srv.cleanup(); }
    await s3.stop();
    fs.rmSync(dl, { recursive: true, force: true });
  });
  await s3.createBucket('exports');
  const dataDir = tempDir();
  srv = await startServer({
    dataDir,
    env: {
      // EXPORT_DEFAULT_PATH is the S3 prefix (and the filesystem root, which
      // EXPORT_FILESYSTEM_PATH overrides so the test stays in its directory).
      ...s3.env, EXPORT_DEFAULT_BUCKET: 'exports', EXPORT_DEFAULT_PATH: '/team/exports/',
      EXPORT_FILESYSTEM_PATH: path.join(dataDir, 'fs-exports'),
      // Small parts so each file goes up as a multipart upload.
      SHARDVAULT_S3_MULTIPART_THRESHOLD: '128Ki', SHARDVAULT_S3_PART_SIZE: '64Ki',
      EXPORT_ROWS_PER_FILE: '700',
    },
  });
  const rand = rng(11);
  assert.equal((await srv.req('POST', '/v1/collections', EVERYTHING('Everything'))).status, 200);
  const objs = Array.from({ length: 1500 }, (_, i) => makeObject(rand, 'Everything', i));
  await batch(srv, objs);
  const src = await listAll(srv, 'Everything');

  for (const schema of ['typed', 'weaviate']) {
    const id = `s3-${schema}`;
    const r = await srv.req('POST', '/v1/export/s3', { id, options: { schema, compression: 'none' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.path, `s3://exports/team/exports/${id}`);
    const st = await waitExport(srv, 's3', id);
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st));
    assert.equal(Object.values(st.shardStatus.Everything).reduce((a, s) => a + s.objectsExported, 0), src.size);

    const ls = await runAws(s3, ['s3', 'ls', `s3://exports/team/exports/${id}/`]);
    const names = ls.trim().split('\n').map((l) => l.trim().split(/\s+/).pop()).sort();
    assert.ok(names.includes('export_metadata.json') && names.includes('node_node1_status.json'), ls);
    const parquet = names.filter((n) => n.endsWith('.parquet'));
    assert.ok(parquet.length >= 3, `one file per key range: ${parquet}`);
    const sizes = ls.trim().split('\n').map((l) => Number(l.trim().split(/\s+/)[2]));
    assert.ok(Math.max(...sizes) > 128 * 1024, 'at least one file went multipart');
    const dir = path.join(dl, id);
    await runAws(s3, ['s3', 'cp', '--recursive', `s3://exports/team/exports/${id}/`, dir]);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'export_metadata.json'), 'utf8'));
    assert.equal(meta.status, 'SUCCESS');
    assert.equal(meta.backend, 's3');
    const { rows } = await readExportDir(dir);
    assert.equal(rows.length, src.size);
    const check = schema === 'typed' ? checkTypedRow : checkWeaviateRow;
    for (const row of rows) check(row, src.get(row.id));
    const kv = await kvMetadata(path.join(dir, parquet[0]));
    assert.equal(kv['shardvault.export_id'], id);
  }
  const list = await srv.req('GET', '/v1/export/s3');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.map((e) => e.id), ['s3-typed', 's3-weaviate']);
  const again = await srv.req('POST', '/v1/export/s3', { id: 's3-typed' });
  assert.equal(again.status, 409, again.text);
  // The filesystem backend is separate: the same id is free there.
  const fsr = await srv.req('POST', '/v1/export/filesystem', { id: 's3-typed' });
  assert.equal(fsr.status, 200, fsr.text);
  assert.equal(fsr.json.path, path.join(fs.realpathSync(dataDir), 'fs-exports', 's3-typed'));
  assert.equal((await waitExport(srv, 'filesystem', 's3-typed')).status, 'SUCCESS');
});

test('s3 backend: an unreachable store fails the request, not the server', async () => {
  const srv = await startServer({
    env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y',
      EXPORT_DEFAULT_BUCKET: 'nope', SHARDVAULT_S3_RETRIES: '-1', SHARDVAULT_S3_CONNECT_TIMEOUT_MS: '500' },
  });
  try {
    await srv.req('POST', '/v1/collections', { name: 'A', properties: [] });
    const r = await srv.req('POST', '/v1/export/s3', { id: 'x' });
    assert.ok(r.status >= 500, r.text);
    assert.match(r.json.error[0].message, /127\.0\.0\.1:9|connect|nope/i);
    // Nothing is left reserved: the filesystem backend still works.
    const f = await srv.req('POST', '/v1/export/filesystem', { id: 'x' });
    assert.equal(f.status, 200, f.text);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
