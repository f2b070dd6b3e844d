// Black-box tests of the storage node's HTTP API: the real binary, real HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rng, uuidFrom, vec, f32deep } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv) { await srv.stop(); srv.cleanup(); } });

const article = {
  name: 'Article',
  shards: 3,
  vectors: { default: { dim: 4 }, named: { title: { dim: 2 } }, multi: { colbert: { dim: 3 } } },
  properties: [
    { name: 'title', type: 'text' },
    { name: 'tags', type: 'text[]' },
    { name: 'views', type: 'int' },
    { name: 'score', type: 'number' },
    { name: 'published', type: 'boolean' },
    { name: 'when', type: 'date' },
    { name: 'ref', type: 'uuid' },
    { name: 'counts', type: 'int[]' },
    { name: 'meta', type: 'object' },
  ],
};

function errMsg(r) {
  assert.ok(r.json && Array.isArray(r.json.error) && typeof r.json.error[0].message === 'string',
    `expected {"error":[{"message"}]}, got ${r.text}`);
  return r.json.error[0].message;
}

test('health, meta and metrics', async () => {
  assert.equal((await srv.req('GET', '/v1/.well-known/live')).status, 200);
  assert.equal((await srv.req('GET', '/v1/.well-known/ready')).status, 200);
  const meta = await srv.req('GET', '/v1/meta');
  assert.equal(meta.status, 200);
  assert.match(meta.json.version, /^\d+\.\d+\.\d+$/);
  assert.ok(Number.isInteger(meta.json.uptimeSeconds) && meta.json.uptimeSeconds >= 0);
  const m = await srv.req('GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /shardvault_http_requests_total\{route="\/v1\/meta",method="GET",code="200"\} 1/);
  assert.match(m.text, /shardvault_shards_open \d+/);
  assert.match(m.text, /shardvault_objects_written_total \d+/);
});

test('collections: create, get, list, errors', async () => {
  const r = await srv.req('POST', '/v1/collections', article);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.name, 'Article');
  assert.equal(r.json.shards, 3);
  const g = await srv.req('GET', '/v1/collections/Article');
  assert.equal(g.status, 200);
  assert.deepEqual(g.json.vectors.named, { title: { dim: 2 } });
  assert.equal(g.json.properties.length, article.properties.length);
  const l = await srv.req('GET', '/v1/collections');
  assert.ok(l.json.collections.some((c) => c.name === 'Article'));

  const dup = await srv.req('POST', '/v1/collections', article);
  assert.equal(dup.status, 409);
  assert.match(errMsg(dup), /already exists/);

  const malformed = await srv.req('POST', '/v1/collections', '{"name": "X",');
  assert.equal(malformed.status, 400, malformed.text);
  errMsg(malformed);

  const badName = await srv.req('POST', '/v1/collections', { name: '../etc' });
  assert.equal(badName.status, 422);
  assert.match(errMsg(badName), /collection name/);

  const badType = await srv.req('POST', '/v1/collections', { name: 'Bad', properties: [{ name: 'x', type: 'blob' }] });
  assert.equal(badType.status, 422);
  assert.match(errMsg(badType), /type/);

  const missing = await srv.req('GET', '/v1/collections/Nope');
  assert.equal(missing.status, 404);
  assert.match(errMsg(missing), /Nope/);

  const method = await srv.req('PATCH', '/v1/collections/Article');
  assert.equal(method.status, 405);
  assert.match(errMsg(method), /PATCH/);

  const unknown = await srv.req('GET', '/v1/nothing-here');
  assert.equal(unknown.status, 404);
});

test('body over the limit gives 413', async () => {
  const big = 'x'.repeat(70 * 1024 * 1024);
  const r = await srv.req('POST', '/v1/collections', `{"name":"Big","pad":"${big}"}`);
  assert.equal(r.status, 413);
  assert.match(errMsg(r), /limit/);
});

test('objects: put, get, replace, delete, validation', async () => {
  const rand = rng(1);
  const id = uuidFrom(rand);
  const obj = {
    id,
    vector: vec(rand, 4),
    namedVectors: { title: vec(rand, 2) },
    multiVectors: { colbert: [vec(rand, 3), vec(rand, 3)] },
    properties: {
      title: 'Grüße, 世界 🚀', tags: ['a', 'b'], views: 42, score: 0.5, published: true,
      when: '2024-03-01T12:00:00.250Z', ref: uuidFrom(rand), counts: [1, -2, 3],
      meta: { nested: { deep: [1, 2] } }, extra: 'undeclared kept',
    },
  };
  const put = await srv.req('PUT', `/v1/collections/Article/objects/${id}`, obj);
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.id, id);
  assert.equal(put.json.collection, 'Article');
  assert.ok(put.json.creationTime > 1.7e12 && put.json.updateTime >= put.json.creationTime);

  const got = await srv.req('GET', `/v1/collections/Article/objects/${id}`);
  assert.equal(got.status, 200);
  assert.deepEqual(f32deep(got.json.vector), obj.vector);
  assert.deepEqual(f32deep(got.json.namedVectors), obj.namedVectors);
  assert.deepEqual(f32deep(got.json.multiVectors), obj.multiVectors);
  assert.deepEqual(got.json.properties, obj.properties);

  await new Promise((r) => setTimeout(r, 5));
  const replaced = await srv.req('PUT', `/v1/collections/Article/objects/${id}`, { ...obj, properties: { title: 'new' } });
  assert.equal(replaced.status, 200);
  assert.equal(replaced.json.creationTime, put.json.creationTime, 'replace keeps creationTime');
  assert.ok(replaced.json.updateTime > put.json.updateTime, 'replace moves updateTime');
  assert.deepEqual(replaced.json.properties, { title: 'new' });

  const created = await srv.req('POST', '/v1/collections/Article/objects', { vector: vec(rand, 4) });
  assert.equal(created.status, 200, created.text);
  assert.match(created.json.id, /^[0-9a-f-]{36}$/, 'id generated when absent');

  const cases = [
    [{ id: 'not-a-uuid' }, /uuid/i],
    [{ vector: [1, 2, 3] }, /vector|dim/i],
    [{ namedVectors: { title: [1] } }, /title/],
    [{ namedVectors: { nope: [1, 2] } }, /nope/],
    [{ properties: { views: 'many' } }, /views/],
    [{ properties: { views: 1.5 } }, /views/],
    [{ properties: { tags: ['a', 3] } }, /tags/],
    [{ properties: { when: 'yesterday' } }, /when/],
    [{ properties: { ref: 'xyz' } }, /ref/],
    [{ properties: { published: 'yes' } }, /published/],
    [{ vector: [1, 2, 3, 'x'] }, /vector/],
  ];
  for (const [body, re] of cases) {
    const r = await srv.req('POST', '/v1/collections/Article/objects', body);
    assert.equal(r.status, 422, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.match(errMsg(r), re);
  }
  const malformed = await srv.req('POST', '/v1/collections/Article/objects', '{"vector": [1,');
  assert.ok(malformed.status === 400 || malformed.status === 422, malformed.text);
  const mismatch = await srv.req('PUT', `/v1/collections/Article/objects/${uuidFrom(rand)}`, { id });
  assert.equal(mismatch.status, 422);
  const badId = await srv.req('GET', '/v1/collections/Article/objects/zzz');
  assert.equal(badId.status, 422);
  assert.match(errMsg(badId), /UUID/);
  const noColl = await srv.req('POST', '/v1/collections/Nope/objects', {});
  assert.equal(noColl.status, 404);

  const del = await srv.req('DELETE', `/v1/collections/Article/objects/${id}`);
  assert.equal(del.status, 204);
  assert.equal((await srv.req('GET', `/v1/collections/Article/objects/${id}`)).status, 404);
  assert.equal((await srv.req('DELETE', `/v1/collections/Article/objects/${id}`)).status, 404);
});

test('list with cursor walks every object once, ordered by id, across shards', async () => {
  const c = await srv.req('POST', '/v1/collections', { name: 'Listed', shards: 4, vectors: { default: { dim: 2 } } });
  assert.equal(c.status, 200, c.text);
  const rand = rng(7);
  const ids = [];
  const lines = [];
  for (let i = 0; i < 523; i++) {
    const id = uuidFrom(rand);
    ids.push(id);
    lines.push(JSON.stringify({ collection: 'Listed', id, vector: vec(rand, 2), properties: { i } }));
  }
  const b = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
  assert.equal(b.status, 200, b.text);
  assert.equal(b.json.ok, 523);
  assert.equal(b.json.failed, 0);
  const seen = [];
  let after = null;
  for (let page = 0; page < 100; page++) {
    const r = await srv.req('GET', `/v1/collections/Listed/objects?limit=50${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.objects.map((o) => o.id));
    if (!r.json.next) break;
    after = r.json.next;
  }
  assert.deepEqual(seen, [...ids].sort());
  const shards = await srv.req('GET', '/v1/collections/Listed/shards');
  assert.equal(shards.json.shards.length, 4);
  assert.equal(shards.json.shards.reduce((a, s) => a + s.objects, 0), 523);
  for (const s of shards.json.shards) {
    assert.equal(s.status, 'ACTIVE');
    assert.ok(s.objects > 60, `hash placement spreads objects: ${s.name} has ${s.objects}`);
    assert.ok(s.bytes >= 0);
  }
  const badLimit = await srv.req('GET', '/v1/collections/Listed/objects?limit=0');
  assert.equal(badLimit.status, 422);
});

test('batch: JSON shape and NDJSON, one bad object does not fail the rest', async () => {
  const rand = rng(3);
  const good = { collection: 'Article', id: uuidFrom(rand), vector: vec(rand, 4), properties: { title: 't' } };
  const body = {
    objects: [
      good,
      { collection: 'Article', id: 'bad-id' },
      { collection: 'Missing', vector: [1] },
      { collection: 'Article', vector: [1, 2] },
      { vector: [1, 2, 3, 4] },
      { collection: 'Article', properties: { title: 'braces { } and "quotes" \\ ok' } },
    ],
  };
  const r = await srv.req('POST', '/v1/batch/objects', body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.ok, 2);
  assert.equal(r.json.failed, 4);
  assert.equal(r.json.results.length, 6);
  assert.equal(r.json.results[0].status, 'ok');
  assert.equal(r.json.results[0].id, good.id);
  for (const i of [1, 2, 3, 4]) {
    assert.equal(r.json.results[i].status, 'error');
    assert.ok(r.json.results[i].error.length > 5);
  }
  assert.match(r.json.results[2].error, /Missing/);
  assert.match(r.json.results[4].error, /collection/);
  const last = await srv.req('GET', `/v1/collections/Article/objects/${r.json.results[5].id}`);
  assert.equal(last.json.properties.title, 'braces { } and "quotes" \\ ok');

  const garbage = await srv.req('POST', '/v1/batch/objects', '[1,2,3]');
  assert.ok(garbage.status === 400 || garbage.status === 422, garbage.text);
  errMsg(garbage);
});

test('batch: a body malformed midway says how many objects before it were written', async () => {
  assert.equal((await srv.req('POST', '/v1/collections', { name: 'Broken', vectors: { default: { dim: 1 } } })).status, 200);
  const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ collection: 'Broken', vector: [i] }));
  lines.push('{not json');
  const r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
  assert.equal(r.status, 400);
  const m = errMsg(r).match(/the first (\d+) objects of the body were written/);
  assert.ok(m, errMsg(r));
  const shards = await srv.req('GET', '/v1/collections/Broken/shards');
  assert.equal(shards.json.shards[0].objects, Number(m[1]));
});

test('batch: the same id twice in one request is one object, the later wins', async () => {
  const c = await srv.req('POST', '/v1/collections', { name: 'Dup', vectors: { default: { dim: 1 } }, properties: [{ name: 'v', type: 'int' }] });
  assert.equal(c.status, 200, c.text);
  const id = '11111111-2222-4333-8444-555555555555';
  const objs = [];
  for (let i = 0; i < 50; i++) objs.push({ collection: 'Dup', id: i % 2 ? id : undefined, vector: [i], properties: { v: i } });
  const r = await srv.req('POST', '/v1/batch/objects', { objects: objs });
  assert.equal(r.json.ok, 50);
  const got = await srv.req('GET', `/v1/collections/Dup/objects/${id}`);
  assert.equal(got.json.properties.v, 49);
  const shards = await srv.req('GET', '/v1/collections/Dup/shards');
  assert.equal(shards.json.shards[0].objects, 26, '25 generated ids + 1 repeated id');
  const again = await srv.req('POST', '/v1/batch/objects', { objects: [{ collection: 'Dup', id, vector: [7], properties: { v: 7 } }] });
  assert.equal(again.json.ok, 1);
  const after = await srv.req('GET', '/v1/collections/Dup/shards');
  assert.equal(after.json.shards[0].objects, 26, 'a replace does not change the count');
  const replaced = await srv.req('GET', `/v1/collections/Dup/objects/${id}`);
  assert.equal(replaced.json.creationTime, got.json.creationTime, 'replace in a batch keeps creationTime');
  assert.equal(replaced.json.properties.v, 7);
});

test('batch: objects for more collections than the batch caches (12) all land', async () => {
  const names = Array.from({ length: 12 }, (_, i) => `Many${i}`);
  for (const name of names) {
    assert.equal((await srv.req('POST', '/v1/collections', { name, vectors: { default: { dim: 1 } } })).status, 200);
  }
  const objects = [];
  for (let round = 0; round < 3; round++) names.forEach((collection, i) => objects.push({ collection, vector: [round * 100 + i] }));
  const r = await srv.req('POST', '/v1/batch/objects', { objects });
  assert.equal(r.json.ok, 36, r.text);
  for (const name of names) {
    const l = await srv.req('GET', `/v1/collections/${name}/objects`);
    assert.equal(l.json.objects.length, 3, name);
  }
  for (const name of names) assert.equal((await srv.req('DELETE', `/v1/collections/${name}`)).status, 204);
});

test('tenants: add, list, inactive gives 422, reactivate, delete', async () => {
  const c = await srv.req('POST', '/v1/collections', {
    name: 'Tenanted', multiTenancy: true, vectors: { default: { dim: 2 } },
    properties: [{ name: 'n', type: 'int' }],
  });
  assert.equal(c.status, 200, c.text);
  const add = await srv.req('POST', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1' }, { name: 't2' }] });
  assert.equal(add.status, 200, add.text);
  assert.equal((await srv.req('POST', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1' }] })).status, 409);
  assert.equal((await srv.req('POST', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 'a/b' }] })).status, 422);

  const rand = rng(11);
  const id = uuidFrom(rand);
  const put = await srv.req('PUT', `/v1/collections/Tenanted/objects/${id}?tenant=t1`, { vector: [1, 2], properties: { n: 1 } });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.tenant, 't1');
  const noTenant = await srv.req('GET', `/v1/collections/Tenanted/objects/${id}`);
  assert.equal(noTenant.status, 422);
  assert.match(errMsg(noTenant), /tenant/);
  assert.equal((await srv.req('GET', `/v1/collections/Tenanted/objects/${id}?tenant=t2`)).status, 404);
  assert.equal((await srv.req('GET', `/v1/collections/Tenanted/objects/${id}?tenant=t9`)).status, 404);
  const batch = await srv.req('POST', '/v1/batch/objects', {
    objects: [{ collection: 'Tenanted', tenant: 't2', vector: [3, 4] }, { collection: 'Tenanted', vector: [3, 4] }],
  });
  assert.equal(batch.json.ok, 1);
  assert.match(batch.json.results[1].error, /tenant/);

  let list = await srv.req('GET', '/v1/collections/Tenanted/tenants');
  assert.deepEqual(list.json.tenants.map((t) => [t.name, t.status, t.objects]), [['t1', 'ACTIVE', 1], ['t2', 'ACTIVE', 1]]);

  const off = await srv.req('PUT', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1', status: 'INACTIVE' }] });
  assert.equal(off.status, 200, off.text);
  const inactive = await srv.req('GET', `/v1/collections/Tenanted/objects/${id}?tenant=t1`);
  assert.equal(inactive.status, 422);
  assert.match(errMsg(inactive), /INACTIVE/);
  const write = await srv.req('PUT', `/v1/collections/Tenanted/objects/${id}?tenant=t1`, { vector: [1, 2] });
  assert.equal(write.status, 422);
  list = await srv.req('GET', '/v1/collections/Tenanted/tenants');
  assert.equal(list.json.tenants[0].status, 'INACTIVE');

  const on = await srv.req('PUT', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1', status: 'ACTIVE' }] });
  assert.equal(on.status, 200);
  const back = await srv.req('GET', `/v1/collections/Tenanted/objects/${id}?tenant=t1`);
  assert.equal(back.status, 200);
  assert.deepEqual(back.json.properties, { n: 1 });
  assert.equal((await srv.req('PUT', '/v1/collections/Tenanted/tenants', { tenants: [{ name: 't1', status: 'SLEEPY' }] })).status, 422);

  const del = await srv.req('DELETE', '/v1/collections/Tenanted/tenants', { tenants: ['t2'] });
  assert.equal(del.status, 204);
  list = await srv.req('GET', '/v1/collections/Tenanted/tenants');
  assert.deepEqual(list.json.tenants.map((t) => t.name), ['t1']);
  assert.equal((await srv.req('GET', '/v1/collections/Article/tenants')).status, 422, 'not multi-tenant');
});

test('delete collection removes it and its data', async () => {
  const c = await srv.req('POST', '/v1/collections', { name: 'Doomed', vectors: { default: { dim: 1 } } });
  assert.equal(c.status, 200);
  assert.equal((await srv.req('POST', '/v1/collections/Doomed/objects', { vector: [1] })).status, 200);
  assert.equal((await srv.req('DELETE', '/v1/collections/Doomed')).status, 204);
  assert.equal((await srv.req('GET', '/v1/collections/Doomed')).status, 404);
  assert.equal((await srv.req('DELETE', '/v1/collections/Doomed')).status, 404);
  const again = await srv.req('POST', '/v1/collections', { name: 'Doomed', vectors: { default: { dim: 1 } } });
  assert.equal(again.status, 200);
  const l = await srv.req('GET', '/v1/collections/Doomed/objects');
  assert.deepEqual(l.json.objects, [], 'a re-created collection starts empty');
});

test('everything survives a restart (SIGTERM exits 0)', async () => {
  const before = await srv.req('GET', '/v1/collections/Listed/objects?limit=10000');
  const tenants = await srv.req('GET', '/v1/collections/Tenanted/tenants');
  const st = await srv.stop();
  assert.equal(st.code, 0, `exit status ${JSON.stringify(st)}; stderr:\n${srv.stderr}`);
  srv = await startServer({ dataDir: srv.dataDir });
  const afterList = await srv.req('GET', '/v1/collections/Listed/objects?limit=10000');
  assert.deepEqual(afterList.json, before.json);
  const afterTenants = await srv.req('GET', '/v1/collections/Tenanted/tenants');
  assert.deepEqual(afterTenants.json, tenants.json);
});
