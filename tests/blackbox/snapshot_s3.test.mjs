// Snapshots on an s3:// location end to end against s3rver, every request
// through a proxy that verifies SigV4 signatures as S3 does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { startS3, startFaultProxy } from './lib/s3.mjs';
import { createCollection, load, listAll, waitJob } from './lib/snapshot.mjs';

async function listKeys(endpoint, bucket, prefix) {
  const keys = [];
  let token = null;
  for (;;) {
    const q = new URLSearchParams({ 'list-type': '2', prefix });
    if (token) q.set('continuation-token', token);
    const xml = await (await fetch(`${endpoint}/${bucket}?${q}`)).text();
    for (const m of xml.matchAll(/<Key>([^<]+)<\/Key>/g)) keys.push(m[1]);
    const t = xml.match(/<NextContinuationToken>([^<]+)<\/NextContinuationToken>/);
    if (!t) break;
    token = t[1];
  }
  return keys;
}

test('create, incremental create, restore, drop and GC on s3://', async () => {
  const s3 = await startS3();
  await s3.createBucket('snaps');
  const proxy = await startFaultProxy({ target: s3.endpoint, verifySecret: 'S3RVER' });
  const srv = await startServer({
    env: {
      ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint,
      SHARDVAULT_SNAPSHOT_LOCATION: 's3://snaps/cluster-a', SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0',
      // Small parts so the larger SST files go multipart.
      SHARDVAULT_S3_MULTIPART_THRESHOLD: '256Ki', SHARDVAULT_S3_PART_SIZE: '128Ki',
    },
  });
  try {
    await createCollection(srv, 'Remote', 3);
    const objs = await load(srv, 'Remote', 8000, 17);
    const one = await srv.req('POST', '/v1/collections/Remote/snapshots?wait=true', { name: 'one' });
    assert.equal(one.json.status, 'COMMITTED', one.text);
    assert.match(one.json.location, /^s3:\/\/snaps\/cluster-a\/snapshots\/Remote\/one$/);
    assert.ok(one.json.bytesUploaded > 0);
    const keys = await listKeys(s3.endpoint, 'snaps', 'cluster-a/');
    assert.ok(keys.includes('cluster-a/snapshots/Remote/one/manifest.json'), keys.join('\n'));
    const blobs = keys.filter((k) => k.startsWith('cluster-a/blobs/'));
    assert.ok(blobs.length > 0);
    for (const k of blobs) assert.match(k, /^cluster-a\/blobs\/([0-9a-f]{2})\/\1[0-9a-f]{62}$/);

    // Unchanged: nothing uploaded. Changed: only the change.
    const same = await srv.req('POST', '/v1/collections/Remote/snapshots?wait=true', { name: 'same' });
    assert.equal(same.json.bytesUploaded, 0);
    const ids = [...objs.keys()].slice(0, 80);
    const lines = ids.map((id) => JSON.stringify({ collection: 'Remote', id, vector: Array(16).fill(0.25), properties: { w: -9, seq: 1 } }));
    assert.equal((await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' })).json.failed, 0);
    const two = await srv.req('POST', '/v1/collections/Remote/snapshots?wait=true', { name: 'two' });
    assert.equal(two.json.status, 'COMMITTED');
    assert.ok(two.json.bytesUploaded > 0 && two.json.bytesUploaded <= 0.05 * one.json.bytesUploaded,
      `${two.json.bytesUploaded} vs ${one.json.bytesUploaded}`);

    const job = await srv.req('POST', '/v1/collections/Remote/snapshots/one/restore', { target: 'RemoteOne' });
    assert.equal(job.status, 202, job.text);
    const j = await waitJob(srv, job.json.jobId);
    assert.equal(j.state, 'COMPLETED', j.reason);
    const restored = await listAll(srv, 'RemoteOne');
    assert.equal(restored.size, objs.size);
    for (const [id, o] of objs) {
      assert.deepEqual(restored.get(id).properties, o.properties);
      assert.deepEqual(restored.get(id).vector.map(Math.fround), o.vector);
    }

    for (const name of ['one', 'same']) assert.equal((await srv.req('DELETE', `/v1/collections/Remote/snapshots/${name}`)).status, 204);
    const gc = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.ok(gc.json.blobsDeleted > 0);
    // What remains is exactly what "two" references.
    const manifest = JSON.parse(await (await fetch(`${s3.endpoint}/snaps/cluster-a/snapshots/Remote/two/manifest.json`)).text());
    const need = new Set(manifest.shards.flatMap((s) => s.files.map((f) => `cluster-a/blobs/${f.blob.slice(0, 2)}/${f.blob}`)));
    const left = (await listKeys(s3.endpoint, 'snaps', 'cluster-a/blobs/')).sort();
    assert.deepEqual(left, [...need].sort());
    const jobTwo = await srv.req('POST', '/v1/collections/Remote/snapshots/two/restore', { target: 'RemoteTwo' });
    assert.equal((await waitJob(srv, jobTwo.json.jobId)).state, 'COMPLETED');
    assert.equal((await listAll(srv, 'RemoteTwo')).get(ids[0]).properties.w, -9);
    assert.deepEqual(proxy.stats.sigFailures, []);
    assert.ok(proxy.stats.sigChecked > 20);
  } finally {
    await srv.stop();
    srv.cleanup();
    await proxy.stop();
    await s3.stop();
  }
});
