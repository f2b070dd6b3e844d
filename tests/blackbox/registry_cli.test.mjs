// shardvault tenants offload|onload, registry …, snapshot mount|… through the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli as run } from './lib/server.mjs';
import { createCollection, load } from './lib/snapshot.mjs';
import { mtCollection, addTenants, loadTenant, listTenant, sameObjects, tenantStatus } from './lib/registry.mjs';

test('tenants offload/onload, registry and snapshot mount commands', async () => {
  const srv = await startServer();
  const env = { SHARDVAULT_URL: srv.url };
  try {
    await mtCollection(srv, 'CliT');
    await addTenants(srv, 'CliT', ['a', 'b']);
    const a = await loadTenant(srv, 'CliT', 'a', 500, 4);
    let r = await run(['tenants', 'offload', 'CliT', 'a', 'b'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^a OFFLOADED$/m);
    assert.match(r.stdout, /^b OFFLOADED$/m);
    assert.match(r.stderr, /offload: .* 2\/2 tenants/);
    assert.equal(await tenantStatus(srv, 'CliT', 'a'), 'OFFLOADED');
    r = await run(['tenants', 'onload', 'CliT', 'a', '--inactive'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^a INACTIVE$/m);
    r = await run(['tenants', 'activate', 'CliT', 'a'], env);
    assert.equal(r.status, 0, r.stderr);
    sameObjects(await listTenant(srv, 'CliT', 'a'), a);
    r = await run(['tenants', 'offload', 'CliT', 'nope'], env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /404.*nope/);

    r = await run(['registry', 'status'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.ok('cacheQuotaBytes' in JSON.parse(r.stdout));
    r = await run(['registry', 'list', '--collection', 'CliT'], env);
    const shards = JSON.parse(r.stdout).shards;
    assert.deepEqual(shards.map((s) => [s.shard, s.source]), [['b', 'offloaded'], ['a', 'local']]);
    r = await run(['registry', 'pin', 'CliT', 'b'], env);
    assert.equal(JSON.parse(r.stdout).pinned, true);
    r = await run(['registry', 'get', 'CliT', 'b'], env);
    assert.equal(JSON.parse(r.stdout).pinned, true);
    r = await run(['registry', 'unpin', 'CliT', 'b'], env);
    assert.equal(JSON.parse(r.stdout).pinned, false);
    r = await run(['registry', 'gc'], env);
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)).sort(), ['bytesFreed', 'shardsEvicted']);
    r = await run(['registry', '--help'], env);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /registry list/);
    assert.equal((await run(['registry', 'frob'], env)).status, 2);

    await createCollection(srv, 'CliS', 2);
    const objs = await load(srv, 'CliS', 300, 9);
    assert.equal((await srv.req('POST', '/v1/collections/CliS/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    r = await run(['snapshot', 'list-objects', 'CliS', 's'], env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /409.*mount it first/);
    r = await run(['snapshot', 'mount', 'CliS', 's'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).objects, 300);
    r = await run(['snapshot', 'list-objects', 'CliS', 's', '--limit', '7'], env);
    assert.equal(JSON.parse(r.stdout).objects.length, 7);
    const id = [...objs.keys()][3];
    assert.equal((await srv.req('DELETE', `/v1/collections/CliS/objects/${id}`)).status, 204);
    r = await run(['snapshot', 'get', 'CliS', 's', id], env);
    assert.equal(JSON.parse(r.stdout).id, id);
    r = await run(['snapshot', 'restore-objects', 'CliS', 's', id, '--on-conflict', 'skip'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { restored: 1, skipped: 0, missing: [] });
    assert.equal((await srv.req('GET', `/v1/collections/CliS/objects/${id}`)).status, 200);
    r = await run(['snapshot', 'unmount', 'CliS', 's'], env);
    assert.equal(r.status, 0, r.stderr);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
