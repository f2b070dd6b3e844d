// Snapshots and restore through the HTTP API on a file:// location: input
// rules, point-in-time restore under concurrent writers, incremental
// snapshots, drop + GC, corrupted blobs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import {
  createCollection, DIM, load, listAll, waitJob, startWriters, checkPointInTime, manifestBlobs, blobsOnDisk, waitSnapshot,
} from './lib/snapshot.mjs';

const GC_ENV = { SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0' };

test('names, unknown things and conflicts answer 422 / 404 / 409', async () => {
  const srv = await startServer({ env: GC_ENV });
  try {
    await createCollection(srv, 'Rules', 2);
    await load(srv, 'Rules', 100);
    const bad = ['-x', 'a b', 'x'.repeat(129), 'a/b', '..', 'é'];
    for (const name of bad) {
      const r = await srv.req('POST', '/v1/collections/Rules/snapshots', { name });
      assert.equal(r.status, 422, `name ${JSON.stringify(name)}: ${r.text}`);
      assert.match(r.json.error[0].message, /snapshot name/);
    }
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots', {})).status, 422);
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots', 'not json')).status, 400);
    assert.equal((await srv.req('POST', '/v1/collections/Nope/snapshots', { name: 's' })).status, 404);
    assert.equal((await srv.req('GET', '/v1/collections/Nope/snapshots')).status, 404);
    assert.equal((await srv.req('GET', '/v1/collections/Rules/snapshots/none')).status, 404);
    assert.equal((await srv.req('GET', '/v1/collections/Rules/snapshots/bad..name')).status, 422);
    assert.equal((await srv.req('DELETE', '/v1/collections/Rules/snapshots/none')).status, 404);
    assert.equal((await srv.req('GET', `/v1/restore-jobs/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`)).status, 404);
    assert.equal((await srv.req('GET', '/v1/restore-jobs/not-a-uuid')).status, 422);

    const c = await srv.req('POST', '/v1/collections/Rules/snapshots', { name: 'first', description: 'the first' });
    assert.equal(c.status, 202, c.text);
    assert.deepEqual(Object.keys(c.json).sort(), ['collection', 'createdAt', 'name', 'status']);
    assert.equal(c.json.status, 'PENDING');
    const done = await waitSnapshot(srv, 'Rules', 'first');
    assert.equal(done.status, 'COMMITTED', JSON.stringify(done));
    assert.equal(done.description, 'the first');
    assert.equal(done.objects, 100);
    assert.equal(done.shards.length, 2);
    assert.equal(done.shards.reduce((a, s) => a + s.objects, 0), 100);
    assert.ok(done.bytes > 0 && done.bytesUploaded > 0 && done.bytesUploaded <= done.bytes);
    assert.ok(done.committedAt >= done.createdAt);
    assert.equal(done.error, null);
    assert.match(done.location, /^file:\/\/.*\/snapshots\/Rules\/first$/);
    const dup = await srv.req('POST', '/v1/collections/Rules/snapshots', { name: 'first' });
    assert.equal(dup.status, 409, dup.text);

    const list = await srv.req('GET', '/v1/collections/Rules/snapshots');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.snapshots.map((s) => s.name), ['first']);

    // Restore: the target must be new and valid; the source must exist.
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', { target: 'Rules' })).status, 409);
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', { target: '9bad' })).status, 422);
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', {})).status, 422);
    assert.equal((await srv.req('POST', '/v1/collections/Rules/snapshots/nope/restore', { target: 'X' })).status, 404);
    const job = await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', { target: 'RulesCopy' });
    assert.equal(job.status, 202, job.text);
    const j = await waitJob(srv, job.json.jobId);
    assert.equal(j.state, 'COMPLETED', j.reason);
    assert.equal(j.progress, 100);
    assert.equal(j.bytesCopied, j.bytesTotal);
    assert.equal(j.bytesTotal, done.bytes);
    assert.equal(j.snapshot, 'first');
    assert.equal(j.collection, 'Rules');
    assert.equal(j.target, 'RulesCopy');
    assert.ok(j.tookInMs >= 0 && j.startedAt > 0);
    const jobs = await srv.req('GET', '/v1/restore-jobs');
    assert.deepEqual(jobs.json.jobs.map((x) => x.jobId), [job.json.jobId]);
    const again = await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', { target: 'RulesCopy' });
    assert.equal(again.status, 409, again.text);
    const copy = await srv.req('GET', '/v1/collections/RulesCopy');
    assert.equal(copy.status, 200);
    assert.equal(copy.json.shards, 2);
    assert.deepEqual([...(await listAll(srv, 'RulesCopy')).keys()].sort(), [...(await listAll(srv, 'Rules')).keys()].sort());
    // The copy is a normal collection: writable, independent of the source.
    const w = await srv.req('POST', '/v1/collections/RulesCopy/objects', { vector: Array(16).fill(0.5), properties: { w: 1, seq: 1 } });
    assert.equal(w.status, 200, w.text);

    // Snapshots outlive their collection and can still be restored.
    assert.equal((await srv.req('DELETE', '/v1/collections/Rules')).status, 204);
    assert.equal((await srv.req('GET', '/v1/collections/Rules/snapshots')).json.snapshots.length, 1);
    const j2 = await srv.req('POST', '/v1/collections/Rules/snapshots/first/restore', { target: 'RulesBack' });
    assert.equal((await waitJob(srv, j2.json.jobId)).state, 'COMPLETED');
    assert.equal((await listAll(srv, 'RulesBack')).size, 100);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('restore equals the source at create while 8 clients write during create and restore', async () => {
  const srv = await startServer({ env: GC_ENV });
  try {
    await createCollection(srv, 'Live', 4);
    const staticObjs = await load(srv, 'Live', 20000, 5);
    const wr = startWriters(srv, 'Live', 8);
    await new Promise((r) => setTimeout(r, 500));
    const ackedBefore = wr.acked();
    const snap = await srv.req('POST', '/v1/collections/Live/snapshots?wait=true', { name: 'pit' });
    const issuedAfter = wr.issued();
    assert.equal(snap.status, 200, snap.text);
    assert.equal(snap.json.status, 'COMMITTED', snap.text);
    assert.ok(snap.json.objects >= staticObjs.size && snap.json.objects <= staticObjs.size + 8 * 24, `${snap.json.objects} objects`);
    const job = await srv.req('POST', '/v1/collections/Live/snapshots/pit/restore', { target: 'LiveAt' });
    assert.equal(job.status, 202, job.text);
    const j = await waitJob(srv, job.json.jobId);
    assert.equal(j.state, 'COMPLETED', j.reason);
    await new Promise((r) => setTimeout(r, 300)); // writers keep going while the restore finishes
    await wr.stop();
    for (const w of wr.writers) assert.deepEqual(w.errors.slice(0, 3), [], `writer ${w.w}`);
    assert.ok(wr.acked().every((n, i) => n > issuedAfter[i]), 'writers kept writing during the restore');
    const restored = await listAll(srv, 'LiveAt');
    checkPointInTime(restored, staticObjs, wr.writers, ackedBefore, issuedAfter);
    assert.equal(restored.size, snap.json.objects, 'the snapshot counted what it holds');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('incremental: after a 1% change the second snapshot uploads at most 5% of the first', async () => {
  const srv = await startServer({ env: GC_ENV });
  try {
    await createCollection(srv, 'Inc', 4);
    const objs = await load(srv, 'Inc', 40000, 11);
    const first = await srv.req('POST', '/v1/collections/Inc/snapshots?wait=true', { name: 'one' });
    assert.equal(first.json.status, 'COMMITTED', first.text);
    // Everything is new the first time, except files identical across shards
    // (CURRENT, OPTIONS), which are stored once.
    assert.ok(first.json.bytesUploaded <= first.json.bytes && first.json.bytesUploaded > first.json.bytes * 0.99,
      `${first.json.bytesUploaded} of ${first.json.bytes} bytes uploaded`);
    const same = await srv.req('POST', '/v1/collections/Inc/snapshots?wait=true', { name: 'same' });
    assert.equal(same.json.status, 'COMMITTED');
    assert.equal(same.json.bytesUploaded, 0, 'nothing changed, nothing uploaded');
    // Change 1%: 400 objects.
    const ids = [...objs.keys()].slice(0, 400);
    const lines = ids.map((id, i) => JSON.stringify({ collection: 'Inc', id, vector: Array(16).fill(i / 400), properties: { w: -2, seq: i } }));
    const r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
    assert.equal(r.json.failed, 0);
    const second = await srv.req('POST', '/v1/collections/Inc/snapshots?wait=true', { name: 'two' });
    assert.equal(second.json.status, 'COMMITTED', second.text);
    const ratio = second.json.bytesUploaded / first.json.bytesUploaded;
    assert.ok(ratio <= 0.05, `second snapshot uploaded ${second.json.bytesUploaded} bytes = ${(ratio * 100).toFixed(2)}% of the first (${first.json.bytesUploaded})`);
    assert.ok(second.json.bytesUploaded > 0, 'the change was uploaded');
    // Blobs are hard links of the shard files on the same filesystem.
    const loc = path.join(srv.dataDir, 'location');
    const { blobs } = manifestBlobs(loc, 'Inc', 'two');
    assert.equal(blobsOnDisk(loc).size >= blobs.size, true);
    // And the second restores to the changed state.
    const job = await srv.req('POST', '/v1/collections/Inc/snapshots/two/restore', { target: 'IncTwo' });
    assert.equal((await waitJob(srv, job.json.jobId)).state, 'COMPLETED');
    const restored = await listAll(srv, 'IncTwo');
    assert.equal(restored.size, objs.size);
    for (const [i, id] of ids.entries()) assert.equal(restored.get(id).properties.seq, i);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('drop + GC removes exactly the blobs no remaining snapshot needs; drop is refused while a restore reads', async () => {
  const srv = await startServer({ env: { ...GC_ENV, SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '0' } });
  try {
    await createCollection(srv, 'Gc', 2);
    const objs = await load(srv, 'Gc', 3000, 21);
    assert.equal((await srv.req('POST', '/v1/collections/Gc/snapshots?wait=true', { name: 'a' })).json.status, 'COMMITTED');
    const lines = [...objs.keys()].slice(0, 500).map((id) => JSON.stringify({ collection: 'Gc', id, vector: Array(16).fill(1), properties: { w: -3, seq: 0 } }));
    assert.equal((await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' })).json.failed, 0);
    assert.equal((await srv.req('POST', '/v1/collections/Gc/snapshots?wait=true', { name: 'b' })).json.status, 'COMMITTED');
    const loc = path.join(srv.dataDir, 'location');
    const A = manifestBlobs(loc, 'Gc', 'a').blobs;
    const B = manifestBlobs(loc, 'Gc', 'b').blobs;
    const onlyA = [...A].filter((h) => !B.has(h));
    assert.ok(onlyA.length > 0, 'snapshot a has blobs b does not need');
    assert.deepEqual([...blobsOnDisk(loc)].sort(), [...new Set([...A, ...B])].sort());

    // Nothing is garbage yet.
    let gc = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.equal(gc.json.blobsDeleted, 0);

    const d = await srv.req('DELETE', '/v1/collections/Gc/snapshots/a');
    assert.equal(d.status, 204, d.text);
    assert.equal((await srv.req('GET', '/v1/collections/Gc/snapshots/a')).status, 404);
    assert.ok(!existsSync(path.join(loc, 'snapshots', 'Gc', 'a')), 'manifest gone');
    gc = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.equal(gc.json.blobsDeleted, onlyA.length);
    assert.ok(gc.json.bytesFreed > 0);
    assert.deepEqual([...blobsOnDisk(loc)].sort(), [...B].sort(), 'exactly the blobs b needs remain');
    // b still restores.
    const job = await srv.req('POST', '/v1/collections/Gc/snapshots/b/restore', { target: 'GcB' });
    assert.equal((await waitJob(srv, job.json.jobId)).state, 'COMPLETED');
    assert.equal((await listAll(srv, 'GcB')).size, 3000);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('drop is refused (409) while a restore reads the snapshot', async () => {
  // Copies instead of hard links (the path any other filesystem takes).
  const srv = await startServer({ env: { ...GC_ENV, SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '150', SHARDVAULT_SNAPSHOT_RESTORE_LINK: 'false' } });
  try {
    await createCollection(srv, 'Busy', 2);
    await load(srv, 'Busy', 500, 31);
    assert.equal((await srv.req('POST', '/v1/collections/Busy/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    const job = await srv.req('POST', '/v1/collections/Busy/snapshots/s/restore', { target: 'BusyCopy' });
    const d = await srv.req('DELETE', '/v1/collections/Busy/snapshots/s');
    assert.equal(d.status, 409, d.text);
    assert.match(d.json.error[0].message, /restore job/);
    assert.equal((await waitJob(srv, job.json.jobId)).state, 'COMPLETED');
    assert.equal((await srv.req('DELETE', '/v1/collections/Busy/snapshots/s')).status, 204);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('the target name is reserved while a restore runs: creating it answers 409, and the restore completes', async () => {
  const srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '200', SHARDVAULT_SNAPSHOT_RESTORE_LINK: 'false' } });
  try {
    await createCollection(srv, 'Res', 2);
    const objs = await load(srv, 'Res', 300, 7);
    assert.equal((await srv.req('POST', '/v1/collections/Res/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    const job = await srv.req('POST', '/v1/collections/Res/snapshots/s/restore', { target: 'ResCopy' });
    assert.equal(job.status, 202, job.text);
    const c = await srv.req('POST', '/v1/collections', { name: 'ResCopy', shards: 1, vectors: { default: { dim: DIM } } });
    assert.equal(c.status, 409, c.text);
    assert.match(c.json.error[0].message, /restore/);
    const again = await srv.req('POST', '/v1/collections/Res/snapshots/s/restore', { target: 'ResCopy' });
    assert.equal(again.status, 409, again.text);
    assert.equal((await waitJob(srv, job.json.jobId)).state, 'COMPLETED');
    assert.equal((await listAll(srv, 'ResCopy')).size, objs.size);
    // a failed restore frees the name
    assert.equal((await srv.req('DELETE', '/v1/collections/ResCopy')).status, 204);
    const c2 = await srv.req('POST', '/v1/collections', { name: 'ResCopy', shards: 1, vectors: { default: { dim: DIM } } });
    assert.equal(c2.status, 200, c2.text);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a corrupted blob fails the restore with a reason naming it, and no target remains', async () => {
  const srv = await startServer({ env: GC_ENV });
  try {
    await createCollection(srv, 'Rot', 2);
    await load(srv, 'Rot', 2000, 41);
    assert.equal((await srv.req('POST', '/v1/collections/Rot/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    const loc = path.join(srv.dataDir, 'location');
    const { manifest } = manifestBlobs(loc, 'Rot', 's');
    const sst = manifest.shards[1].files.filter((f) => f.name.endsWith('.sst')).sort((a, b) => b.size - a.size)[0];
    assert.ok(sst, 'shard 1 has an SST');
    // The blob is a hard link of the live SST: replace it (new inode), never
    // write into it, or the source would be damaged too.
    const p = path.join(loc, 'blobs', sst.blob.slice(0, 2), sst.blob);
    const bytes = readFileSync(p);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(p + '.tmp', bytes);
    renameSync(p + '.tmp', p);
    const job = await srv.req('POST', '/v1/collections/Rot/snapshots/s/restore', { target: 'RotCopy' });
    assert.equal(job.status, 202, job.text);
    const j = await waitJob(srv, job.json.jobId);
    assert.equal(j.state, 'FAILED');
    assert.ok(j.reason.includes(`blobs/${sst.blob.slice(0, 2)}/${sst.blob}`), j.reason);
    assert.match(j.reason, /corrupt/);
    assert.equal((await srv.req('GET', '/v1/collections/RotCopy')).status, 404);
    const staging = path.join(srv.dataDir, 'snapshot-restore');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], 'staging rolled back');
    // The source is intact and the name is free again.
    assert.equal((await listAll(srv, 'Rot')).size, 2000);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
