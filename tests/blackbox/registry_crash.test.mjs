// kill -9 at every step of offload, onload and hydration (SHARDVAULT_TEST_CRASH_AT
// makes the server SIGKILL itself at a named point): after a restart nothing is
// in a transitional state, no job is left running, no acknowledged object is
// lost, and no orphan files remain (local files of offloaded tenants, cache
// entries no shard owns, scratch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { mtCollection, addTenants, loadTenant, listTenant, sameObjects, tenantStatus, setStatus, until } from './lib/registry.mjs';

const OFFLOAD_POINTS = ['offload:started', 'offload:after_upload', 'offload:after_register',
  'offload:before_remove_local', 'offload:settled'];
const ONLOAD_POINTS = ['onload:started', 'hydrate:fetch', 'hydrate:fetched', 'lay_out:hydrated', 'lay_out:laid_out',
  'onload:before_settle', 'onload:settled'];

function tenantDirs(dataDir) {
  const root = path.join(dataDir, 'shards');
  return readdirSync(root).flatMap((u) => readdirSync(path.join(root, u)));
}

async function checkSettled(srv, objs) {
  const status = await tenantStatus(srv, 'Crash', 'victim');
  assert.ok(['ACTIVE', 'OFFLOADED'].includes(status), status);
  const reg = (await srv.req('GET', '/v1/registry/shards?collection=Crash')).json.shards;
  for (const s of reg) assert.ok(!['INITIALIZING', 'RECOVERING'].includes(s.state), JSON.stringify(s));
  for (const state of ['RUNNING', 'PENDING']) {
    const j = (await srv.req('GET', `/v1/jobs?state=${state}`)).json.jobs;
    assert.equal(j.length, 0, JSON.stringify(j));
  }
  // No orphans: an offloaded tenant has no local files; the cache holds only
  // shards the registry has AVAILABLE; scratch is empty.
  if (status === 'OFFLOADED') {
    assert.ok(!tenantDirs(srv.dataDir).includes('victim'));
    const rec = reg.find((s) => s.shard === 'victim');
    assert.ok(rec && rec.source === 'offloaded', JSON.stringify(reg));
  } else {
    assert.ok(!reg.some((s) => s.source === 'offloaded'), JSON.stringify(reg));
  }
  const cache = path.join(srv.dataDir, 'cache');
  const cached = existsSync(path.join(cache, 'Crash')) ? readdirSync(path.join(cache, 'Crash')) : [];
  for (const c of cached) {
    const rec = reg.find((s) => s.shard === c);
    assert.ok(rec && ['AVAILABLE', 'SERVING'].includes(rec.state), `cache entry ${c} owned by ${JSON.stringify(rec)}`);
  }
  assert.ok(!readdirSync(cache).some((e) => e.startsWith('.tmp')), readdirSync(cache).join(','));
  assert.deepEqual(readdirSync(path.join(srv.dataDir, 'tmp')), []);
  // Every acknowledged object is there (onloading it if needed).
  if (status === 'OFFLOADED') assert.equal(await setStatus(srv, 'Crash', 'victim', 'ACTIVE'), 'ACTIVE');
  sameObjects(await listTenant(srv, 'Crash', 'victim'), objs);
  // And it can be offloaded and onloaded again.
  assert.equal(await setStatus(srv, 'Crash', 'victim', 'OFFLOADED'), 'OFFLOADED');
  assert.equal(await setStatus(srv, 'Crash', 'victim', 'ACTIVE'), 'ACTIVE');
  sameObjects(await listTenant(srv, 'Crash', 'victim'), objs);
}

for (const point of [...OFFLOAD_POINTS, ...ONLOAD_POINTS]) {
  test(`kill -9 at ${point}: settled after restart, nothing lost, no orphans`, async () => {
    const dataDir = tempDir();
    let srv = await startServer({ dataDir, env: { SHARDVAULT_TEST_CRASH_AT: point } });
    try {
      await mtCollection(srv, 'Crash');
      await addTenants(srv, 'Crash', ['victim', 'bystander']);
      const objs = await loadTenant(srv, 'Crash', 'victim', 1500, 11);
      const other = await loadTenant(srv, 'Crash', 'bystander', 100, 12);
      const onload = ONLOAD_POINTS.includes(point);
      if (onload) assert.equal(await setStatus(srv, 'Crash', 'victim', 'OFFLOADED'), 'OFFLOADED');
      const r = await srv.req('PUT', '/v1/collections/Crash/tenants', { tenants: [{ name: 'victim', status: onload ? 'ACTIVE' : 'OFFLOADED' }] });
      assert.equal(r.status, 200, r.text);
      const code = await Promise.race([srv.exited, new Promise((res) => setTimeout(() => res('alive'), 20000))]);
      assert.notEqual(code, 'alive', `the server did not reach ${point}`);
      srv = await startServer({ dataDir });
      await until('settled', async () => ['ACTIVE', 'OFFLOADED'].includes(await tenantStatus(srv, 'Crash', 'victim')), 5000);
      const failed = (await srv.req('GET', `/v1/jobs?kind=${onload ? 'onload' : 'offload'}`)).json.jobs;
      assert.ok(failed.length >= 1 && failed.every((j) => ['FAILED', 'SUCCEEDED'].includes(j.state)), JSON.stringify(failed));
      await checkSettled(srv, objs);
      sameObjects(await listTenant(srv, 'Crash', 'bystander'), other);
    } finally {
      await srv.stop();
      srv.cleanup();
    }
  });
}
