// 32 concurrent clients writing and reading: no errors, no lost acknowledged write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rng, uuidFrom, vec } from './lib/server.mjs';

const SECONDS = Number(process.env.SV_CONCURRENCY_SECONDS || 20);

test(`32 clients for ${SECONDS} s: no errors, no lost write`, async () => {
  const srv = await startServer();
  assert.equal((await srv.req('POST', '/v1/collections', {
    name: 'Busy', shards: 4, vectors: { default: { dim: 8 } }, properties: [{ name: 'v', type: 'int' }],
  })).status, 200);
  const latest = new Map(); // id -> last acknowledged version
  const deadline = Date.now() + SECONDS * 1000;
  let ops = 0;
  const errors = [];
  const clients = Array.from({ length: 32 }, async (_, c) => {
    const rand = rng(1000 + c);
    const mine = [];
    for (let n = 0; Date.now() < deadline; n++) {
      const kind = rand();
      if (kind < 0.35 || mine.length === 0) {
        const id = uuidFrom(rand);
        const r = await srv.req('PUT', `/v1/collections/Busy/objects/${id}`, { vector: vec(rand, 8), properties: { v: n } });
        if (r.status !== 200) errors.push(`put ${r.status} ${r.text}`); else { mine.push(id); latest.set(id, n); }
      } else if (kind < 0.55) {
        const id = mine[Math.floor(rand() * mine.length)];
        const r = await srv.req('PUT', `/v1/collections/Busy/objects/${id}`, { vector: vec(rand, 8), properties: { v: n } });
        if (r.status !== 200) errors.push(`update ${r.status}`); else latest.set(id, n);
      } else if (kind < 0.65) {
        const objs = Array.from({ length: 20 }, (_, i) => ({ collection: 'Busy', id: uuidFrom(rand), vector: vec(rand, 8), properties: { v: n * 100 + i } }));
        const r = await srv.req('POST', '/v1/batch/objects', { objects: objs });
        if (r.status !== 200 || r.json.failed) errors.push(`batch ${r.status} ${r.text.slice(0, 200)}`);
        else objs.forEach((o) => { mine.push(o.id); latest.set(o.id, o.properties.v); });
      } else if (kind < 0.95) {
        const id = mine[Math.floor(rand() * mine.length)];
        const r = await srv.req('GET', `/v1/collections/Busy/objects/${id}`);
        if (r.status !== 200) errors.push(`get ${r.status}`);
        else if (r.json.properties.v !== latest.get(id)) errors.push(`get ${id} saw v=${r.json.properties.v}, expected ${latest.get(id)}`);
      } else {
        const r = await srv.req('GET', '/v1/collections/Busy/objects?limit=20');
        if (r.status !== 200) errors.push(`list ${r.status}`);
      }
      ops++;
    }
  });
  await Promise.all(clients);
  assert.deepEqual(errors.slice(0, 10), [], `${errors.length} errors`);
  assert.ok(ops > 1000, `made progress (${ops} operations)`);
  // Every acknowledged write is there with its last acknowledged value.
  const seen = new Map();
  let after = null;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/Busy/objects?limit=10000${after ? `&after=${after}` : ''}`);
    for (const o of r.json.objects) seen.set(o.id, o.properties.v);
    if (!r.json.next) break;
    after = r.json.next;
  }
  assert.equal(seen.size, latest.size);
  for (const [id, v] of latest) assert.equal(seen.get(id), v, `object ${id}`);
  const shards = await srv.req('GET', '/v1/collections/Busy/shards');
  assert.equal(shards.json.shards.reduce((a, s) => a + s.objects, 0), latest.size, 'exact object count');
  await srv.stop();
  srv.cleanup();
});
