// Tenant offload and onload through the registry, black-box: round trips on
// file:// and s3rver with writers on other tenants, re-offload of unchanged
// data, reads of an offloaded tenant (422, or onload with
// autoTenantActivation: 100 concurrent cold reads -> one download),
// snapshots and exports that include offloaded tenants, the registry API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, rng, uuidFrom, vec } from './lib/server.mjs';
import { DIM, sleep, until, mtCollection, addTenants, loadTenant, listTenant, sameObjects, tenantStatus, setStatus } from './lib/registry.mjs';
import { startS3, startFaultProxy } from './lib/s3.mjs';

async function lastJob(srv, kind) {
  const r = await srv.req('GET', `/v1/jobs?kind=${kind}&limit=1`);
  assert.equal(r.status, 200, r.text);
  return until(`${kind} job finished`, async () => {
    const j = (await srv.req('GET', `/v1/jobs/${r.json.jobs[0].id}`)).json;
    return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state) && j;
  });
}

async function roundTrip(srv, locationFiles) {
  await mtCollection(srv, 'Docs');
  await addTenants(srv, 'Docs', ['cold', 'hot', 'empty']);
  // A tenant that never held data (never opened: no RocksDB directory at all).
  assert.equal(await setStatus(srv, 'Docs', 'empty', 'OFFLOADED'), 'OFFLOADED');
  assert.equal(await setStatus(srv, 'Docs', 'empty', 'ACTIVE'), 'ACTIVE');
  const cold = await loadTenant(srv, 'Docs', 'cold', 3000, 7);
  let hot = await loadTenant(srv, 'Docs', 'hot', 200, 8);

  // Writers on another tenant all along.
  let writing = true;
  let written = 0;
  let writerError = null;
  const writer = (async () => {
    const rand = rng(99);
    while (writing) {
      const o = { id: uuidFrom(rand), vector: vec(rand, DIM), properties: { n: written, s: 'w' } };
      const r = await srv.req('POST', '/v1/collections/Docs/objects?tenant=hot', o);
      if (r.status !== 200) { writerError = r.text; return; }
      hot.set(o.id, o);
      written++;
    }
  })();
  try {

  const r = await srv.req('PUT', '/v1/collections/Docs/tenants', { tenants: [{ name: 'cold', status: 'OFFLOADED' }] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.tenants[0].status, 'OFFLOADING');
  await until('cold OFFLOADED', async () => (await tenantStatus(srv, 'Docs', 'cold')) === 'OFFLOADED');
  const off = await lastJob(srv, 'offload');
  assert.equal(off.state, 'SUCCEEDED', JSON.stringify(off));
  assert.equal(off.collection, 'Docs');
  assert.equal(off.target, 'cold');
  assert.ok(off.result.bytes > 0 && off.result.bytesUploaded > 0 && off.bytesDone === off.result.bytes, JSON.stringify(off));
  if (locationFiles) assert.ok(locationFiles().includes('tenants/Docs/cold/manifest.json'));

  // Offloaded: reads and writes say so and how to bring it back.
  const g = await srv.req('GET', '/v1/collections/Docs/objects?tenant=cold&limit=5');
  assert.equal(g.status, 422, g.text);
  assert.match(g.text, /OFFLOADED/);
  assert.match(g.text, /ACTIVE/);
  const w = await srv.req('POST', '/v1/collections/Docs/objects?tenant=cold', { vector: Array(DIM).fill(0), properties: {} });
  assert.equal(w.status, 422, w.text);
  const listed = (await srv.req('GET', '/v1/collections/Docs/tenants')).json.tenants.find((t) => t.name === 'cold');
  assert.equal(listed.objects, 3000);

  // The registry knows it.
  const reg = await srv.req('GET', '/v1/registry/shards/Docs/cold');
  assert.equal(reg.status, 200, reg.text);
  assert.equal(reg.json.source, 'offloaded');
  assert.equal(reg.json.tenant, 'cold');
  assert.equal(reg.json.remoteBytes, off.result.bytes, 'its size in the location, before any hydration');
  const summary = (await srv.req('GET', '/v1/registry')).json;
  for (const k of ['shards', 'cacheBytes', 'cacheQuotaBytes', 'hydrationsRunning', 'hydrationsQueued']) assert.ok(k in summary, k);

  // An empty tenant offloads too.
  assert.equal(await setStatus(srv, 'Docs', 'empty', 'OFFLOADED'), 'OFFLOADED');

  // Onload: equal to what it held at offload.
  assert.equal(await setStatus(srv, 'Docs', 'cold', 'ACTIVE'), 'ACTIVE');
  sameObjects(await listTenant(srv, 'Docs', 'cold'), cold);
  const on = await lastJob(srv, 'onload');
  assert.equal(on.state, 'SUCCEEDED', JSON.stringify(on));
  assert.equal(await setStatus(srv, 'Docs', 'empty', 'INACTIVE'), 'INACTIVE');
  assert.equal(await setStatus(srv, 'Docs', 'empty', 'ACTIVE'), 'ACTIVE');
  assert.equal((await listTenant(srv, 'Docs', 'empty')).size, 0);

  } finally {
    writing = false;
    await writer;
  }
  assert.equal(writerError, null);
  assert.ok(written > 0);
  sameObjects(await listTenant(srv, 'Docs', 'hot'), hot);
  return { cold };
}

test('offload -> onload round trip on file://, writers on another tenant; re-offload of unchanged data uploads 0 bytes', async () => {
  const srv = await startServer();
  const loc = path.join(srv.dataDir, 'location');
  const files = () => {
    const out = [];
    const walk = (d, rel) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = path.join(rel, e.name); e.isDirectory() ? walk(path.join(d, e.name), p) : out.push(p); } };
    walk(loc, '');
    return out;
  };
  try {
    const { cold } = await roundTrip(srv, files);
    // Offload, onload without touching it, offload again: nothing changed, nothing uploaded.
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'OFFLOADED'), 'OFFLOADED');
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'INACTIVE'), 'INACTIVE');
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'OFFLOADED'), 'OFFLOADED');
    const again = await lastJob(srv, 'offload');
    assert.equal(again.result.bytesUploaded, 0, JSON.stringify(again.result));
    // The local copy is gone, the location copy stays after onload.
    const dirs = readdirSync(path.join(srv.dataDir, 'shards')).flatMap((u) => readdirSync(path.join(srv.dataDir, 'shards', u)));
    assert.ok(!dirs.includes('cold'), dirs.join(','));
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'ACTIVE'), 'ACTIVE');
    assert.ok(files().includes('tenants/Docs/cold/manifest.json'));
    sameObjects(await listTenant(srv, 'Docs', 'cold'), cold);
    // GC keeps the offloaded manifests' blobs.
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'OFFLOADED'), 'OFFLOADED');
    const gc = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.equal(await setStatus(srv, 'Docs', 'cold', 'ACTIVE'), 'ACTIVE');
    sameObjects(await listTenant(srv, 'Docs', 'cold'), cold);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('offload -> onload round trip on s3rver', async () => {
  const s3 = await startS3();
  await s3.createBucket('tenants');
  const srv = await startServer({ env: { ...s3.env, SHARDVAULT_LOCATION: 's3://tenants/node-a' } });
  try {
    await roundTrip(srv, null);
    const xml = await (await fetch(`${s3.endpoint}/tenants?list-type=2&prefix=node-a/tenants/`)).text();
    assert.match(xml, /node-a\/tenants\/Docs\/cold\/manifest.json/);
  } finally {
    await srv.stop();
    srv.cleanup();
    await s3.stop();
  }
});

test('autoTenantActivation: 100 concurrent reads of a cold offloaded tenant -> one download, all answered', async () => {
  const s3 = await startS3();
  await s3.createBucket('auto');
  const proxy = await startFaultProxy({ target: s3.endpoint });
  const srv = await startServer({ env: { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint, SHARDVAULT_LOCATION: 's3://auto/x' } });
  try {
    await mtCollection(srv, 'Auto', { autoTenantActivation: true });
    assert.equal((await srv.req('GET', '/v1/collections/Auto')).json.autoTenantActivation, true);
    await addTenants(srv, 'Auto', ['t1']);
    const objs = await loadTenant(srv, 'Auto', 't1', 500, 3);
    assert.equal(await setStatus(srv, 'Auto', 't1', 'OFFLOADED'), 'OFFLOADED');
    const manifest = await (await fetch(`${s3.endpoint}/auto/x/tenants/Auto/t1/manifest.json`)).json();
    const nblobs = new Set(manifest.shards[0].files.map((f) => f.blob)).size;
    proxy.stats.log.length = 0;
    const ids = [...objs.keys()];
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      srv.req('GET', `/v1/collections/Auto/objects/${ids[i % ids.length]}?tenant=t1`)));
    for (const a of answers) assert.equal(a.status, 200, a.text);
    const gets = proxy.stats.log.filter((l) => l.startsWith('GET '));
    const manifestGets = gets.filter((l) => l.includes('/tenants/Auto/t1/manifest.json'));
    const blobGets = gets.filter((l) => l.includes('/blobs/'));
    // One hydration: the manifest read for its size and for the layout, each blob once.
    assert.ok(manifestGets.length <= 2, manifestGets.join('\n'));
    assert.equal(new Set(blobGets.map((l) => l.split('?')[0])).size, blobGets.length, blobGets.join('\n'));
    assert.equal(blobGets.length, nblobs, blobGets.join('\n'));
    const onloads = (await srv.req('GET', '/v1/jobs?kind=onload')).json.jobs;
    assert.equal(onloads.length, 1);
    assert.equal(await tenantStatus(srv, 'Auto', 't1'), 'ACTIVE');
    sameObjects(await listTenant(srv, 'Auto', 't1'), objs);
  } finally {
    await srv.stop();
    srv.cleanup();
    await proxy.stop();
    await s3.stop();
  }
});

test('snapshots and exports include offloaded tenants', async () => {
  const srv = await startServer();
  try {
    await mtCollection(srv, 'Mixed');
    await addTenants(srv, 'Mixed', ['a', 'b']);
    const a = await loadTenant(srv, 'Mixed', 'a', 800, 1);
    const b = await loadTenant(srv, 'Mixed', 'b', 300, 2);
    assert.equal(await setStatus(srv, 'Mixed', 'a', 'OFFLOADED'), 'OFFLOADED');
    const snap = await srv.req('POST', '/v1/collections/Mixed/snapshots?wait=true', { name: 's1' });
    assert.equal(snap.json.status, 'COMMITTED', snap.text);
    assert.equal(await tenantStatus(srv, 'Mixed', 'a'), 'OFFLOADED'); // a capture does not onload
    const job = await srv.req('POST', '/v1/collections/Mixed/snapshots/s1/restore', { target: 'MixedCopy' });
    assert.equal(job.status, 202, job.text);
    await until('restore', async () => {
      const r = await srv.req('GET', `/v1/restore-jobs/${job.json.jobId}`);
      assert.notEqual(r.json.state, 'FAILED', r.text);
      return r.json.state === 'COMPLETED';
    });
    sameObjects(await listTenant(srv, 'MixedCopy', 'a'), a);
    sameObjects(await listTenant(srv, 'MixedCopy', 'b'), b);

    const ex = await srv.req('POST', '/v1/export/filesystem', { id: 'withoff', include: ['Mixed'] });
    assert.equal(ex.status, 200, ex.text);
    const done = await until('export', async () => {
      const r = await srv.req('GET', '/v1/export/filesystem/withoff');
      return ['SUCCESS', 'FAILED'].includes(r.json.status) && r.json;
    });
    assert.equal(done.status, 'SUCCESS', JSON.stringify(done));
    const st = JSON.stringify(done);
    assert.ok(!st.includes('SKIPPED'), st);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('bad tenant status requests are refused with what to fix', async () => {
  const srv = await startServer();
  try {
    await mtCollection(srv, 'Bad');
    await addTenants(srv, 'Bad', ['x']);
    let r = await srv.req('POST', '/v1/collections/Bad/tenants', { tenants: [{ name: 'y', status: 'OFFLOADED' }] });
    assert.equal(r.status, 422, r.text);
    r = await srv.req('PUT', '/v1/collections/Bad/tenants', { tenants: [{ name: 'x', status: 'FROZEN' }] });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /OFFLOADED/);
    r = await srv.req('PUT', '/v1/collections/Bad/tenants?wait=maybe', { tenants: [{ name: 'x', status: 'OFFLOADED' }] });
    assert.equal(r.status, 422, r.text);
    r = await srv.req('POST', '/v1/collections', { name: 'NoMt', autoTenantActivation: true });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /multiTenancy/);
    r = await srv.req('GET', '/v1/registry/shards?state=BOGUS');
    assert.equal(r.status, 422, r.text);
    r = await srv.req('GET', '/v1/registry/shards/Bad/nope');
    assert.equal(r.status, 404, r.text);
    r = await srv.req('POST', '/v1/registry/shards/Bad/nope/pin');
    assert.equal(r.status, 404, r.text);
    r = await srv.req('POST', '/v1/registry/gc');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ['bytesFreed', 'shardsEvicted']);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('cache quota: 200 offloaded tenants through a cache that holds 20, never over quota; a pinned one is never evicted', async () => {
  let srv = await startServer();
  const dataDir = srv.dataDir;
  const names = Array.from({ length: 200 }, (_, i) => `t${String(i).padStart(3, '0')}`);
  let maxBytes = 0;
  try {
    await mtCollection(srv, 'Churn');
    await addTenants(srv, 'Churn', names);
    const lines = names.flatMap((t, i) => Array.from({ length: 20 }, (_, k) =>
      JSON.stringify({ collection: 'Churn', tenant: t, vector: Array(DIM).fill(i + k), properties: { n: k, s: t } })));
    const b = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
    assert.equal(b.json.failed, 0, b.text.slice(0, 300));
    for (let i = 0; i < names.length; i += 25) {
      const r = await srv.req('PUT', '/v1/collections/Churn/tenants?wait=true',
        { tenants: names.slice(i, i + 25).map((name) => ({ name, status: 'OFFLOADED' })) });
      assert.equal(r.status, 200, r.text);
      for (const t of r.json.tenants) assert.equal(t.status, 'OFFLOADED');
    }
    for (const t of names) {
      const m = JSON.parse(readFileSync(path.join(dataDir, 'location', 'tenants', 'Churn', t, 'manifest.json'), 'utf8'));
      maxBytes = Math.max(maxBytes, m.shards[0].files.reduce((a, f) => a + f.size, 0));
    }
  } finally {
    await srv.stop();
  }
  const quota = 20 * maxBytes;
  srv = await startServer({ dataDir, env: { SHARDVAULT_CACHE_BYTES: String(quota) } });
  try {
    assert.equal((await srv.req('GET', '/v1/registry')).json.cacheQuotaBytes, quota);
    const pin = await srv.req('POST', '/v1/registry/shards/Churn/t000/pin');
    assert.equal(pin.status, 200, pin.text);
    assert.equal(pin.json.pinned, true);
    let sampling = true;
    let samples = 0;
    let over = null;
    const sampler = (async () => {
      while (sampling) {
        const s = (await srv.req('GET', '/v1/registry')).json;
        if (s.cacheBytes + s.cacheReservedBytes > quota) over = JSON.stringify(s);
        samples++;
        await sleep(100);
      }
    })();
    // Every tenant goes through the cache: a snapshot hydrates each one.
    const snap = await srv.req('POST', '/v1/collections/Churn/snapshots?wait=true', { name: 'all' });
    sampling = false;
    await sampler;
    assert.equal(snap.json.status, 'COMMITTED', snap.text);
    assert.equal(over, null, over);
    assert.ok(samples >= 1);
    const shards = (await srv.req('GET', '/v1/registry/shards?collection=Churn')).json.shards;
    const pinned = shards.find((s) => s.shard === 't000');
    assert.equal(pinned.state, 'AVAILABLE', JSON.stringify(pinned));
    assert.equal(pinned.pinned, true);
    const cached = shards.filter((s) => s.state === 'AVAILABLE').length;
    assert.ok(cached >= 2 && cached <= 20, `${cached} shards cached`);
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(m, /shardvault_registry_evictions_total [1-9]/);
    assert.match(m, /shardvault_registry_hydrated_bytes_total [1-9]/);
    assert.ok(Number(m.match(/shardvault_registry_hydration_seconds_total ([0-9.]+)/)[1]) > 0);
    assert.match(m, /shardvault_registry_acquire_misses_total [1-9]/);
    assert.match(m, /shardvault_registry_cache_quota_bytes \d+/);
    // GC empties the cache but for the pinned one.
    const gc = (await srv.req('POST', '/v1/registry/gc')).json;
    assert.equal(gc.shardsEvicted, cached - 1);
    assert.equal((await srv.req('GET', '/v1/registry/shards/Churn/t000')).json.state, 'AVAILABLE');
    const unpin = await srv.req('POST', '/v1/registry/shards/Churn/t000/unpin');
    assert.equal(unpin.json.pinned, false);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('deleting an offloaded tenant or its collection drops its record and its location copy; a lost copy is reported, not hidden', async () => {
  const srv = await startServer();
  const loc = path.join(srv.dataDir, 'location');
  const manifest = (c, t) => path.join(loc, 'tenants', c, t, 'manifest.json');
  try {
    await mtCollection(srv, 'Gone');
    await addTenants(srv, 'Gone', ['x', 'y', 'z']);
    for (const t of ['x', 'y', 'z']) await loadTenant(srv, 'Gone', t, 200, t.charCodeAt(0));
    for (const t of ['x', 'y', 'z']) assert.equal(await setStatus(srv, 'Gone', t, 'OFFLOADED'), 'OFFLOADED');
    assert.ok(existsSync(manifest('Gone', 'x')));
    let r = await srv.req('DELETE', '/v1/collections/Gone/tenants', { tenants: ['x'] });
    assert.equal(r.status, 204, r.text);
    assert.ok(!existsSync(manifest('Gone', 'x')));
    assert.equal((await srv.req('GET', '/v1/registry/shards/Gone/x')).status, 404);

    // A lost location copy: export skips the tenant with the reason; a snapshot fails with it.
    const m = JSON.parse(readFileSync(manifest('Gone', 'y'), 'utf8'));
    for (const f of m.shards[0].files) rmSync(path.join(loc, 'blobs', f.blob.slice(0, 2), f.blob), { force: true });
    r = await srv.req('POST', '/v1/export/filesystem', { id: 'lost', include: ['Gone'] });
    assert.equal(r.status, 200, r.text);
    const ex = await until('export', async () => {
      const s = (await srv.req('GET', '/v1/export/filesystem/lost')).json;
      return ['SUCCESS', 'FAILED'].includes(s.status) && s;
    });
    assert.equal(ex.status, 'SUCCESS', JSON.stringify(ex));
    const shards = JSON.stringify(ex);
    assert.match(shards, /SKIPPED/);
    assert.match(shards, /y could not be read/);
    const snap = await srv.req('POST', '/v1/collections/Gone/snapshots?wait=true', { name: 'lost' });
    assert.equal(snap.json.status, 'FAILED', snap.text);
    assert.match(snap.text, /y could not be read/);

    r = await srv.req('DELETE', '/v1/collections/Gone');
    assert.equal(r.status, 204, r.text);
    assert.ok(!existsSync(manifest('Gone', 'y')) && !existsSync(manifest('Gone', 'z')));
    const left = (await srv.req('GET', '/v1/registry/shards')).json.shards.filter((s) => s.collection === 'Gone');
    assert.deepEqual(left, []);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('canceling an offload job: the tenant goes back to its status, nothing lost', async () => {
  const srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '300' } });
  try {
    await mtCollection(srv, 'Cancel');
    await addTenants(srv, 'Cancel', ['c']);
    const objs = await loadTenant(srv, 'Cancel', 'c', 300, 5);
    assert.equal(await setStatus(srv, 'Cancel', 'c', 'INACTIVE'), 'INACTIVE');
    const r = await srv.req('PUT', '/v1/collections/Cancel/tenants', { tenants: [{ name: 'c', status: 'OFFLOADED' }] });
    assert.equal(r.json.tenants[0].status, 'OFFLOADING');
    const job = (await srv.req('GET', '/v1/jobs?kind=offload&limit=1')).json.jobs[0];
    const c = await srv.req('POST', `/v1/jobs/${job.id}/cancel`);
    assert.equal(c.status, 202, c.text);
    const done = await until('job finished', async () => {
      const j = (await srv.req('GET', `/v1/jobs/${job.id}`)).json;
      return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state) && j;
    });
    assert.equal(done.state, 'CANCELED', JSON.stringify(done));
    assert.equal(await tenantStatus(srv, 'Cancel', 'c'), 'INACTIVE');
    assert.equal(await setStatus(srv, 'Cancel', 'c', 'ACTIVE'), 'ACTIVE');
    sameObjects(await listTenant(srv, 'Cancel', 'c'), objs);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('deleting a tenant that was offloaded once and is active again drops its location copy too', async () => {
  let srv = await startServer();
  const manifest = path.join(srv.dataDir, 'location', 'tenants', 'Back', 'x', 'manifest.json');
  try {
    await mtCollection(srv, 'Back');
    await addTenants(srv, 'Back', ['x', 'y']);
    await loadTenant(srv, 'Back', 'x', 50, 1);
    await loadTenant(srv, 'Back', 'y', 50, 2);
    for (const t of ['x', 'y']) {
      assert.equal(await setStatus(srv, 'Back', t, 'OFFLOADED'), 'OFFLOADED');
      assert.equal(await setStatus(srv, 'Back', t, 'ACTIVE'), 'ACTIVE');
    }
    assert.ok(existsSync(manifest)); // kept after the onload: the next offload is free
    await srv.stop(); // the store remembers the copy across a restart
    srv = await startServer({ dataDir: srv.dataDir });
    const r = await srv.req('DELETE', '/v1/collections/Back/tenants', { tenants: ['x'] });
    assert.equal(r.status, 204, r.text);
    assert.ok(!existsSync(manifest));
    assert.equal((await srv.req('DELETE', '/v1/collections/Back')).status, 204);
    assert.ok(!existsSync(path.join(srv.dataDir, 'location', 'tenants', 'Back', 'y', 'manifest.json')));
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('bare-list bodies; a tenant listed twice; no delete while a tenant moves; ?wait=true answers a failed move as an error', async () => {
  const srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '300', SHARDVAULT_CACHE_BYTES: '200000' } });
  try {
    await mtCollection(srv, 'Bare');
    let r = await srv.req('POST', '/v1/collections/Bare/tenants', [{ name: 'a' }, { name: 'big' }]);
    assert.equal(r.status, 200, r.text);
    await loadTenant(srv, 'Bare', 'a', 50, 3);
    const big = await loadTenant(srv, 'Bare', 'big', 4000, 4);
    // the shape: a bare list
    r = await srv.req('PUT', '/v1/collections/Bare/tenants', [{ name: 'a', status: 'OFFLOADED' }]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.tenants[0].status, 'OFFLOADING');
    // deleting it meanwhile is refused, nothing deleted
    r = await srv.req('DELETE', '/v1/collections/Bare/tenants', ['a', 'big']);
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /tenant 'a' is OFFLOADING; delete it once that is done/);
    assert.equal((await srv.req('GET', '/v1/collections/Bare/tenants')).json.tenants.length, 2);
    await until('a OFFLOADED', async () => (await tenantStatus(srv, 'Bare', 'a')) === 'OFFLOADED');
    assert.equal((await lastJob(srv, 'offload')).state, 'SUCCEEDED');
    r = await srv.req('DELETE', '/v1/collections/Bare/tenants', ['a']);
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await srv.req('GET', '/v1/collections/Bare/tenants')).json.tenants.map((t) => t.name), ['big']);
    // one tenant twice in a request: refused before anything changes
    r = await srv.req('PUT', '/v1/collections/Bare/tenants', [{ name: 'big', status: 'OFFLOADED' }, { name: 'big', status: 'ACTIVE' }]);
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /listed twice/);
    assert.equal(await tenantStatus(srv, 'Bare', 'big'), 'ACTIVE');
    // a tenant larger than the whole cache quota offloads, but cannot come back: ?wait=true says so (507)
    assert.equal(await setStatus(srv, 'Bare', 'big', 'OFFLOADED'), 'OFFLOADED');
    r = await srv.req('PUT', '/v1/collections/Bare/tenants?wait=true', [{ name: 'big', status: 'ACTIVE' }]);
    assert.equal(r.status, 507, r.text);
    assert.match(r.text, /did not become ACTIVE, it is OFFLOADED: the onload failed: .*SHARDVAULT_CACHE_BYTES/);
    assert.equal(await tenantStatus(srv, 'Bare', 'big'), 'OFFLOADED');
    // nothing lost: with room it comes back whole
    await srv.stop();
    const s2 = await startServer({ dataDir: srv.dataDir, env: { SHARDVAULT_CACHE_BYTES: '100000000' } });
    try {
      assert.equal(await setStatus(s2, 'Bare', 'big', 'ACTIVE'), 'ACTIVE');
      sameObjects(await listTenant(s2, 'Bare', 'big'), big);
      // the jobs count bytes: the onload's of the tenant, the offload's of its files
      const on = await lastJob(s2, 'onload');
      assert.equal(on.state, 'SUCCEEDED', JSON.stringify(on));
      assert.equal(on.itemsTotal, 1, JSON.stringify(on));
      assert.ok(on.bytesTotal > 100000 && on.bytesDone === on.bytesTotal && on.progress === 100, JSON.stringify(on));
      const off = (await s2.req('GET', '/v1/jobs?kind=offload')).json.jobs.find((j) => j.target === 'big');
      assert.ok(off.bytesTotal > 100000 && off.bytesDone === off.bytesTotal && off.itemsDone === off.itemsTotal, JSON.stringify(off));
    } finally {
      await s2.stop();
    }
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
