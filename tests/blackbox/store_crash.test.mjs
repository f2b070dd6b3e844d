// kill -9 during a running batch import: every object whose batch was
// acknowledged is present and intact after restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rng, uuidFrom, vec, f32deep } from './lib/server.mjs';

test('acknowledged batches survive kill -9', async () => {
  let srv = await startServer();
  const c = await srv.req('POST', '/v1/collections', {
    name: 'Crash', shards: 2, vectors: { default: { dim: 16 } }, properties: [{ name: 'seq', type: 'int' }],
  });
  assert.equal(c.status, 200, c.text);
  const rand = rng(99);
  const acked = new Map();
  let stop = false;
  let inFlight = 0;
  const writers = [0, 1, 2, 3].map(async (w) => {
    for (let b = 0; !stop; b++) {
      const objs = [];
      for (let i = 0; i < 200; i++) {
        objs.push({ collection: 'Crash', id: uuidFrom(rand), vector: vec(rand, 16), properties: { seq: w * 1e6 + b * 1000 + i } });
      }
      inFlight++;
      try {
        const r = await srv.req('POST', '/v1/batch/objects', objs.map((o) => JSON.stringify(o)).join('\n'),
          { 'content-type': 'application/x-ndjson' });
        if (r.status === 200) {
          r.json.results.forEach((res, i) => { if (res.status === 'ok') acked.set(objs[i].id, objs[i]); });
        }
      } catch { /* the connection died with the server: not acknowledged */ }
      inFlight--;
    }
  });
  await new Promise((r) => setTimeout(r, 1500));
  await srv.kill9();
  stop = true;
  await Promise.all(writers);
  assert.ok(acked.size >= 1000, `enough acknowledged objects before the kill (${acked.size})`);

  srv = await startServer({ dataDir: srv.dataDir });
  let missing = 0;
  let checked = 0;
  for (const [id, obj] of acked) {
    const r = await srv.req('GET', `/v1/collections/Crash/objects/${id}`);
    checked++;
    if (r.status !== 200) { missing++; continue; }
    assert.deepEqual(f32deep(r.json.vector), obj.vector);
    assert.deepEqual(r.json.properties, obj.properties);
    if (checked > 3000) break; // a large sample is enough; the count check below covers all
  }
  assert.equal(missing, 0, `${missing} acknowledged objects lost`);
  const shards = await srv.req('GET', '/v1/collections/Crash/shards');
  const total = shards.json.shards.reduce((a, s) => a + s.objects, 0);
  assert.ok(total >= acked.size, `object count ${total} covers the ${acked.size} acknowledged`);
  // Every stored object is intact, acknowledged or not: list them all.
  let after = null;
  let listed = 0;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/Crash/objects?limit=5000${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200);
    for (const o of r.json.objects) {
      assert.equal(o.vector.length, 16);
      const a = acked.get(o.id);
      if (a) assert.deepEqual(o.properties, a.properties);
    }
    listed += r.json.objects.length;
    if (!r.json.next) break;
    after = r.json.next;
  }
  assert.equal(listed, total, 'the count matches the objects');
  await srv.stop();
  srv.cleanup();
});
