// maintenance move: the store copied to another location (file:// and
// s3rver), the node switched to it in one catalog write; the old location is
// left intact; after a restart (still configured with the old location, which
// is then deleted) a restore from the new location equals the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { startS3 } from './lib/s3.mjs';
import { createCollection, load, listAll, waitJob, blobsOnDisk } from './lib/snapshot.mjs';
import { runAgent, snapshotTable } from './lib/maintenance.mjs';

function countFiles(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(path.join(dir, e.name)) : 1;
  return n;
}

async function moveAndRestore(targetUrl, extraEnv, checkTarget) {
  const loc = tempDir('sv-loc-');
  const env = { ...extraEnv, SHARDVAULT_LOCATION: `file://${loc}`, SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL: '100ms' };
  let srv = await startServer({ env });
  try {
    await createCollection(srv, 'M', 2);
    await load(srv, 'M', 300, 9);
    for (const n of ['a', 'b']) assert.equal((await srv.req('POST', '/v1/collections/M/snapshots?wait=true', { name: n })).json.status, 'COMMITTED');
    const source = await listAll(srv, 'M');
    const expected = await snapshotTable(srv, ['M']);
    const storeId = (await srv.req('GET', '/v1/maintenance/status')).json.storeId;
    const before = countFiles(loc);
    const blobs = blobsOnDisk(loc);

    const bad = await srv.req('POST', '/v1/maintenance/move', { target: 'ftp://x' });
    assert.equal(bad.status, 422);
    const job = await runAgent(srv, 'move', { target: targetUrl });
    assert.equal(job.state, 'SUCCEEDED', job.reason);
    assert.equal(job.result.target, targetUrl);
    assert.equal(job.result.manifestsCopied, 2);
    assert.ok(job.result.objectsCopied >= blobs.size + 3, JSON.stringify(job.result));
    assert.equal(job.result.blobsSkipped, 0);
    const st = (await srv.req('GET', '/v1/maintenance/status')).json;
    assert.equal(st.location, targetUrl);
    assert.equal(st.descriptor, 'ok');
    assert.equal(countFiles(loc), before, 'the old location is left intact');
    await checkTarget(storeId);

    // New snapshots go to the new location.
    assert.equal((await srv.req('POST', '/v1/collections/M/snapshots?wait=true', { name: 'c' })).json.status, 'COMMITTED');
    assert.ok(!existsSync(path.join(loc, 'snapshots', 'M', 'c')));
    expected.M = (await snapshotTable(srv, ['M'])).M;

    // Restart, still configured with the old location, which is now gone.
    await srv.stop();
    rmSync(loc, { recursive: true, force: true });
    srv = await startServer({ dataDir: srv.dataDir, env });
    assert.equal((await srv.req('GET', '/v1/maintenance/status')).json.location, targetUrl);
    assert.deepEqual(await snapshotTable(srv, ['M']), expected);
    const r = await srv.req('POST', '/v1/collections/M/snapshots/b/restore', { target: 'MBack' });
    assert.equal(r.status, 202, r.text);
    assert.equal((await waitJob(srv, r.json.jobId)).state, 'COMPLETED');
    const back = await listAll(srv, 'MBack');
    assert.equal(back.size, source.size);
    for (const [id, o] of source) assert.deepEqual(back.get(id).properties, o.properties);
    const v = await runAgent(srv, 'verify', { readData: true });
    assert.deepEqual(v.result.issues, []);
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
}

test('move to another file:// location, restore from it after a restart', async () => {
  const dst = tempDir('sv-dst-');
  try {
    await moveAndRestore(`file://${dst}`, {}, async (storeId) => {
      assert.equal(JSON.parse(readFileSync(path.join(dst, 'store.json'), 'utf8')).storeId, storeId);
      assert.ok(readdirSync(path.join(dst, 'catalog')).length >= 1);
    });
  } finally { rmSync(dst, { recursive: true, force: true }); }
});

test('move to s3rver, restore from it after a restart', async () => {
  const s3 = await startS3();
  try {
    await s3.createBucket('movebucket');
    await moveAndRestore('s3://movebucket/moved', s3.env, async (storeId) => {
      const d = await (await fetch(`${s3.endpoint}/movebucket/moved/store.json`)).json();
      assert.equal(d.storeId, storeId);
    });
  } finally { await s3.stop(); }
});

test('move refuses a target that belongs to another store', async () => {
  const a = tempDir('sv-loc-');
  const b = tempDir('sv-loc-');
  const s1 = await startServer({ env: { SHARDVAULT_LOCATION: `file://${a}` } });
  const s2 = await startServer({ env: { SHARDVAULT_LOCATION: `file://${b}` } });
  try {
    const job = await runAgent(s1, 'move', { target: `file://${b}` });
    assert.equal(job.state, 'FAILED');
    assert.match(job.reason, /another store/);
    assert.equal((await s1.req('GET', '/v1/maintenance/status')).json.location, `file://${a}`);
  } finally {
    await s1.stop(); await s2.stop(); s1.cleanup(); s2.cleanup();
    rmSync(a, { recursive: true, force: true }); rmSync(b, { recursive: true, force: true });
  }
});

test('kill -9 during a move: it resumes, skips the blobs already copied, and writes wait meanwhile', async () => {
  const loc = tempDir('sv-loc-');
  const dst = tempDir('sv-dst-');
  const env = { SHARDVAULT_LOCATION: `file://${loc}`, SHARDVAULT_MAINTENANCE_LEASE_TTL: '1s' };
  let srv = await startServer({ env });
  try {
    await createCollection(srv, 'M', 2);
    await load(srv, 'M', 200, 4);
    assert.equal((await srv.req('POST', '/v1/collections/M/snapshots?wait=true', { name: 'a' })).json.status, 'COMMITTED');
    const blobs = blobsOnDisk(loc);
    await srv.stop();
    const slow = { ...env, SHARDVAULT_MAINTENANCE_TEST_DELAY_MS: '1500' };
    srv = await startServer({ dataDir: srv.dataDir, env: slow });
    const r = await srv.req('POST', '/v1/maintenance/move', { target: `file://${dst}` });
    assert.equal(r.status, 202, r.text);
    // Blobs are copied first; then the agent pauses (test delay).
    const deadline = Date.now() + 30000;
    while (blobsOnDisk(dst).size < blobs.size) {
      assert.ok(Date.now() < deadline, 'blobs copied');
      await new Promise((res) => setTimeout(res, 25));
    }
    const w = await srv.req('POST', '/v1/collections/M/snapshots', { name: 'during' });
    assert.equal(w.status, 503, w.text);
    assert.match(w.json.error[0].message, /moving/);
    await srv.kill9();
    srv = await startServer({ dataDir: srv.dataDir, env });
    const job = await (await import('./lib/maintenance.mjs')).waitJobDone(srv, r.json.jobId);
    assert.equal(job.state, 'SUCCEEDED', job.reason);
    assert.equal(job.result.blobsSkipped, blobs.size);
    assert.equal((await srv.req('GET', '/v1/maintenance/status')).json.location, `file://${dst}`);
    assert.equal((await srv.req('POST', '/v1/collections/M/snapshots?wait=true', { name: 'after' })).json.status, 'COMMITTED');
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
    rmSync(dst, { recursive: true, force: true });
  }
});

test('move refuses the current folder by another spelling and folders inside one another', async () => {
  const loc = tempDir('sv-loc-');
  const srv = await startServer({ env: { SHARDVAULT_LOCATION: `file://${loc}` } });
  try {
    const name = path.basename(loc);
    for (const [target, re] of [[`file://${loc}/../${name}`, /already at/], [`file://${loc}/./x/..`, /already at/],
      [`file://${loc}/inside`, /inside one another/], [`file://${path.dirname(loc)}`, /inside one another/]]) {
      const r = await srv.req('POST', '/v1/maintenance/move', { target });
      assert.equal(r.status, 422, `${target}: ${r.text}`);
      assert.match(r.text, re, target);
    }
    assert.ok(!existsSync(path.join(loc, 'inside')), 'nothing written inside the location');
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
