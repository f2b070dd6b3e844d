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
