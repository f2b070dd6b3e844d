// Disaster recovery of offloaded tenants: a node's data directory is lost; a
// fresh node on the same location runs `maintenance rebuild` and gets its
// offloaded tenants back (and their collection, from the manifest's schema),
// OFFLOADED, onloadable, equal to what they held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { runAgent } from './lib/maintenance.mjs';
import { mtCollection, addTenants, loadTenant, listTenant, sameObjects, tenantStatus, setStatus } from './lib/registry.mjs';

for (const source of ['full-scan', 'auto']) {
  test(`rebuild (${source}) brings offloaded tenants back`, async () => {
    const loc = tempDir('sv-loc-');
    const env = { SHARDVAULT_LOCATION: `file://${loc}`, SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL: '200ms' };
    let srv = await startServer({ env });
    let a, b;
    try {
      await mtCollection(srv, 'Lost', { autoTenantActivation: true });
      await addTenants(srv, 'Lost', ['a', 'b', 'live']);
      a = await loadTenant(srv, 'Lost', 'a', 400, 1);
      b = await loadTenant(srv, 'Lost', 'b', 100, 2);
      await loadTenant(srv, 'Lost', 'live', 10, 3);
      assert.equal(await setStatus(srv, 'Lost', 'a', 'OFFLOADED'), 'OFFLOADED');
      assert.equal(await setStatus(srv, 'Lost', 'b', 'OFFLOADED'), 'OFFLOADED');
      await srv.kill9();
      rmSync(srv.dataDir, { recursive: true, force: true });
      srv = await startServer({ env });
      assert.equal((await srv.req('GET', '/v1/collections/Lost')).status, 404);
      const job = await runAgent(srv, 'rebuild', { source });
      assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
      assert.ok(job.result.tenantsFound >= 2, JSON.stringify(job.result));
      const coll = await srv.req('GET', '/v1/collections/Lost');
      assert.equal(coll.status, 200, coll.text);
      assert.equal(coll.json.autoTenantActivation, true);
      assert.equal(await tenantStatus(srv, 'Lost', 'a'), 'OFFLOADED');
      assert.equal(await tenantStatus(srv, 'Lost', 'b'), 'OFFLOADED');
      const listed = (await srv.req('GET', '/v1/collections/Lost/tenants')).json.tenants;
      assert.equal(listed.find((t) => t.name === 'a').objects, 400);
      assert.equal((await srv.req('GET', '/v1/registry/shards/Lost/a')).json.source, 'offloaded');
      assert.equal(await setStatus(srv, 'Lost', 'a', 'ACTIVE'), 'ACTIVE');
      sameObjects(await listTenant(srv, 'Lost', 'a'), a);
      // autoTenantActivation on the rebuilt collection: a read onloads b.
      const id = [...b.keys()][0];
      const g = await srv.req('GET', `/v1/collections/Lost/objects/${id}?tenant=b`);
      assert.equal(g.status, 200, g.text);
      sameObjects(await listTenant(srv, 'Lost', 'b'), b);
      // A second rebuild changes nothing and fails nothing.
      const again = await runAgent(srv, 'rebuild', { source: 'full-scan' });
      assert.equal(again.state, 'SUCCEEDED', JSON.stringify(again));
      assert.equal(await tenantStatus(srv, 'Lost', 'a'), 'ACTIVE');
    } finally {
      await srv.stop();
      srv.cleanup();
      rmSync(loc, { recursive: true, force: true });
    }
  });
}

test('a rebuild on a node whose live collection of that name is not multi-tenant keeps the live one and finishes', async () => {
  const loc = tempDir('sv-loc-');
  const env = { SHARDVAULT_LOCATION: `file://${loc}` };
  let srv = await startServer({ env });
  try {
    await mtCollection(srv, 'Clash');
    await addTenants(srv, 'Clash', ['t4']);
    await loadTenant(srv, 'Clash', 't4', 50, 4);
    assert.equal(await setStatus(srv, 'Clash', 't4', 'OFFLOADED'), 'OFFLOADED');
    await srv.kill9();
    rmSync(srv.dataDir, { recursive: true, force: true });
    srv = await startServer({ env });
    // a single-tenant collection of the same name, made before the rebuild
    const r = await srv.req('POST', '/v1/collections', { name: 'Clash', vectors: { default: { dim: 8 } } });
    assert.equal(r.status, 200, r.text);
    const job = await runAgent(srv, 'rebuild', { source: 'full-scan' });
    assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
    const c = await srv.req('GET', '/v1/collections/Clash');
    assert.ok(!c.json.multiTenancy || c.json.multiTenancy === false || c.json.multiTenancy.enabled === false, c.text);
    assert.match(srv.stderr, /offloaded tenant not adopted: the live collection of that name cannot hold it/);
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
