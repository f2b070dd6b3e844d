// Placement and forwarding on 3 real nodes sharing a real etcd: shards and
// tenants spread over the healthy nodes (fewest first), each node holds only
// its own shards on disk, and every read, write, batch and listing through any
// node answers what one node (the embedded catalog) answers for the same
// requests. A killed owner gives 503 naming it; forwarded requests need the
// cluster secret; with --auth apikey a client's key is checked by the node it
// reached and never sent on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'test-cluster-secret-0123456789abcdef';

async function startCluster(names, { env = {}, args = [] } = {}) {
  const etcd = await startEtcd();
  const common = ['--catalog', `etcd://${etcd.endpoint}/fw/`, '--node-ttl', '2s', ...args];
  const nodes = {};
  for (const n of names) {
    nodes[n] = await startServer({ env: { SHARDVAULT_CLUSTER_SECRET: SECRET, ...env }, args: [...common, '--node-name', n] });
  }
  return { etcd, nodes };
}

async function untilHealthy(srv, n, headers = {}) {
  const deadline = Date.now() + 60000;
  for (;;) {
    const r = await srv.req('GET', '/v1/nodes', undefined, headers);
    if (r.status === 200 && r.json.nodes.filter((x) => x.status === 'HEALTHY').length === n) return r.json.nodes;
    if (Date.now() > deadline) throw new Error(`not ${n} healthy nodes: ${r.text}`);
    await sleep(100);
  }
}

// An object without its server-assigned times (they differ between runs).
const strip = (o) => {
  const { creationTime, updateTime, creation_time, update_time, ...rest } = o;
  return rest;
};

async function pages(srv, pathBase, limit) {
  const out = [];
  let after = null;
  for (let i = 0; i < 1000; i++) {
    const q = `${pathBase}${pathBase.includes('?') ? '&' : '?'}limit=${limit}${after ? `&after=${after}` : ''}`;
    const r = await srv.req('GET', q);
    assert.equal(r.status, 200, r.text);
    out.push({ ids: r.json.objects.map((o) => o.id), objects: r.json.objects.map(strip), next: r.json.next });
    if (!r.json.next) return out;
    after = r.json.next;
  }
  throw new Error('listing does not end');
}

test('3 nodes: placement spread, any node answers as one node does, a killed owner gives 503 naming it', async () => {
  const { etcd, nodes } = await startCluster(['a', 'b', 'c']);
  const { a, b, c } = nodes;
  const ref = await startServer({ args: ['--node-name', 'ref'] });
  try {
    await untilHealthy(a, 3);
    const doc = { name: 'Doc', shards: 6, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] };
    const mt = { name: 'MT', multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] };
    for (const [srv, body] of [[a, doc], [ref, doc], [b, mt], [ref, mt]]) {
      const r = await srv.req('POST', '/v1/collections', body);
      assert.equal(r.status, 200, r.text);
    }
    const tenants = { tenants: ['t0', 't1', 't2', 't3', 't4', 't5'].map((name) => ({ name })) };
    for (const srv of [c, ref]) {
      const r = await srv.req('POST', '/v1/collections/MT/tenants', tenants);
      assert.equal(r.status, 200, r.text);
    }

    // Placement: 6 shards over 3 healthy nodes, then 6 tenants: 2 + 2 each.
    let r = await b.req('GET', '/v1/collections/Doc/shards');
    assert.equal(r.status, 200, r.text);
    const shardNode = Object.fromEntries(r.json.shards.map((s) => [s.name, s.node]));
    const count = (arr) => arr.reduce((m, x) => ({ ...m, [x]: (m[x] || 0) + 1 }), {});
    assert.deepEqual(count(Object.values(shardNode)), { a: 2, b: 2, c: 2 });
    for (const srv of [a, c]) { // one placement, seen alike from every node
      const s = await srv.req('GET', '/v1/collections/Doc/shards');
      assert.deepEqual(Object.fromEntries(s.json.shards.map((x) => [x.name, x.node])), shardNode);
    }
    r = await a.req('GET', '/v1/collections/MT/tenants');
    assert.equal(r.status, 200, r.text);
    const tenantNode = Object.fromEntries(r.json.tenants.map((t) => [t.name, t.node]));
    assert.deepEqual(count(Object.values(tenantNode)), { a: 2, b: 2, c: 2 });

    // A batch through a (with two bad objects) answers as the single node does.
    const ids = Array.from({ length: 60 }, () => randomUUID());
    const objs = ids.map((id, i) => ({ collection: 'Doc', id, vector: [i, i + 1], properties: { title: `t${i}` } }));
    objs.splice(10, 0, { collection: 'Doc', id: randomUUID(), vector: [1, 2, 3] }); // wrong dimension
    objs.splice(20, 0, { collection: 'Nope', id: randomUUID(), vector: [1, 2] }); // no such collection
    const mtIds = Array.from({ length: 30 }, () => randomUUID());
    const mtObjs = mtIds.map((id, i) => ({ collection: 'MT', tenant: `t${i % 6}`, id, vector: [i, 0], properties: { title: `m${i}` } }));
    const batch = { objects: [...objs, ...mtObjs] };
    const got = await a.req('POST', '/v1/batch/objects', batch);
    const want = await ref.req('POST', '/v1/batch/objects', batch);
    assert.equal(got.status, 200, got.text);
    assert.equal(want.status, 200, want.text);
    assert.equal(got.json.ok, 90);
    assert.equal(got.json.failed, 2);
    assert.deepEqual(got.json, want.json);

    // Shard and tenant listings through any node carry the owners' counts.
    const counts = async (srv, p, field) => Object.fromEntries((await srv.req('GET', p)).json[field].map((x) => [x.name, [x.status, x.objects]]));
    const wantShards = await counts(ref, '/v1/collections/Doc/shards', 'shards');
    const wantTenants = await counts(ref, '/v1/collections/MT/tenants', 'tenants');
    for (const srv of [a, b, c]) {
      assert.deepEqual(await counts(srv, '/v1/collections/Doc/shards', 'shards'), wantShards);
      assert.deepEqual(await counts(srv, '/v1/collections/MT/tenants', 'tenants'), wantTenants);
    }

    // Each node holds only its own shards on disk.
    for (const [name, srv] of Object.entries(nodes)) {
      const root = path.join(srv.dataDir, 'shards');
      const held = readdirSync(root).flatMap((uid) => readdirSync(path.join(root, uid)));
      const mine = [...Object.entries(shardNode), ...Object.entries(tenantNode)].filter(([, n]) => n === name).map(([s]) => s);
      assert.deepEqual(held.sort(), mine.sort(), `node ${name} holds ${held}`);
    }

    // Single objects: create without id through c, replace through b, read through every node.
    const created = await c.req('POST', '/v1/collections/Doc/objects', { vector: [9, 9], properties: { title: 'new' } });
    assert.equal(created.status, 200, created.text);
    const newId = created.json.id;
    const refCreated = await ref.req('PUT', `/v1/collections/Doc/objects/${newId}`, { vector: [9, 9], properties: { title: 'new' } });
    assert.equal(refCreated.status, 200, refCreated.text);
    assert.deepEqual(strip(created.json), strip(refCreated.json));
    for (const srv of [a, b]) {
      const p = await srv.req('PUT', `/v1/collections/Doc/objects/${ids[3]}`, { vector: [3, 3], properties: { title: 'replaced' } });
      assert.equal(p.status, 200, p.text);
    }
    await ref.req('PUT', `/v1/collections/Doc/objects/${ids[3]}`, { vector: [3, 3], properties: { title: 'replaced' } });
    for (const id of [ids[0], ids[3], ids[59], newId]) {
      const w = await ref.req('GET', `/v1/collections/Doc/objects/${id}`);
      for (const srv of [a, b, c]) {
        const g = await srv.req('GET', `/v1/collections/Doc/objects/${id}`);
        assert.equal(g.status, 200, g.text);
        assert.deepEqual(strip(g.json), strip(w.json));
      }
    }
    const t3 = await b.req('GET', `/v1/collections/MT/objects/${mtIds[3]}?tenant=t3`);
    assert.equal(t3.status, 200, t3.text);
    assert.equal(t3.json.properties.title, 'm3');

    // Tenant changes through a node that does not own the tenant go to its owner.
    const foreign = Object.entries(tenantNode).find(([, n]) => n !== 'a')[0];
    let tr = await a.req('PUT', '/v1/collections/MT/tenants', { tenants: [{ name: foreign, status: 'INACTIVE' }] });
    assert.equal(tr.status, 200, tr.text);
    assert.deepEqual(tr.json.tenants.map((t) => [t.name, t.status]), [[foreign, 'INACTIVE']]);
    for (const srv of [a, b, c]) { // the owner applied it; every view shows it (the counts come from the owner)
      const deadline = Date.now() + 30000;
      for (;;) {
        const l = (await srv.req('GET', '/v1/collections/MT/tenants')).json.tenants.find((t) => t.name === foreign);
        if (l.status === 'INACTIVE') break;
        assert.ok(Date.now() < deadline, `${foreign} still ${l.status}`);
        await sleep(50);
      }
    }
    tr = await b.req('GET', `/v1/collections/MT/objects?tenant=${foreign}`);
    assert.equal(tr.status, 422, tr.text); // INACTIVE, said by its owner
    tr = await c.req('PUT', '/v1/collections/MT/tenants', { tenants: [{ name: foreign, status: 'ACTIVE' }] });
    assert.equal(tr.status, 200, tr.text);
    assert.equal((await b.req('GET', `/v1/collections/MT/objects?tenant=${foreign}`)).status, 200);
    const mixed = Object.entries(tenantNode).find(([, n]) => n !== tenantNode[foreign])[0];
    tr = await a.req('PUT', '/v1/collections/MT/tenants', { tenants: [{ name: foreign, status: 'INACTIVE' }, { name: mixed, status: 'INACTIVE' }] });
    assert.equal(tr.status, 422, tr.text);
    assert.match(tr.json.error[0].message, /different nodes/);
    // A tenant added through c and deleted through another node: gone everywhere, files too.
    tr = await c.req('POST', '/v1/collections/MT/tenants', { tenants: [{ name: 'tx' }] });
    assert.equal(tr.status, 200, tr.text);
    const txNode = (await a.req('GET', '/v1/collections/MT/tenants')).json.tenants.find((t) => t.name === 'tx').node;
    const txOwner = nodes[txNode], txOther = txNode === 'a' ? b : a;
    assert.equal((await txOther.req('PUT', `/v1/collections/MT/objects/${randomUUID()}?tenant=tx`, { vector: [1, 1] })).status, 200);
    const mtUid = readdirSync(path.join(txOwner.dataDir, 'shards')).find((u) => existsSync(path.join(txOwner.dataDir, 'shards', u, 'tx')));
    assert.ok(mtUid, 'tx is on its owner');
    tr = await txOther.req('DELETE', '/v1/collections/MT/tenants', { tenants: ['tx'] });
    assert.equal(tr.status, 204, tr.text);
    assert.ok(!existsSync(path.join(txOwner.dataDir, 'shards', mtUid, 'tx')));
    for (const srv of [a, b, c]) {
      const deadline = Date.now() + 30000;
      while ((await srv.req('GET', '/v1/collections/MT/tenants')).json.tenants.some((t) => t.name === 'tx')) {
        assert.ok(Date.now() < deadline, 'tx still listed');
        await sleep(50);
      }
    }

    // Deletes through any node.
    for (const [srv, id] of [[c, ids[5]], [a, ids[6]]]) {
      assert.equal((await srv.req('DELETE', `/v1/collections/Doc/objects/${id}`)).status, 204);
      assert.equal((await ref.req('DELETE', `/v1/collections/Doc/objects/${id}`)).status, 204);
      for (const s2 of [a, b, c]) assert.equal((await s2.req('GET', `/v1/collections/Doc/objects/${id}`)).status, 404);
    }

    // Listings merge across nodes: the same pages and cursors as one node.
    for (const limit of [7, 100]) {
      const w = await pages(ref, '/v1/collections/Doc/objects', limit);
      for (const srv of [a, b, c]) assert.deepEqual(await pages(srv, '/v1/collections/Doc/objects', limit), w);
    }
    for (const t of ['t0', 't4']) {
      const w = await pages(ref, `/v1/collections/MT/objects?tenant=${t}`, 2);
      for (const srv of [a, b, c]) assert.deepEqual(await pages(srv, `/v1/collections/MT/objects?tenant=${t}`, 2), w);
    }

    // An export across nodes to a filesystem root each node has on its own
    // disk is refused before anything is written (cluster_export.test.mjs
    // exports across nodes to S3); a snapshot of a collection spread over
    // nodes, whose owners have no location in common, is refused, never
    // partial (cluster_snapshot.test.mjs snapshots across nodes to S3).
    const ex = await a.req('POST', '/v1/export/filesystem', { id: 'spread', include: ['Doc'] });
    assert.equal(ex.status, 422, ex.text);
    assert.match(ex.json.error[0].message, /does not see the coordinator's export location.*EXPORT_FILESYSTEM_PATH/);
    assert.equal((await a.req('GET', '/v1/export/filesystem/spread')).status, 404);
    const sn = await b.req('POST', '/v1/collections/Doc/snapshots', { name: 's1' });
    assert.equal(sn.status, 422, sn.text);
    assert.match(sn.json.error[0].message, /spread over several nodes.*its own data directory.*SHARDVAULT_LOCATION/);
    assert.deepEqual((await c.req('GET', '/v1/collections/Doc/snapshots')).json.snapshots, []);
    // A collection whose shards all live on one node snapshots from any node (forwarded to it).
    r = await a.req('POST', '/v1/collections', { name: 'One', shards: 1, vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    const oneNode = (await a.req('GET', '/v1/collections/One/shards')).json.shards[0].node;
    const other = oneNode === 'a' ? b : a;
    assert.equal((await other.req('PUT', `/v1/collections/One/objects/${ids[0]}`, { vector: [1, 1] })).status, 200);
    const osn = await other.req('POST', '/v1/collections/One/snapshots?wait=true', { name: 'one1' });
    assert.equal(osn.status, 200, osn.text);
    assert.equal(osn.json.status, 'COMMITTED', osn.text);
    const listed = await other.req('GET', '/v1/collections/One/snapshots');
    assert.deepEqual(listed.json.snapshots.map((x) => [x.name, x.status]), [['one1', 'COMMITTED']]);

    // A forwarded request needs the cluster secret, and only on object routes.
    r = await b.req('GET', `/v1/collections/Doc/objects/${ids[0]}`, undefined,
      { 'X-Shardvault-Forwarded-By': 'a', 'X-Shardvault-Cluster-Secret': 'wrong-secret-wrong-secret' });
    assert.equal(r.status, 401, r.text);
    assert.doesNotMatch(r.text, /wrong-secret|test-cluster-secret/);
    r = await b.req('GET', '/v1/collections', undefined, { 'X-Shardvault-Forwarded-By': 'a', 'X-Shardvault-Cluster-Secret': SECRET });
    assert.equal(r.status, 403, r.text);

    // The owner of some shards is killed: its objects give 503 naming it,
    // through every other node, listings too; the rest keep answering.
    await c.kill9();
    let seen503 = 0, seen200 = 0;
    for (const id of ids.slice(20, 40)) {
      const g = await a.req('GET', `/v1/collections/Doc/objects/${id}`);
      if (g.status === 503) {
        seen503++;
        assert.match(g.json.error[0].message, /node c\b/);
      } else {
        assert.equal(g.status, 200, g.text);
        seen200++;
      }
    }
    assert.ok(seen503 > 0 && seen200 > 0, `${seen503} unavailable, ${seen200} served`);
    for (const srv of [a, b]) {
      const l = await srv.req('GET', '/v1/collections/Doc/objects?limit=5');
      assert.equal(l.status, 503, l.text);
      assert.match(l.json.error[0].message, /node c\b/);
    }
    // Once c's lease lapsed (and b's watch saw it) the answer says it left the cluster.
    await untilHealthy(a, 2);
    for (const deadline = Date.now() + 30000; ;) {
      const l = await b.req('GET', '/v1/collections/Doc/objects?limit=5');
      assert.equal(l.status, 503, l.text);
      assert.match(l.json.error[0].message, /node c\b/);
      if (/node c, which serves this shard, is unreachable/.test(l.json.error[0].message)) break;
      assert.ok(Date.now() < deadline, l.text);
      await sleep(50);
    }
    // A batch: c's objects fail naming it, the others are written.
    const more = Array.from({ length: 40 }, (_, i) => ({ collection: 'Doc', id: randomUUID(), vector: [i, 1] }));
    const br = await b.req('POST', '/v1/batch/objects', { objects: more });
    assert.equal(br.status, 200, br.text);
    assert.equal(br.json.results.length, 40);
    assert.ok(br.json.failed > 0 && br.json.ok > 0, br.text);
    for (const [i, res] of br.json.results.entries()) {
      assert.equal(res.id, more[i].id);
      if (res.status === 'error') assert.match(res.error, /node c\b/);
    }
    // c restarts on its data directory: its shards answer again through every node.
    const c2 = await startServer({ dataDir: c.dataDir, env: { SHARDVAULT_CLUSTER_SECRET: SECRET },
      args: ['--catalog', `etcd://${etcd.endpoint}/fw/`, '--node-ttl', '2s', '--node-name', 'c'] });
    nodes.c = c2;
    await untilHealthy(a, 3);
    for (const srv of [a, b, c2]) {
      for (const deadline = Date.now() + 30000; ;) { // until this node's watch has c's new URL
        const g = await srv.req('GET', '/v1/collections/Doc/objects?limit=1');
        if (g.status === 200) break;
        assert.ok(Date.now() < deadline, g.text);
        await sleep(50);
      }
      for (const id of ids.slice(20, 40)) {
        const g = await srv.req('GET', `/v1/collections/Doc/objects/${id}`);
        assert.equal(g.status, 200, g.text);
      }
      assert.deepEqual((await pages(srv, '/v1/collections/Doc/objects', 100)).flatMap((p) => p.ids).length,
        (await pages(ref, '/v1/collections/Doc/objects', 100)).flatMap((p) => p.ids).length + br.json.ok);
    }

    // The secret shows nowhere: not in /v1/meta, not in any log.
    assert.ok(!(await a.req('GET', '/v1/meta')).text.includes(SECRET));
    // The survivors stop cleanly (under the sanitizers: no leak, no UB report).
    for (const s of [a, b]) {
      const st = await s.stop();
      assert.equal(st.code, 0, String(s.stderr));
      assert.doesNotMatch(String(s.stderr), /runtime error|Sanitizer/);
    }
    for (const s of [a, b, c, c2]) assert.ok(!String(s.stderr).includes(SECRET));
  } finally {
    for (const s of [...Object.values(nodes), ref]) {
      await s.stop();
      s.cleanup();
    }
    await etcd.cleanup();
  }
});

test('auth on: the reached node checks the key; forwarded calls carry the cluster secret, not the key', async () => {
  const keyFile = path.join(tempDir(), 'root.key');
  const rootKey = `sv_root_${randomUUID().replaceAll('-', '')}`;
  writeFileSync(keyFile, `${rootKey}\n`, { mode: 0o600 });
  const { etcd, nodes } = await startCluster(['a', 'b'], { args: ['--auth', 'apikey', '--root-key-file', keyFile] });
  const { a, b } = nodes;
  const auth = { Authorization: `Bearer ${rootKey}` };
  try {
    await untilHealthy(a, 2, auth);
    let r = await a.req('POST', '/v1/collections', { name: 'S', shards: 4, vectors: { default: { dim: 1 } } }, auth);
    assert.equal(r.status, 200, r.text);
    const objs = Array.from({ length: 16 }, (_, i) => ({ collection: 'S', id: randomUUID(), vector: [i] }));
    r = await a.req('POST', '/v1/batch/objects', { objects: objs }, auth);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, 16);
    r = await b.req('GET', '/v1/collections/S/shards', undefined, auth);
    assert.deepEqual(new Set(r.json.shards.map((s) => s.node)), new Set(['a', 'b']));
    for (const o of objs) {
      assert.equal((await b.req('GET', `/v1/collections/S/objects/${o.id}`)).status, 401); // no key: never forwarded
      const g = await b.req('GET', `/v1/collections/S/objects/${o.id}`, undefined, auth);
      assert.equal(g.status, 200, g.text);
    }
    r = await a.req('GET', '/v1/collections/S/objects?limit=100', undefined, auth);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.objects.length, 16);
    // A big batch through one node: its forwarded part is sent in groups of at most
    // 10,000 objects while the body streams in; every result in request order.
    const big = Array.from({ length: 25000 }, (_, i) => JSON.stringify({ collection: 'S', id: randomUUID(), vector: [i] })).join('\n');
    r = await a.req('POST', '/v1/batch/objects', big, { ...auth, 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.ok, 25000);
    assert.deepEqual(r.json.results.map((x) => x.id), big.split('\n').map((l) => JSON.parse(l).id));
    const shardsB = (await b.req('GET', '/v1/collections/S/shards', undefined, auth)).json.shards;
    assert.equal(shardsB.reduce((n, x) => n + x.objects, 0), 25016);

    // A forged forward without the secret is refused even with auth on.
    r = await b.req('GET', `/v1/collections/S/objects/${objs[0].id}`, undefined, { 'X-Shardvault-Forwarded-By': 'a' });
    assert.equal(r.status, 401, r.text);
    for (const s of [a, b]) {
      const st = await s.stop();
      assert.equal(st.code, 0, String(s.stderr));
      assert.doesNotMatch(String(s.stderr), /runtime error|Sanitizer/);
    }
  } finally {
    for (const s of Object.values(nodes)) {
      await s.stop();
      s.cleanup();
    }
    await etcd.cleanup();
  }
});

test('etcd stopped and started while 3 nodes serve: no node exits, reads and object writes go on, DDL resumes', async () => {
  const { etcd, nodes } = await startCluster(['a', 'b', 'c']);
  const { a, b, c } = nodes;
  try {
    await untilHealthy(a, 3);
    let r = await a.req('POST', '/v1/collections', { name: 'E', shards: 3, vectors: { default: { dim: 1 } } });
    assert.equal(r.status, 200, r.text);
    const objs = Array.from({ length: 12 }, (_, i) => ({ collection: 'E', id: randomUUID(), vector: [i] }));
    r = await b.req('POST', '/v1/batch/objects', { objects: objs });
    assert.equal(r.json.ok, 12, r.text);
    // Every node knows E before etcd goes (a request naming it reads it on a miss).
    for (const srv of [a, b, c]) assert.equal((await srv.req('GET', '/v1/collections/E/objects?limit=1')).status, 200);

    await etcd.stop();
    for (const srv of [a, b, c]) {
      for (const o of objs) {
        const g = await srv.req('GET', `/v1/collections/E/objects/${o.id}`);
        assert.equal(g.status, 200, g.text);
      }
      const l = await srv.req('GET', '/v1/collections/E/objects?limit=100');
      assert.equal(l.status, 200, l.text);
      assert.equal(l.json.objects.length, 12);
    }
    const during = { collection: 'E', id: randomUUID(), vector: [99] };
    r = await c.req('PUT', `/v1/collections/E/objects/${during.id}`, during);
    assert.equal(r.status, 200, r.text); // object writes do not touch the catalog
    r = await a.req('POST', '/v1/collections', { name: 'F', shards: 2, vectors: { default: { dim: 1 } } });
    assert.equal(r.status, 503, r.text); // DDL needs the catalog
    r = await b.req('GET', '/v1/collections/Unknown/objects/' + randomUUID());
    assert.equal(r.status, 503, r.text); // a miss cannot be checked: not a 404

    await etcd.start();
    const deadline = Date.now() + 60000;
    for (;;) {
      r = await a.req('POST', '/v1/collections', { name: 'F', shards: 2, vectors: { default: { dim: 1 } } });
      if (r.status === 200) break;
      assert.ok(Date.now() < deadline, `DDL did not resume: ${r.text}`);
      await sleep(200);
    }
    r = await c.req('POST', '/v1/batch/objects', { objects: [{ collection: 'F', id: randomUUID(), vector: [1] }, { collection: 'F', id: randomUUID(), vector: [2] }] });
    assert.equal(r.json.ok, 2, r.text);
    const g = await b.req('GET', `/v1/collections/E/objects/${during.id}`);
    assert.equal(g.status, 200, g.text);
    for (const srv of [a, b, c]) assert.equal((await srv.req('GET', '/v1/.well-known/live')).status, 200); // none exited
    await untilHealthy(b, 3);
  } finally {
    for (const s of Object.values(nodes)) {
      await s.stop();
      s.cleanup();
    }
    await etcd.cleanup();
  }
});

test('merged listings keep the page byte budget: the same pages as one node with everything (SHARDVAULT_LIST_PAGE_BYTES)', async () => {
  const env = { SHARDVAULT_LIST_PAGE_BYTES: '4096' };
  const { etcd, nodes } = await startCluster(['a', 'b'], { env });
  const ref = await startServer({ env });
  const { a, b } = nodes;
  try {
    await untilHealthy(a, 2);
    const schema = { name: 'Big', shards: 4, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] };
    for (const s of [a, ref]) assert.equal((await s.req('POST', '/v1/collections', schema)).status, 200);
    const objects = Array.from({ length: 240 }, (_, i) => ({ collection: 'Big', id: randomUUID(), vector: [i, 1],
      properties: { title: 'x'.repeat((i * 397) % 1500) } }));
    for (const s of [b, ref]) {
      const r = await s.req('POST', '/v1/batch/objects', { objects });
      assert.equal(r.json.failed, 0, r.text);
    }
    for (const limit of [50, 5]) {
      const want = (await pages(ref, '/v1/collections/Big/objects', limit)).map((p) => p.ids);
      assert.ok(want.length > Math.ceil(240 / limit), 'the budget, not the limit, ends some pages');
      for (const s of [a, b]) assert.deepEqual((await pages(s, '/v1/collections/Big/objects', limit)).map((p) => p.ids), want, `limit ${limit}`);
    }
  } finally {
    for (const n of Object.values(nodes)) { await n.stop(); n.cleanup(); }
    await ref.stop();
    ref.cleanup();
    await etcd.cleanup();
  }
});
