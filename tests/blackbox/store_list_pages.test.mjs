// Object listing pages are bounded by bytes as well as by count: large
// objects with a small byte budget (SHARDVAULT_LIST_PAGE_BYTES) come back over
// several pages, and iterating with `after` sees every object exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startServer, tempDir, rng, uuidFrom, vec } from './lib/server.mjs';

const BUDGET = 256 * 1024;
const OBJECT_TEXT = 100 * 1024;

let srv;
before(async () => { srv = await startServer({ env: { SHARDVAULT_LIST_PAGE_BYTES: String(BUDGET) } }); });
after(async () => { if (srv) { await srv.stop(); srv.cleanup(); } });

async function listAll(collection, limit, query = '') {
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 1000; i++) {
    const r = await srv.req('GET',
      `/v1/collections/${collection}/objects?limit=${limit}${query}${cursor ? `&after=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    pages.push({ bytes: Buffer.byteLength(r.text), ids: r.json.objects.map((o) => o.id), next: r.json.next });
    if (!r.json.next) return pages;
    assert.equal(r.json.next, r.json.objects.at(-1).id, 'next is the id of the last object of the page');
    cursor = r.json.next;
  }
  throw new Error('listing did not end');
}

test('large objects: pages stop at the byte budget, every object exactly once', async () => {
  const c = await srv.req('POST', '/v1/collections', {
    name: 'Big', shards: 3, vectors: { default: { dim: 2 } }, properties: [{ name: 'body', type: 'text' }],
  });
  assert.equal(c.status, 200, c.text);
  const rand = rng(7);
  const ids = [];
  const lines = [];
  for (let i = 0; i < 30; i++) {
    const id = uuidFrom(rand);
    ids.push(id);
    const body = String.fromCharCode(97 + (i % 26)).repeat(OBJECT_TEXT);
    lines.push(JSON.stringify({ collection: 'Big', id, vector: vec(rand, 2), properties: { body } }));
  }
  const b = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
  assert.equal(b.status, 200, b.text);
  assert.equal(b.json.ok, 30);

  const pages = await listAll('Big', 10000);
  assert.ok(pages.length >= 10, `30 objects of 100 KiB with a 256 KiB budget take many pages, got ${pages.length}`);
  for (const p of pages) {
    assert.ok(p.ids.length >= 1, 'every page makes progress');
    // The budget may be passed by the one object that crosses it, no more.
    assert.ok(p.bytes <= BUDGET + OBJECT_TEXT + 4096, `page of ${p.bytes} bytes exceeds the budget`);
  }
  const seen = pages.flatMap((p) => p.ids);
  assert.equal(new Set(seen).size, seen.length, 'no object twice');
  assert.deepEqual(seen, [...ids].sort());

  // The count limit still applies under the budget.
  const small = await listAll('Big', 1);
  assert.equal(small.length, 30);
  assert.deepEqual(small.flatMap((p) => p.ids), [...ids].sort());
});

test('an object larger than the budget still comes back, one per page', async () => {
  const c = await srv.req('POST', '/v1/collections', {
    name: 'Huge', multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'body', type: 'text' }],
  });
  assert.equal(c.status, 200, c.text);
  assert.equal((await srv.req('POST', '/v1/collections/Huge/tenants', { tenants: [{ name: 't1' }] })).status, 200);
  const rand = rng(9);
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const id = uuidFrom(rand);
    ids.push(id);
    const r = await srv.req('POST', '/v1/collections/Huge/objects?tenant=t1',
      { id, vector: vec(rand, 2), properties: { body: 'x'.repeat(BUDGET + 1000) } });
    assert.equal(r.status, 200, r.text);
  }
  const pages = await listAll('Huge', 100, '&tenant=t1');
  assert.deepEqual(pages.map((p) => p.ids.length), [1, 1, 1, 1]);
  assert.deepEqual(pages.flatMap((p) => p.ids), [...ids].sort());
});

test('a malformed SHARDVAULT_LIST_PAGE_BYTES stops the start with a message', async () => {
  const dataDir = tempDir();
  let started;
  try {
    await assert.rejects(
      startServer({ dataDir, env: { SHARDVAULT_LIST_PAGE_BYTES: 'lots' } }).then((s) => { started = s; }),
      /SHARDVAULT_LIST_PAGE_BYTES=lots is not a number/);
  } finally {
    if (started) await started.kill9();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
