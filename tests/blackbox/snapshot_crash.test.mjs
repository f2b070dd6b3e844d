// kill -9 during a snapshot create and during a restore: after restart the
// snapshot is FAILED (never PENDING forever) and GC reclaims its blobs; the
// restore job resumes from its tasks and the result equals the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { createCollection, load, listAll, waitJob, blobsOnDisk, manifestBlobs } from './lib/snapshot.mjs';

const until = async (what, fn, timeoutMs = 30000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

test('kill -9 during create: FAILED after restart, and GC reclaims its blobs', async () => {
  let srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '400' } });
  await createCollection(srv, 'Crash', 4);
  await load(srv, 'Crash', 4000, 3);
  const c = await srv.req('POST', '/v1/collections/Crash/snapshots', { name: 'doomed' });
  assert.equal(c.status, 202, c.text);
  await until('some blobs uploaded', async () => {
    const r = await srv.req('GET', '/v1/collections/Crash/snapshots/doomed');
    return r.json.status === 'PENDING' && r.json.bytesUploaded > 0;
  });
  await srv.kill9();
  const loc = path.join(srv.dataDir, 'location');
  const partial = blobsOnDisk(loc);
  assert.ok(partial.size > 0, 'partial uploads exist');

  srv = await startServer({ dataDir: srv.dataDir, env: { SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0' } });
  try {
    const r = await srv.req('GET', '/v1/collections/Crash/snapshots/doomed');
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'FAILED');
    assert.match(r.json.error, /interrupted/);
    // Dropping the failed record frees the name; GC frees the blobs.
    const gc = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.equal(gc.json.blobsDeleted, partial.size);
    assert.equal(blobsOnDisk(loc).size, 0);
    assert.equal((await srv.req('DELETE', '/v1/collections/Crash/snapshots/doomed')).status, 204);
    const again = await srv.req('POST', '/v1/collections/Crash/snapshots?wait=true', { name: 'doomed' });
    assert.equal(again.json.status, 'COMMITTED', again.text);
    assert.equal(again.json.objects, 4000);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('kill -9 during restore: the job resumes after restart and the result equals the source', async () => {
  // VERIFY=count: each laid-out shard is counted by iteration before adoption.
  const env = { SHARDVAULT_SNAPSHOT_RESTORE_VERIFY: 'count' };
  let srv = await startServer({ env: { ...env, SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '250', SHARDVAULT_SNAPSHOT_WORKERS: '1' } });
  await createCollection(srv, 'Src', 4);
  await load(srv, 'Src', 6000, 8);
  const snap = await srv.req('POST', '/v1/collections/Src/snapshots?wait=true', { name: 's' });
  assert.equal(snap.json.status, 'COMMITTED', snap.text);
  const source = await listAll(srv, 'Src');
  const job = await srv.req('POST', '/v1/collections/Src/snapshots/s/restore', { target: 'Dst' });
  assert.equal(job.status, 202, job.text);
  const id = job.json.jobId;
  // Kill once at least one shard is complete and another is under way.
  const total = manifestBlobs(path.join(srv.dataDir, 'location'), 'Src', 's').manifest.shards;
  const firstShardBytes = total[0].bytes;
  let doneBefore = [];
  await until('a shard restored', async () => {
    const r = await srv.req('GET', `/v1/restore-jobs/${id}`);
    assert.notEqual(r.json.state, 'FAILED', r.json.reason);
    doneBefore = r.json.tasks.filter((t) => t.state === 'COMPLETED').map((t) => t.shard);
    return r.json.state === 'EXECUTING' && r.json.bytesCopied > firstShardBytes && doneBefore.length > 0;
  });
  await srv.kill9();

  // Still slow after the restart, so redoing a finished shard would show.
  srv = await startServer({ dataDir: srv.dataDir, env: { ...env, SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '250' } });
  try {
    // Resumed from its tasks' state: the shard finished before the kill is
    // not redone (its task is COMPLETED from the start).
    const resumed = await srv.req('GET', `/v1/restore-jobs/${id}`);
    assert.equal(resumed.status, 200);
    assert.equal(resumed.json.tasks.length, 4);
    assert.equal(resumed.json.state, 'EXECUTING');
    for (const shard of doneBefore) {
      assert.equal(resumed.json.tasks.find((t) => t.shard === shard).state, 'COMPLETED', `${shard} kept`);
    }
    const j = await waitJob(srv, id);
    assert.equal(j.state, 'COMPLETED', j.reason);
    assert.equal(j.progress, 100);
    const restored = await listAll(srv, 'Dst');
    assert.equal(restored.size, source.size);
    for (const [oid, o] of source) {
      const r = restored.get(oid);
      assert.ok(r, `object ${oid} missing`);
      assert.deepEqual(r.vector, o.vector);
      assert.deepEqual(r.properties, o.properties);
      assert.equal(r.creationTime, o.creationTime);
      assert.equal(r.updateTime, o.updateTime);
    }
    const shards = await srv.req('GET', '/v1/collections/Dst/shards');
    assert.equal(shards.json.shards.reduce((a, s) => a + s.objects, 0), source.size, 'object counts match');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
