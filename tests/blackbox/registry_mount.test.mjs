// Read-only snapshot mounts: objects as they were at the snapshot while the
// live collection changes (fixed shards and tenants), object-level restore of
// deleted objects (back exactly, times included), mount lifecycle (409 before
// mount, drop refused while mounted, survives a restart, unmount).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { createCollection, load, listAll } from './lib/snapshot.mjs';
import { mtCollection, addTenants, loadTenant, sameObjects, until } from './lib/registry.mjs';

async function listMounted(srv, coll, snap, q = '') {
  const out = new Map();
  let after = null;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/${coll}/snapshots/${snap}/objects?limit=333${q}${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    let prev = '';
    for (const o of r.json.objects) {
      assert.ok(o.id > prev, 'ordered by id');
      prev = o.id;
      out.set(o.id, o);
    }
    if (!r.json.next) return out;
    after = r.json.next;
  }
}

test('a mounted snapshot serves objects as they were; 3 deleted objects restored exactly', async () => {
  const dataDir = (await import('./lib/server.mjs')).tempDir();
  let srv = await startServer({ dataDir });
  try {
    await createCollection(srv, 'Live', 3);
    await load(srv, 'Live', 2000, 5);
    const before = await listAll(srv, 'Live');
    const s = await srv.req('POST', '/v1/collections/Live/snapshots?wait=true', { name: 'then' });
    assert.equal(s.json.status, 'COMMITTED', s.text);

    let r = await srv.req('GET', '/v1/collections/Live/snapshots/then/objects');
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /mount/);
    r = await srv.req('POST', '/v1/collections/Live/snapshots/then/mount');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.shards, 3);
    assert.equal(r.json.objects, 2000);
    // Lazy: nothing hydrated yet.
    let shards = (await srv.req('GET', '/v1/registry/shards?collection=Live')).json.shards.filter((x) => x.source === 'snapshot');
    assert.equal(shards.length, 3);
    for (const x of shards) assert.equal(x.state, 'NEW');
    // their size in the location is known before any hydration (the manifest's)
    const snapShards = Object.fromEntries(s.json.shards.map((x) => [x.name, x.bytes]));
    for (const x of shards) assert.equal(x.remoteBytes, snapShards[x.shard.split('@')[1]], JSON.stringify(x));

    // The live collection changes: deletes and overwrites.
    const ids = [...before.keys()];
    const victims = ids.slice(10, 13);
    for (const id of victims) assert.equal((await srv.req('DELETE', `/v1/collections/Live/objects/${id}`)).status, 204);
    const changed = ids[100];
    const upd = await srv.req('PUT', `/v1/collections/Live/objects/${changed}`, { vector: Array(16).fill(0.5), properties: { w: 7, seq: -1, tag: 'new' } });
    assert.equal(upd.status, 200, upd.text);

    // The mount still answers as at the snapshot, in the live API's shapes.
    const mounted = await listMounted(srv, 'Live', 'then');
    assert.equal(mounted.size, before.size);
    for (const [id, o] of before) assert.deepEqual(mounted.get(id), o);
    const one = await srv.req('GET', `/v1/collections/Live/snapshots/then/objects/${changed}`);
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.json, before.get(changed));
    assert.equal((await srv.req('GET', `/v1/collections/Live/snapshots/then/objects/00000000-0000-4000-8000-000000000000`)).status, 404);
    assert.equal((await srv.req('GET', '/v1/collections/Live/snapshots/then/objects/not-a-uuid')).status, 422);

    // Object-level restore.
    const missingId = '00000000-0000-4000-8000-0000000000aa';
    r = await srv.req('POST', '/v1/collections/Live/snapshots/then/objects/restore', { ids: [...victims, changed, missingId], onConflict: 'skip' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { restored: 3, skipped: 1, missing: [missingId] });
    for (const id of victims) {
      const g = await srv.req('GET', `/v1/collections/Live/objects/${id}`);
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.json, before.get(id)); // exactly, creation and update times included
    }
    assert.equal((await srv.req('GET', `/v1/collections/Live/objects/${changed}`)).json.properties.tag, 'new');
    r = await srv.req('POST', '/v1/collections/Live/snapshots/then/objects/restore', { ids: [changed], onConflict: 'replace' });
    assert.deepEqual(r.json, { restored: 1, skipped: 0, missing: [] });
    assert.deepEqual((await srv.req('GET', `/v1/collections/Live/objects/${changed}`)).json.properties, before.get(changed).properties);
    for (const bad of [{ ids: [] }, { ids: ['x'] }, { ids: [changed], onConflict: 'merge' }, { ids: [changed], extra: 1 }]) {
      r = await srv.req('POST', '/v1/collections/Live/snapshots/then/objects/restore', bad);
      assert.equal(r.status, 422, `${JSON.stringify(bad)}: ${r.text}`);
    }

    // Hydrated now; drop refused while mounted; survives a restart.
    // Reads keep their shards open (SERVING) for a moment; idle, they are AVAILABLE (evictable) again.
    await until('mounted shards idle', async () => {
      shards = (await srv.req('GET', '/v1/registry/shards?collection=Live')).json.shards.filter((x) => x.source === 'snapshot');
      return shards.every((x) => x.state === 'AVAILABLE' && x.refs === 0);
    }, 5000);
    r = await srv.req('DELETE', '/v1/collections/Live/snapshots/then');
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /unmount/);
    await srv.stop();
    srv = await startServer({ dataDir });
    r = await srv.req('DELETE', '/v1/collections/Live/snapshots/then');
    assert.equal(r.status, 409, r.text);
    assert.equal((await listMounted(srv, 'Live', 'then')).size, 2000);
    r = await srv.req('DELETE', '/v1/collections/Live/snapshots/then/mount');
    assert.equal(r.status, 204, r.text);
    r = await srv.req('DELETE', '/v1/collections/Live/snapshots/then/mount');
    assert.equal(r.status, 404, r.text);
    assert.equal((await srv.req('GET', '/v1/collections/Live/snapshots/then/objects')).status, 409);
    assert.equal((await srv.req('DELETE', '/v1/collections/Live/snapshots/then')).status, 204);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('mounts of a multi-tenant snapshot read per tenant', async () => {
  const srv = await startServer();
  try {
    await mtCollection(srv, 'MtSnap');
    await addTenants(srv, 'MtSnap', ['a', 'b']);
    const a = await loadTenant(srv, 'MtSnap', 'a', 400, 1);
    await loadTenant(srv, 'MtSnap', 'b', 50, 2);
    assert.equal((await srv.req('POST', '/v1/collections/MtSnap/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    assert.equal((await srv.req('POST', '/v1/collections/MtSnap/snapshots/s/mount')).status, 200);
    assert.equal((await srv.req('GET', '/v1/collections/MtSnap/snapshots/s/objects')).status, 422); // needs ?tenant=
    assert.equal((await srv.req('GET', '/v1/collections/MtSnap/snapshots/s/objects?tenant=zzz')).status, 404);
    const got = await listMounted(srv, 'MtSnap', 's', '&tenant=a');
    sameObjects(got, a);
    for (const o of got.values()) assert.equal(o.tenant, 'a');
    const id = [...a.keys()][0];
    assert.equal((await srv.req('DELETE', `/v1/collections/MtSnap/objects/${id}?tenant=a`)).status, 204);
    const r = await srv.req('POST', '/v1/collections/MtSnap/snapshots/s/objects/restore', { ids: [id], tenant: 'a' });
    assert.deepEqual(r.json, { restored: 1, skipped: 0, missing: [] });
    assert.equal((await srv.req('GET', `/v1/collections/MtSnap/objects/${id}?tenant=a`)).status, 200);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a shard that cannot fit the cache quota: 507 naming the quota; the live collection is unaffected', async () => {
  const srv = await startServer({ env: { SHARDVAULT_CACHE_BYTES: '4096' } });
  try {
    await createCollection(srv, 'Tiny', 1);
    const objs = await load(srv, 'Tiny', 300, 3);
    assert.equal((await srv.req('POST', '/v1/collections/Tiny/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    assert.equal((await srv.req('POST', '/v1/collections/Tiny/snapshots/s/mount')).status, 200);
    const r = await srv.req('GET', `/v1/collections/Tiny/snapshots/s/objects/${[...objs.keys()][0]}`);
    assert.equal(r.status, 507, r.text);
    assert.match(r.text, /quota|SHARDVAULT_CACHE_BYTES|cache_quota_bytes/);
    assert.equal((await srv.req('GET', `/v1/collections/Tiny/objects/${[...objs.keys()][0]}`)).status, 200);
    const s = (await srv.req('GET', '/v1/registry')).json;
    assert.ok(s.cacheBytes + s.cacheReservedBytes <= 4096, JSON.stringify(s));
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a read waiting for a mount shard to hydrate: unmount is 409, the read past SHARDVAULT_ACQUIRE_TIMEOUT is 503 with Retry-After', async () => {
  const { startS3, startFaultProxy } = await import('./lib/s3.mjs');
  const s3 = await startS3();
  await s3.createBucket('mnt');
  const proxy = await startFaultProxy({ target: s3.endpoint, delayMs: 400, onlyMethods: ['GET'] });
  const srv = await startServer({ env: { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint, SHARDVAULT_LOCATION: 's3://mnt/x', SHARDVAULT_ACQUIRE_TIMEOUT: '1' } });
  try {
    await mtCollection(srv, 'Slow');
    await addTenants(srv, 'Slow', ['a']);
    const a = await loadTenant(srv, 'Slow', 'a', 300, 3);
    assert.equal((await srv.req('POST', '/v1/collections/Slow/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    assert.equal((await srv.req('POST', '/v1/collections/Slow/snapshots/s/mount')).status, 200);
    // the first read reads the manifest, then waits for the hydration (every GET of the bucket takes 400 ms) and gives up after 1 s
    const first = srv.req('GET', '/v1/collections/Slow/snapshots/s/objects?tenant=a&limit=5');
    await until('the read waits for the hydration', async () => (await srv.req('GET', '/v1/registry')).json.hydrationsRunning + (await srv.req('GET', '/v1/registry')).json.hydrationsQueued > 0, 5000);
    const u = await srv.req('DELETE', '/v1/collections/Slow/snapshots/s/mount');
    assert.equal(u.status, 409, u.text);
    assert.match(u.text, /being read/);
    const r = await first;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers.get('retry-after'), '5');
    assert.match(r.text, /retry shortly/);
    // the hydration went on: the read is answered once it is done, then the unmount goes through
    const got = await until('mount hydrated', async () => {
      const x = await srv.req('GET', '/v1/collections/Slow/snapshots/s/objects?tenant=a&limit=1000');
      return x.status === 200 && x.json;
    }, 60000);
    assert.equal(got.objects.length, a.size);
    const d = await until('unmounted', async () => {
      const x = await srv.req('DELETE', '/v1/collections/Slow/snapshots/s/mount');
      return x.status === 204 && x;
    }, 10000);
    assert.equal(d.status, 204);
  } finally {
    await srv.stop();
    srv.cleanup();
    await proxy.stop();
    await s3.stop();
  }
});

test('clear answers: an unknown snapshot, a repeated or non-string id, writes to a snapshot, pin of a local shard', async () => {
  const srv = await startServer();
  try {
    await mtCollection(srv, 'Clear');
    await addTenants(srv, 'Clear', ['a']);
    const a = await loadTenant(srv, 'Clear', 'a', 20, 9);
    let r = await srv.req('GET', '/v1/collections/Clear/snapshots/nosuch/objects?tenant=a');
    assert.equal(r.status, 404, r.text);
    assert.match(r.text, /not found/);
    assert.equal((await srv.req('POST', '/v1/collections/Clear/snapshots?wait=true', { name: 's' })).json.status, 'COMMITTED');
    assert.equal((await srv.req('POST', '/v1/collections/Clear/snapshots/s/mount')).status, 200);
    const id = [...a.keys()][0];
    r = await srv.req('POST', '/v1/collections/Clear/snapshots/s/objects/restore', { ids: [id, id], tenant: 'a' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /ids\[1\] repeats ids\[0\]/);
    r = await srv.req('POST', '/v1/collections/Clear/snapshots/s/objects/restore', { ids: [1, 2], tenant: 'a' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /ids\[0\] must be a UUID string/);
    r = await srv.req('PUT', `/v1/collections/Clear/snapshots/s/objects/${id}?tenant=a`, { properties: {} });
    assert.equal(r.status, 405, r.text);
    assert.match(r.text, /a snapshot is read-only/);
    r = await srv.req('POST', '/v1/registry/shards/Clear/a/pin');
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /is local to this node/);
    r = await srv.req('PUT', '/v1/collections/Clear/tenants', [{ name: 'x'.repeat(80), status: 'INACTIVE' }]);
    assert.equal(r.status, 422, r.text);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
