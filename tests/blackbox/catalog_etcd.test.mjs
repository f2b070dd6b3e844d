// The whole server on the etcd catalog (--catalog etcd://...): collections,
// objects, snapshots, restores and jobs work and live in etcd; an etcd
// outage makes no node exit, fails catalog writes with 503 and a reason
// while it lasts, loses nothing acknowledged, and writes resume after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { createCollection, load, listAll, waitJob } from './lib/snapshot.mjs';
import { waitExport } from './lib/export.mjs';

test('store, snapshot, restore and jobs run on the etcd catalog and survive a restart', async () => {
  const etcd = await startEtcd();
  const catalog = `etcd://${etcd.endpoint}/sv/`;
  let srv = await startServer({ args: ['--catalog', catalog] });
  const dataDir = srv.dataDir;
  try {
    await createCollection(srv, 'OnEtcd', 2);
    const objs = await load(srv, 'OnEtcd', 300);
    const snap = await srv.req('POST', '/v1/collections/OnEtcd/snapshots?wait=true', { name: 's1' });
    assert.equal(snap.status, 200, snap.text);
    assert.equal(snap.json.status, 'COMMITTED');
    const job = await srv.req('POST', '/v1/collections/OnEtcd/snapshots/s1/restore', { target: 'OnEtcdCopy' });
    assert.equal(job.status, 202, job.text);
    assert.equal((await waitJob(srv, job.json.jobId)).state, 'COMPLETED');
    assert.deepEqual([...(await listAll(srv, 'OnEtcdCopy')).keys()].sort(), [...objs.keys()].sort());
    const ex = await srv.req('POST', '/v1/export/filesystem', { id: 'e1', include: ['OnEtcd'] });
    assert.equal(ex.status, 200, ex.text);
    const exDone = await waitExport(srv, 'filesystem', 'e1');
    assert.equal(exDone.status, 'SUCCESS', JSON.stringify(exDone));
    const jobs = await srv.req('GET', '/v1/jobs');
    assert.equal(jobs.status, 200);
    assert.deepEqual(jobs.json.jobs.map((j) => j.kind).sort(), ['export', 'restore', 'snapshot']);

    // The records are in etcd under the namespace, not in an embedded catalog.
    const keys = etcd.ctl('get', '--prefix', '--keys-only', 'sv/').split('\n').filter(Boolean);
    assert.ok(keys.includes('sv/collections/OnEtcd'), keys.join(' '));
    assert.ok(keys.some((k) => k.startsWith('sv/') && k.includes('s1')), keys.join(' '));
    assert.equal(existsSync(path.join(dataDir, 'catalog')), false);

    // A restart rebuilds everything from etcd.
    assert.equal((await srv.stop()).code, 0);
    srv = await startServer({ dataDir, args: ['--catalog', catalog] });
    const cols = await srv.req('GET', '/v1/collections');
    assert.equal(cols.status, 200, cols.text);
    const names = (cols.json.collections || cols.json).map((c) => c.name).sort();
    assert.deepEqual(names, ['OnEtcd', 'OnEtcdCopy']);
    const list = await srv.req('GET', '/v1/collections/OnEtcd/snapshots');
    assert.deepEqual(list.json.snapshots.map((s) => s.name), ['s1']);
    assert.equal((await listAll(srv, 'OnEtcd')).size, 300);
  } finally {
    await srv.stop();
    srv.cleanup();
    await etcd.cleanup();
  }
});

test('an etcd outage: no exit, reads go on, catalog writes 503 with the reason, then resume; nothing acknowledged is lost', async () => {
  const etcd = await startEtcd();
  // A short retry budget so the outage is seen as one quickly.
  const srv = await startServer({ args: ['--catalog', `etcd://${etcd.endpoint}/out/?retry_ms=1000`] });
  try {
    await createCollection(srv, 'Before', 2);
    const objs = await load(srv, 'Before', 200);
    const id = [...objs.keys()][0];

    await etcd.stop();
    const read = await srv.req('GET', `/v1/collections/Before/objects/${id}`);
    assert.equal(read.status, 200, read.text);
    const ddl = await srv.req('POST', '/v1/collections', { name: 'During', shards: 1, vectors: { default: { dim: 16 } } });
    assert.equal(ddl.status, 503, ddl.text);
    assert.match(ddl.json.error[0].message, /catalog unavailable.*etcd/);
    const snap = await srv.req('POST', '/v1/collections/Before/snapshots?wait=true', { name: 'during' });
    assert.ok(snap.status >= 500, snap.text);
    assert.equal(srv.proc.exitCode, null, 'the server must not exit');

    await etcd.start();
    assert.equal(srv.proc.exitCode, null, 'the server must not exit');
    await createCollection(srv, 'After', 1);
    const s2 = await srv.req('POST', '/v1/collections/Before/snapshots?wait=true', { name: 'after' });
    assert.equal(s2.status, 200, s2.text);
    assert.equal(s2.json.status, 'COMMITTED');
    const cols = await srv.req('GET', '/v1/collections');
    const names = (cols.json.collections || cols.json).map((c) => c.name).sort();
    assert.deepEqual(names, ['After', 'Before']);
    assert.equal((await listAll(srv, 'Before')).size, 200);
    // The node's lease outlived the outage (shorter than its TTL): still HEALTHY, never lost.
    const nodes = await srv.req('GET', '/v1/nodes');
    assert.equal(nodes.status, 200, nodes.text);
    assert.deepEqual(nodes.json.nodes.map((n) => [n.name, n.status]), [['node1', 'HEALTHY']]);
    const metrics = (await srv.req('GET', '/metrics')).text;
    assert.match(metrics, /shardvault_cluster_lease_losses_total 0\n/);
    assert.match(metrics, /shardvault_catalog_up\{driver="etcd"\} 1\n/);
    assert.doesNotMatch(metrics, /shardvault_catalog_unavailable_total 0\n/);
    // No job is left running by the outage: each one ended (or never began).
    const deadline = Date.now() + 60000;
    let jobs;
    for (;;) {
      jobs = (await srv.req('GET', '/v1/jobs')).json.jobs;
      if (jobs.every((j) => ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(jobs.every((j) => ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state)), JSON.stringify(jobs));
    assert.ok(jobs.some((j) => j.kind === 'snapshot' && j.state === 'SUCCEEDED'), JSON.stringify(jobs));
    const snaps = (await srv.req('GET', '/v1/collections/Before/snapshots')).json.snapshots;
    assert.ok(snaps.every((s) => s.status === 'COMMITTED' || s.status === 'FAILED'), JSON.stringify(snaps));
    assert.ok(snaps.some((s) => s.name === 'after' && s.status === 'COMMITTED'));
    assert.equal((await srv.stop()).code, 0);
    assert.match(srv.stderr, /catalog etcd unavailable/);
  } finally {
    await srv.stop();
    srv.cleanup();
    await etcd.cleanup();
  }
});
