// Offloaded tenants on a 2-node cluster (etcd, one shared location): a tenant
// offloaded and onloaded through the node that does not own it; its registry
// record lives on its owner only; a restart of the other node does not settle
// (revert) a tenant its owner is offloading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startServer, tempDir } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { mtCollection, addTenants, loadTenant, listTenant, sameObjects, tenantStatus, setStatus, until } from './lib/registry.mjs';

const SECRET = 'registry-cluster-secret-0123456789';

test('2 nodes: offload and onload through a non-owner; records only on the owner; a peer restart settles nothing of the owner', async () => {
  const etcd = await startEtcd();
  const loc = tempDir('sv-loc-');
  const args = (n) => ['--catalog', `etcd://${etcd.endpoint}/rc/`, '--node-ttl', '2s', '--node-name', n];
  const env = { SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: `file://${loc}` };
  const nodes = {};
  try {
    nodes.a = await startServer({ env, args: args('a') });
    nodes.b = await startServer({ env: { ...env, SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '150' }, args: args('b') }); // b's uploads are slow
    await until('2 healthy nodes', async () => {
      const r = await nodes.a.req('GET', '/v1/nodes');
      return r.status === 200 && r.json.nodes.filter((x) => x.status === 'HEALTHY').length === 2;
    }, 60000);
    await mtCollection(nodes.a, 'Dist');
    await addTenants(nodes.a, 'Dist', ['t1', 't2']);
    const tenants = (await nodes.a.req('GET', '/v1/collections/Dist/tenants')).json.tenants;
    const owner = Object.fromEntries(tenants.map((t) => [t.name, t.node]));
    assert.ok(owner.t1 && owner.t2, JSON.stringify(tenants));
    // The tenant owned by b, driven through a.
    const t = owner.t1 === 'b' ? 't1' : owner.t2 === 'b' ? 't2' : null;
    assert.ok(t, `one tenant on b: ${JSON.stringify(owner)}`);
    const objs = await loadTenant(nodes.a, 'Dist', t, 300, 9);
    // Offload through a; while b (the owner) is still uploading, a restarts: a must not
    // settle (revert) b's OFFLOADING tenant at its start.
    const r = await nodes.a.req('PUT', '/v1/collections/Dist/tenants', { tenants: [{ name: t, status: 'OFFLOADED' }] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.tenants[0].status, 'OFFLOADING');
    await nodes.a.kill9();
    nodes.a = await startServer({ dataDir: nodes.a.dataDir, env, args: args('a') });
    await until('OFFLOADED', async () => (await tenantStatus(nodes.a, 'Dist', t)) === 'OFFLOADED', 30000);
    const job = (await nodes.b.req('GET', '/v1/jobs?kind=offload')).json.jobs[0];
    assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
    assert.equal(await tenantStatus(nodes.b, 'Dist', t), 'OFFLOADED');
    // The registry record is the owner's.
    assert.equal((await nodes.b.req('GET', `/v1/registry/shards/Dist/${t}`)).json.source, 'offloaded');
    const onA = (await nodes.a.req('GET', '/v1/registry/shards?collection=Dist')).json.shards.filter((s) => s.shard === t);
    assert.deepEqual(onA, []);
    // A restart of a (not the owner) leaves b's tenant as it is.
    await nodes.a.stop();
    nodes.a = await startServer({ dataDir: nodes.a.dataDir, env, args: args('a') });
    assert.equal(await tenantStatus(nodes.a, 'Dist', t), 'OFFLOADED');
    assert.equal(await setStatus(nodes.a, 'Dist', t, 'ACTIVE'), 'ACTIVE');
    sameObjects(await listTenant(nodes.a, 'Dist', t), objs);
    sameObjects(await listTenant(nodes.b, 'Dist', t), objs);
  } finally {
    for (const n of Object.values(nodes)) { await n.stop(); n.cleanup(); }
    await etcd.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});

test('2 nodes: each node\'s registry records are its own: a peer\'s restart never marks another node\'s hydrated mount NEW; a pin sent to a node that does not hold the shard is 404; a drop through another node sees the mount', async () => {
  const etcd = await startEtcd();
  const loc = tempDir('sv-loc-');
  const args = (n) => ['--catalog', `etcd://${etcd.endpoint}/rn/`, '--node-ttl', '2s', '--node-name', n];
  const env = { SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: `file://${loc}` };
  const nodes = {};
  try {
    nodes.a = await startServer({ env, args: args('a') });
    nodes.b = await startServer({ env, args: args('b') });
    await until('2 healthy nodes', async () => {
      const r = await nodes.a.req('GET', '/v1/nodes');
      return r.status === 200 && r.json.nodes.filter((x) => x.status === 'HEALTHY').length === 2;
    }, 60000);
    await mtCollection(nodes.a, 'Own');
    await addTenants(nodes.a, 'Own', ['t1', 't2']);
    const owner = Object.fromEntries((await nodes.a.req('GET', '/v1/collections/Own/tenants')).json.tenants.map((t) => [t.name, t.node]));
    const t = Object.keys(owner).find((x) => owner[x] === 'b');
    assert.ok(t, JSON.stringify(owner));
    const loaded = await loadTenant(nodes.b, 'Own', t, 200, 5);
    let r = await nodes.b.req('POST', '/v1/collections/Own/snapshots?wait=true', { name: 's1' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    r = await nodes.b.req('POST', '/v1/collections/Own/snapshots/s1/mount');
    assert.equal(r.status, 200, r.text);
    r = await nodes.b.req('GET', `/v1/collections/Own/snapshots/s1/objects?tenant=${t}&limit=5`);
    assert.equal(r.status, 200, r.text);
    const mountShard = `s1@${t}`;
    const onB = async () => (await nodes.b.req('GET', `/v1/registry/shards/Own/${mountShard}`)).json;
    await until('hydrated on b', async () => ['AVAILABLE', 'SERVING'].includes((await onB()).state), 30000);
    assert.deepEqual((await nodes.a.req('GET', '/v1/registry/shards?collection=Own')).json.shards.filter((x) => x.source !== 'local'), []);
    // a restarts first, then b: b's hydrated copy is still there, and a still lists none of b's shards
    await nodes.a.stop();
    nodes.a = await startServer({ dataDir: nodes.a.dataDir, env, args: args('a') });
    await nodes.b.stop();
    nodes.b = await startServer({ dataDir: nodes.b.dataDir, env, args: args('b') });
    const after = await onB();
    assert.equal(after.state, 'AVAILABLE', JSON.stringify(after));
    assert.equal(after.lastError, '', JSON.stringify(after));
    assert.deepEqual((await nodes.a.req('GET', '/v1/registry/shards?collection=Own')).json.shards.filter((x) => x.source !== 'local'), []);
    r = await nodes.a.req('POST', `/v1/registry/shards/Own/${mountShard}/pin`);
    assert.equal(r.status, 404, r.text);
    assert.equal((await onB()).pinned, false);
    // mounted on a too: restoring an object of b's tenant there says where to do it
    assert.equal((await nodes.a.req('POST', '/v1/collections/Own/snapshots/s1/mount')).status, 200);
    const oneId = [...loaded.keys()][0];
    r = await nodes.a.req('POST', '/v1/collections/Own/snapshots/s1/objects/restore', { ids: [oneId], tenant: t });
    assert.equal(r.status, 503, r.text);
    assert.match(r.text, /on node b.*mount snapshot 's1' on node b and restore it there/);
    assert.equal((await nodes.a.req('DELETE', '/v1/collections/Own/snapshots/s1/mount')).status, 204);
    // a drop through a sees b's mount
    r = await nodes.a.req('DELETE', '/v1/collections/Own/snapshots/s1');
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /mounted on node b/);
    assert.equal((await nodes.b.req('DELETE', '/v1/collections/Own/snapshots/s1/mount')).status, 204);
    r = await nodes.a.req('DELETE', '/v1/collections/Own/snapshots/s1');
    assert.equal(r.status, 204, r.text);
  } finally {
    for (const n of Object.values(nodes)) { await n.stop(); n.cleanup(); }
    await etcd.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
