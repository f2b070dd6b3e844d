// Export lifecycle: progress while running, one export at a time, cancel
// mid-export (files kept), id reuse after SUCCESS / FAILED / CANCELED,
// kill -9 during an export then restart (FAILED with reason), SIGTERM during
// an export (FAILED "shutting down", slot released).
// EXPORT_MAX_ROWS_PER_SECOND slows exports down to a few seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, rng, uuidFrom, vec } from './lib/server.mjs';
import { batch, waitExport, query } from './lib/export.mjs';

const ENV = {
  EXPORT_MAX_ROWS_PER_SECOND: '3000', EXPORT_ROWS_PER_FILE: '500', EXPORT_PARALLELISM: '2',
  EXPORT_STATUS_INTERVAL_MS: '200',
};
const N = 9000;

async function setup(srv) {
  const c = await srv.req('POST', '/v1/collections', {
    name: 'Life', shards: 2, vectors: { default: { dim: 8 } }, properties: [{ name: 'n', type: 'int' }],
  });
  assert.equal(c.status, 200, c.text);
  const rand = rng(5);
  for (let b = 0; b < N / 3000; b++) {
    await batch(srv, Array.from({ length: 3000 }, (_, i) => ({
      collection: 'Life', id: uuidFrom(rand), vector: vec(rand, 8), properties: { n: b * 3000 + i },
    })));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const exported = (st) => Object.values(st.shardStatus.Life ?? {}).reduce((a, s) => a + s.objectsExported, 0);

async function waitProgress(srv, id, min = 500) {
  for (let i = 0; i < 400; i++) {
    const r = await srv.req('GET', `/v1/export/filesystem/${id}`);
    assert.equal(r.status, 200, r.text);
    if (exported(r.json) >= min) return r.json;
    assert.ok(['STARTED', 'TRANSFERRING'].includes(r.json.status), JSON.stringify(r.json));
    await sleep(25);
  }
  throw new Error(`no progress on ${id}`);
}

const parquetFiles = (dir) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.parquet')) : []);

test('progress, single slot, cancel, id reuse', async (t) => {
  const srv = await startServer({ env: ENV });
  t.after(async () => { await srv.stop(); srv.cleanup(); });
  await setup(srv);
  const root = path.join(srv.dataDir, 'exports');

  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'run-1' })).status, 200);
  const p1 = await waitProgress(srv, 'run-1', 300);
  assert.equal(p1.status, 'TRANSFERRING');
  for (const s of Object.values(p1.shardStatus.Life)) assert.equal(s.status, 'TRANSFERRING');
  // One export at a time per node.
  const busy = await srv.req('POST', '/v1/export/filesystem', { id: 'run-2' });
  assert.equal(busy.status, 409, busy.text);
  assert.match(busy.json.error[0].message, /already running/);
  // Progress grows; the node status file is flushed while running.
  const p2 = await waitProgress(srv, 'run-1', exported(p1) + 500);
  assert.ok(exported(p2) > exported(p1));
  const node = JSON.parse(fs.readFileSync(path.join(root, 'run-1', 'node_node1_status.json'), 'utf8'));
  assert.equal(node.status, 'TRANSFERRING');
  assert.equal(node.nodeName, 'node1');
  // The metadata file says STARTED until the end (the live view is the status API).
  assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'run-1', 'export_metadata.json'), 'utf8')).status, 'STARTED');
  const done = await waitExport(srv, 'filesystem', 'run-1');
  assert.equal(done.status, 'SUCCESS');
  assert.equal(exported(done), N);

  // Cancel mid-export: 204, CANCELED, files already written are kept.
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'cancel-1' })).status, 200);
  await waitProgress(srv, 'cancel-1', 2500);
  const del = await srv.req('DELETE', '/v1/export/filesystem/cancel-1');
  assert.equal(del.status, 204, del.text);
  const st = await srv.req('GET', '/v1/export/filesystem/cancel-1');
  assert.equal(st.json.status, 'CANCELED', 'canceled once DELETE returned');
  assert.ok(st.json.completedAt);
  const files = parquetFiles(path.join(root, 'cancel-1'));
  assert.ok(files.length >= 1, 'files already written are kept');
  assert.ok(exported(st.json) < N, 'it stopped early');
  const [{ n }] = await query(`SELECT count(*) AS n FROM '${path.join(root, 'cancel-1', '*.parquet')}'`);
  assert.equal(exported(st.json), Number(n), 'objectsExported counts the rows of published files');
  for (const s of Object.values(st.json.shardStatus.Life)) {
    if (s.status !== 'SUCCESS') assert.deepEqual([s.status, s.error], ['FAILED', 'export canceled']);
  }
  const meta = JSON.parse(fs.readFileSync(path.join(root, 'cancel-1', 'export_metadata.json'), 'utf8'));
  assert.equal(meta.status, 'CANCELED');
  assert.equal((await srv.req('DELETE', '/v1/export/filesystem/cancel-1')).status, 409, 'cancel twice');
  // Ids are used once: after SUCCESS and after CANCELED.
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'run-1' })).status, 409);
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'cancel-1' })).status, 409);
  // The slot was released: the next export runs.
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'after-cancel', include: ['Life'] })).status, 200);
  assert.equal((await waitExport(srv, 'filesystem', 'after-cancel')).status, 'SUCCESS');
  const m = await srv.req('GET', '/metrics');
  assert.match(m.text, /shardvault_export_operations_total\{status="canceled"\} 1/);
  assert.match(m.text, /shardvault_export_operations_total\{status="success"\} 2/);
  // No checkpoints left behind.
  assert.deepEqual(fs.readdirSync(path.join(srv.dataDir, 'tmp')), []);
});

test('kill -9 during an export: FAILED with the reason after restart; id not reusable', async () => {
  let srv = await startServer({ env: ENV });
  await setup(srv);
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'crash-1' })).status, 200);
  await waitProgress(srv, 'crash-1', 1200);
  await srv.kill9();
  const metaFile = path.join(srv.dataDir, 'exports', 'crash-1', 'export_metadata.json');
  assert.equal(JSON.parse(fs.readFileSync(metaFile, 'utf8')).status, 'STARTED', 'left running by the crash');
  srv = await startServer({ dataDir: srv.dataDir, env: ENV });
  try {
    const st = await srv.req('GET', '/v1/export/filesystem/crash-1');
    assert.equal(st.status, 200);
    assert.equal(st.json.status, 'FAILED');
    assert.match(st.json.error, /crash or kill/);
    assert.ok(st.json.completedAt);
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    assert.equal(meta.status, 'FAILED', 'the metadata file says so');
    for (const s of Object.values(meta.shardStatus.Life)) assert.ok(['SUCCESS', 'FAILED'].includes(s.status));
    assert.ok(parquetFiles(path.dirname(metaFile)).length >= 1, 'files already written are kept');
    // Id reuse after FAILED is refused; a new export runs (no stale slot).
    assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'crash-1' })).status, 409);
    assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'crash-2' })).status, 200);
    assert.equal((await waitExport(srv, 'filesystem', 'crash-2')).status, 'SUCCESS');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('SIGTERM during an export: FAILED "shutting down", slot released', async () => {
  let srv = await startServer({ env: ENV });
  await setup(srv);
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'term-1' })).status, 200);
  await waitProgress(srv, 'term-1', 1000);
  const t0 = Date.now();
  const exit = await srv.stop();
  assert.equal(exit.code, 0, srv.stderr);
  assert.ok(Date.now() - t0 < 10000, 'the export stopped promptly');
  const metaFile = path.join(srv.dataDir, 'exports', 'term-1', 'export_metadata.json');
  const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
  assert.equal(meta.status, 'FAILED');
  assert.equal(meta.error, 'shutting down');
  srv = await startServer({ dataDir: srv.dataDir, env: ENV });
  try {
    const st = await srv.req('GET', '/v1/export/filesystem/term-1');
    assert.equal(st.json.status, 'FAILED');
    assert.equal(st.json.error, 'shutting down', 'restart does not rewrite a finished export');
    assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'term-2' })).status, 200);
    assert.equal((await waitExport(srv, 'filesystem', 'term-2')).status, 'SUCCESS');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('bytesWritten grows while a file is being written and ends as the size of the files', async (t) => {
  // One file per shard (a single row group): bytes reach the location only
  // when it closes, yet the status must show them growing with the rows.
  const srv = await startServer({ env: { ...ENV, EXPORT_MAX_ROWS_PER_SECOND: '1500', EXPORT_ROWS_PER_FILE: '100000' } });
  t.after(async () => { await srv.stop(); srv.cleanup(); });
  await setup(srv);
  assert.equal((await srv.req('POST', '/v1/export/filesystem', { id: 'bytes-1' })).status, 200);
  const samples = []; // [shard, objectsExported, bytesWritten] while TRANSFERRING
  for (;;) {
    const r = await srv.req('GET', '/v1/export/filesystem/bytes-1');
    assert.equal(r.status, 200, r.text);
    if (r.json.status !== 'TRANSFERRING' && r.json.status !== 'STARTED') break;
    for (const [name, s] of Object.entries(r.json.shardStatus.Life ?? {})) {
      if (s.status === 'TRANSFERRING') samples.push([name, s.objectsExported, s.bytesWritten]);
    }
    await sleep(50);
  }
  const moving = samples.filter(([, o]) => o > 0);
  assert.ok(moving.length >= 10, `progress seen ${moving.length} times`);
  for (const [name, o, b] of moving) assert.ok(b > 0, `${name}: ${o} objects exported, bytesWritten ${b}`);
  for (const name of ['shard0000', 'shard0001']) {
    const bs = moving.filter(([n]) => n === name).map(([, , b]) => b);
    assert.ok(bs.length >= 2 && bs[bs.length - 1] > bs[0], `${name} bytes grow: ${bs.slice(0, 3)}…${bs.slice(-3)}`);
  }
  const done = await waitExport(srv, 'filesystem', 'bytes-1');
  assert.equal(done.status, 'SUCCESS');
  assert.equal(exported(done), N);
  // At the end: exactly the bytes of the published files (live and in the metadata file).
  const dir = path.join(srv.dataDir, 'exports', 'bytes-1');
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'export_metadata.json'), 'utf8'));
  for (const name of ['shard0000', 'shard0001']) {
    const size = parquetFiles(dir).filter((f) => f.startsWith(`Life_${name}_`))
      .reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
    assert.ok(size > 0);
    assert.equal(done.shardStatus.Life[name].bytesWritten, size, name);
    assert.equal(meta.shardStatus.Life[name].bytesWritten, size, name);
  }
});
