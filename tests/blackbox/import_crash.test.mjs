// Import, crash and cancel: kill -9 in the middle of an import; after the
// restart it resumes at the row group after the last committed one and ends
// SUCCESS with every object exactly once (onConflict "fail" would report any
// row counted twice); its job is the same one, SUCCEEDED. A cancel stops it
// (204), it ends CANCELED, and so does its job.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { listAll, query } from './lib/export.mjs';

const N = 120000;
const root = tempDir('sv-import-crash-');

test.before(async () => {
  fs.mkdirSync(path.join(root, 'lake'), { recursive: true });
  await query(`COPY (SELECT uuid() AS id, [i::FLOAT, (i % 7)::FLOAT, 0.5::FLOAT, -1::FLOAT] AS vec,
      'row ' || i AS title, i AS n FROM range(0, ${N}) r(i))
    TO '${path.join(root, 'lake', 'big.parquet')}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 4096)`);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));

async function untilStatus(srv, id, pred, what) {
  for (let i = 0; i < 12000; i++) {
    const r = await srv.req('GET', `/v1/import/filesystem/${id}`);
    if (r.status === 200 && pred(r.json)) return r.json;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`import ${id}: never ${what}`);
}

const collection = { name: 'Big', vectors: { default: { dim: 4 } }, properties: [{ name: 'title', type: 'text' }, { name: 'n', type: 'int' }] };
const body = (id, coll) => ({ id, source: { files: ['lake/big.parquet'] }, collection: coll,
  mapping: { id: 'id', vector: 'vec', properties: { title: 'title', n: 'n' } }, onConflict: 'fail' });

const count = async (srv, coll) => (await listAll(srv, coll)).size;

// A resumed import ends SUCCESS with every object of the file exactly once.
async function resumedWhole(srv, id, coll) {
  const st = await untilStatus(srv, id, (s) => !['STARTED', 'TRANSFERRING'].includes(s.status), 'finished');
  assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 600));
  assert.equal(st.objectsFailed, 0, JSON.stringify(st.errors.slice(0, 3)));
  assert.equal(st.objectsImported, N);
  assert.equal(await count(srv, coll), N);
  return st;
}

test('kill -9 mid-import: resumes after the last committed row group, every object exactly once', async () => {
  const dataDir = tempDir('sv-import-crash-data-');
  const env = { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BATCH_ROWS: '512' };
  let srv = await startServer({ dataDir, env });
  assert.equal((await srv.req('POST', '/v1/collections', collection)).status, 200);
  let r = await srv.req('POST', '/v1/import/filesystem', body('crash', 'Big'));
  assert.equal(r.status, 202, r.text);
  const mid = await untilStatus(srv, 'crash', (s) => s.status === 'TRANSFERRING' && s.objectsImported > 0, 'under way');
  await srv.kill9();
  assert.ok(mid.objectsImported < N, `the import finished before the kill (${mid.objectsImported}); make N larger`);
  srv = await startServer({ dataDir, env });
  try {
    const st = await resumedWhole(srv, 'crash', 'Big');
    assert.equal(st.files[0].rowsImported, N);
    const jobs = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs;
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].state, 'SUCCEEDED');
    assert.equal(jobs[0].target, 'crash');
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

// A row group is committed by the writer right after its last part is
// written and before the next part is (docs/import.md "Invariants"): a
// kill -9 just after a later part's write finds nothing written beyond the
// first uncommitted row group, which the resume imports again with replace.
// Were a part of the next row group written first, onConflict "fail" would
// report its rows as already there.
test('kill -9 right after a part is written (crash point): the resumed "fail" import reports no row of its own as a conflict', async () => {
  const dataDir = tempDir('sv-import-part-data-');
  const env = { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BATCH_ROWS: '512' };
  let srv = await startServer({ dataDir, env: { ...env, SHARDVAULT_TEST_CRASH_AT: 'import:second-part-written' } });
  assert.equal((await srv.req('POST', '/v1/collections', { ...collection, name: 'Part' })).status, 200);
  const r = await srv.req('POST', '/v1/import/filesystem', body('part', 'Part'));
  assert.equal(r.status, 202, r.text);
  const exit = await srv.exited;
  assert.equal(exit.signal, 'SIGKILL', `the crash point did not fire: ${srv.stderr.slice(-500)}`);
  srv = await startServer({ dataDir, env });
  try {
    await resumedWhole(srv, 'part', 'Part');
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('kill -9 mid-import of two files with "fail" into a collection that already holds them: the file not yet started keeps "fail" for every row after the restart (none replaced)', async () => {
  const dataDir = tempDir('sv-import-two-data-');
  const two = path.join(root, 'two');
  fs.mkdirSync(two, { recursive: true });
  for (const [f, off] of [['a.parquet', 0], ['b.parquet', 10000]]) {
    await query(`COPY (SELECT md5(i::VARCHAR)::UUID AS id, [i::FLOAT, 1::FLOAT, 0.5::FLOAT, -1::FLOAT] AS vec, 'row ' || i AS title, i AS n
      FROM range(${off}, ${off + 8000}) r(i)) TO '${path.join(two, f)}' (FORMAT parquet, ROW_GROUP_SIZE 2048)`);
  }
  const env = { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BATCH_ROWS: '512' };
  const req = (id, onConflict) => ({ id, source: { files: ['two/*.parquet'] }, collection: 'Two',
    mapping: { id: 'id', vector: 'vec', properties: { title: 'title', n: 'n' } }, onConflict });
  let srv = await startServer({ dataDir, env });
  assert.equal((await srv.req('POST', '/v1/collections', { ...collection, name: 'Two' })).status, 200);
  let r = await srv.req('POST', '/v1/import/filesystem', req('first', 'replace'));
  assert.equal(r.status, 202, r.text);
  const first = await untilStatus(srv, 'first', (x) => !['STARTED', 'TRANSFERRING'].includes(x.status), 'finished');
  assert.equal(first.objectsImported, 16000);
  await srv.stop();
  srv = await startServer({ dataDir, env: { ...env, SHARDVAULT_TEST_CRASH_AT: 'import:second-part-written' } });
  r = await srv.req('POST', '/v1/import/filesystem', req('again', 'fail'));
  assert.equal(r.status, 202, r.text);
  const exit = await srv.exited;
  assert.equal(exit.signal, 'SIGKILL', `the crash point did not fire: ${srv.stderr.slice(-500)}`);
  srv = await startServer({ dataDir, env });
  try {
    const st = await untilStatus(srv, 'again', (x) => !['STARTED', 'TRANSFERRING'].includes(x.status), 'finished');
    const [fa, fb] = st.files;
    assert.equal(fb.name, 'two/b.parquet');
    // the second file had not started: every one of its rows is reported as already there, none rewritten
    assert.equal(fb.rowsImported, 0, JSON.stringify(st.files));
    assert.ok(st.objectsImported <= 2048, `at most the in-flight row group of the first file is imported again: ${st.objectsImported}`);
    assert.equal(st.objectsImported + st.objectsFailed, 16000, JSON.stringify(st).slice(0, 400));
    assert.equal(fa.name, 'two/a.parquet');
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('cancel: DELETE stops the import (204), it ends CANCELED and so does its job', async () => {
  const srv = await startServer({ env: { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BATCH_ROWS: '512' } });
  try {
    assert.equal((await srv.req('POST', '/v1/collections', { ...collection, name: 'Cancel' })).status, 200);
    let r = await srv.req('POST', '/v1/import/filesystem', body('cancel-me', 'Cancel'));
    assert.equal(r.status, 202, r.text);
    await untilStatus(srv, 'cancel-me', (s) => s.status === 'TRANSFERRING' && s.objectsImported > 0, 'under way');
    r = await srv.req('DELETE', '/v1/import/filesystem/cancel-me');
    assert.equal(r.status, 204, r.text);
    const st = (await srv.req('GET', '/v1/import/filesystem/cancel-me')).json;
    assert.equal(st.status, 'CANCELED');
    assert.ok(st.objectsImported < N);
    assert.equal(st.files[0].status, 'CANCELED');
    assert.ok(st.completedAt);
    assert.equal((await srv.req('DELETE', '/v1/import/filesystem/cancel-me')).status, 409);
    const job = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs.find((j) => j.target === 'cancel-me');
    assert.equal(job.state, 'CANCELED');
    // the counters say exactly what the collection holds
    assert.equal(await count(srv, 'Cancel'), st.objectsImported);
  } finally {
    await srv.stop();
  }
});

test('SIGTERM mid-import: the import resumes at the next start; a cancel through /v1/jobs stops another', async () => {
  const dataDir = tempDir('sv-import-term-data-');
  const env = { EXPORT_DEFAULT_PATH: root, SHARDVAULT_IMPORT_BATCH_ROWS: '512' };
  let srv = await startServer({ dataDir, env });
  try {
    assert.equal((await srv.req('POST', '/v1/collections', { ...collection, name: 'Term' })).status, 200);
    let r = await srv.req('POST', '/v1/import/filesystem', body('term', 'Term'));
    assert.equal(r.status, 202, r.text);
    const mid = await untilStatus(srv, 'term', (s) => s.status === 'TRANSFERRING' && s.objectsImported > 0, 'under way');
    const exit = await srv.stop();
    assert.equal(exit.code, 0);
    assert.ok(mid.objectsImported < N, 'finished before the stop; make N larger');
    srv = await startServer({ dataDir, env });
    const st = await untilStatus(srv, 'term', (s) => !['STARTED', 'TRANSFERRING'].includes(s.status), 'finished');
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st).slice(0, 500));
    assert.equal(st.objectsImported, N);
    assert.equal(st.objectsFailed, 0);
    assert.equal(await count(srv, 'Term'), N);
    // a cancel through the jobs API
    assert.equal((await srv.req('POST', '/v1/collections', { ...collection, name: 'ViaJobs' })).status, 200);
    r = await srv.req('POST', '/v1/import/filesystem', body('viajobs', 'ViaJobs'));
    assert.equal(r.status, 202, r.text);
    await untilStatus(srv, 'viajobs', (s) => s.status === 'TRANSFERRING' && s.objectsImported > 0, 'under way');
    const job = (await srv.req('GET', '/v1/jobs?kind=import')).json.jobs.find((j) => j.target === 'viajobs');
    r = await srv.req('POST', `/v1/jobs/${job.id}/cancel`);
    assert.ok([200, 202, 204].includes(r.status), r.text);
    const c = await untilStatus(srv, 'viajobs', (s) => !['STARTED', 'TRANSFERRING'].includes(s.status), 'stopped');
    assert.equal(c.status, 'CANCELED');
    assert.ok(c.objectsImported < N);
    const j2 = await (async () => {
      for (let i = 0; i < 500; i++) {
        const x = (await srv.req('GET', `/v1/jobs/${job.id}`)).json;
        if (x.state !== 'RUNNING') return x;
        await new Promise((res) => setTimeout(res, 10));
      }
      return null;
    })();
    assert.equal(j2.state, 'CANCELED');
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
