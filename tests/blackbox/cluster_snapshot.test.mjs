// Cluster-wide consistent snapshots on 3 real nodes sharing a real etcd and
// one s3rver location (docs/cluster.md "Cluster-wide snapshot"):
//  - the cut is consistent: clients write pairs of objects into tenants owned
//    by different nodes (the second only after the first was acknowledged)
//    while 20 snapshots are taken through every node; each snapshot, restored
//    into a new collection, never holds a second without its first;
//  - the restored data equals the source at the cut (a quiet snapshot restored
//    holds exactly the source's objects, byte for byte); restores go across
//    the cluster (each tenant back on its node, each node laying out its own),
//    and with one of the source nodes down its tenant goes to a healthy node;
//  - a 3-node snapshot restores into another cluster (its own etcd, the same
//    location, after a maintenance rebuild) with other node names, and into a
//    2-node one, equal to the source;
//  - an owner killed while it lays out its shards of a restore fails it naming
//    the node, with no target left anywhere;
//  - the manifest lists every shard with its node; GET works from any node;
//  - an owner killed with its gates closed (a crash point, SIGKILL) fails the
//    snapshot naming it, and writes to the other nodes' tenants go on (they
//    are never refused, and the gates reopen within the 2 s hold).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { startS3 } from './lib/s3.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SNAPS = Number(process.env.CUT_SNAPSHOTS || 20); // the issue asks for at least 20
const SECRET = 'cut-cluster-secret-0123456789abcdef';

async function until(what, fn, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function startCluster(names, { nodeEnv = {} } = {}) {
  const etcd = await startEtcd();
  const s3 = await startS3();
  await s3.createBucket('shared');
  const prefix = `/cut${Math.floor(Math.random() * 1e9)}/`;
  const env = { ...s3.env, SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: 's3://shared/cluster' };
  const args = (n) => ['--catalog', `etcd://${etcd.endpoint}${prefix}`, '--node-ttl', '2s', '--node-name', n];
  const nodes = {};
  const cl = {
    etcd, s3, nodes,
    async start(n, { dataDir, extraEnv = {} } = {}) {
      nodes[n] = await startServer({ dataDir, env: { ...env, ...(nodeEnv[n] || {}), ...extraEnv }, args: args(n) });
      return nodes[n];
    },
    async healthy(n) {
      const first = Object.values(nodes).find((x) => x.proc.exitCode === null && x.proc.signalCode === null);
      await until(`${n} healthy nodes`, async () => {
        const r = await first.req('GET', '/v1/nodes');
        return r.status === 200 && r.json.nodes.filter((x) => x.status === 'HEALTHY').length === n;
      });
    },
    async stop() {
      for (const x of Object.values(nodes)) { await x.stop(); x.cleanup(); }
      await etcd.cleanup();
      await s3.stop();
    },
  };
  for (const n of names) await cl.start(n);
  await cl.healthy(names.length);
  return cl;
}

const schema = (name) => ({
  name, multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'pair', type: 'int' }, { name: 'role', type: 'text' }],
});

// One tenant per node: tenants are placed on the node with the fewest shards.
async function tenantsOnEveryNode(srv, collection, nodeNames) {
  const owner = {};
  for (let i = 0; i < 9 && Object.keys(owner).length < nodeNames.length; i++) {
    const r = await srv.req('POST', `/v1/collections/${collection}/tenants`, { tenants: [{ name: `t${i}` }] });
    assert.equal(r.status, 200, r.text);
    const t = (await srv.req('GET', `/v1/collections/${collection}/tenants`)).json.tenants.find((x) => x.name === `t${i}`);
    if (!owner[t.node]) owner[t.node] = t.name;
  }
  assert.deepEqual(Object.keys(owner).sort(), [...nodeNames].sort(), 'a tenant on every node');
  return owner; // node -> tenant
}

// The owners' checkpoints of a cut live in <data>/tmp/cut-<id> until its upload or abort.
const cutDirs = (srv) => {
  const d = path.join(srv.dataDir, 'tmp');
  return existsSync(d) ? readdirSync(d).filter((x) => x.startsWith('cut-')) : [];
};

async function listAll(srv, collection, tenant) {
  const out = [];
  let after = null;
  for (;;) {
    const q = `/v1/collections/${collection}/objects?limit=1000&tenant=${tenant}${after ? `&after=${after}` : ''}`;
    const r = await srv.req('GET', q);
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.objects);
    if (!r.json.next) return out;
    after = r.json.next;
  }
}

async function restore(srv, collection, name, target) {
  const r = await srv.req('POST', `/v1/collections/${collection}/snapshots/${name}/restore`, { target });
  assert.equal(r.status, 202, r.text);
  let last = null;
  const job = await until(`restore ${name}`, async () => {
    const j = await srv.req('GET', `/v1/restore-jobs/${r.json.jobId}`);
    assert.equal(j.status, 200, j.text);
    last = j.text;
    return ['COMPLETED', 'FAILED'].includes(j.json.state) ? j.json : null;
  }, 120000).catch((e) => { throw new Error(`${e.message}: ${last}`); });
  assert.equal(job.state, 'COMPLETED', JSON.stringify(job));
}

test('a snapshot across 3 nodes is one cut: 20 snapshots under pair writers never hold a second without its first; a quiet one restores equal to the source', async () => {
  // c closes its gates 300 ms after the others (a test hook): without the
  // gates a pair written in that window would straddle the cut.
  const cl = await startCluster(['a', 'b', 'c'], { nodeEnv: { c: { SHARDVAULT_TEST_CUT_DELAY_MS: '300' } } });
  const { nodes } = cl;
  const all = [nodes.a, nodes.b, nodes.c];
  try {
    let r = await nodes.a.req('POST', '/v1/collections', schema('Pair'));
    assert.equal(r.status, 200, r.text);
    const owner = await tenantsOnEveryNode(nodes.a, 'Pair', ['a', 'b', 'c']);
    // Pairs: first in a's tenant, second in b's; first in b's, second in c's; first in c's, second in a's.
    const routes = [['a', 'b'], ['b', 'c'], ['c', 'a']].map(([x, y]) => [owner[x], owner[y]]);
    let writing = true;
    const failures = [];
    let pairs = 0;
    const writer = async (w) => {
      let i = 0;
      while (writing) {
        const [t1, t2] = routes[(w + i) % 3];
        const via = all[(w + i) % 3];
        const pair = w * 1000000 + i++;
        const id1 = randomUUID();
        const id2 = randomUUID();
        const r1 = await via.req('PUT', `/v1/collections/Pair/objects/${id1}?tenant=${t1}`, { vector: [1, 0], properties: { pair, role: `first:${t2}` }, tenant: t1 });
        if (r1.status !== 200) { failures.push(`first ${r1.status} ${r1.text}`); continue; }
        const r2 = await via.req('PUT', `/v1/collections/Pair/objects/${id2}?tenant=${t2}`, { vector: [0, 1], properties: { pair, role: `second:${t1}` }, tenant: t2 });
        if (r2.status !== 200) failures.push(`second ${r2.status} ${r2.text}`);
        else pairs++;
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    const snaps = [];
    for (let k = 0; k < SNAPS; k++) {
      const via = all[k % 3];
      const name = `cut${k}`;
      r = await via.req('POST', '/v1/collections/Pair/snapshots?wait=true', { name });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'COMMITTED', r.text);
      snaps.push(r.json);
    }
    writing = false;
    await Promise.all(writers);
    assert.deepEqual(failures, [], 'no write failed');
    assert.ok(pairs > 20, `pairs written: ${pairs}`);
    for (const n of all) assert.deepEqual(cutDirs(n), [], 'no checkpoint of a cut left behind');

    // Every shard in the record with its node; GET from any node; the stall per node recorded.
    for (const n of all) {
      r = await n.req('GET', '/v1/collections/Pair/snapshots/cut0');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'COMMITTED');
      const byNode = Object.fromEntries(r.json.shards.map((s) => [s.name, s.node]));
      for (const [node, t] of Object.entries(owner)) assert.equal(byNode[t], node, JSON.stringify(r.json.shards));
    }
    r = await nodes.b.req('GET', '/v1/collections/Pair/snapshots');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.snapshots.length, SNAPS);
    const stalls = snaps.map((s) => s.cut.stallMaxMs);
    assert.equal(snaps[0].cut.nodes.length, 3, JSON.stringify(snaps[0].cut));

    // Each snapshot restored on one node: no second without its first.
    let seconds = 0;
    for (let k = 0; k < snaps.length; k++) {
      const target = `R${k}`;
      await restore(all[k % 3], 'Pair', `cut${k}`, target);
      // Across the cluster: every tenant back on the node it was captured on.
      if (k < 3) {
        const placed = (await all[(k + 2) % 3].req('GET', `/v1/collections/${target}/tenants`)).json.tenants;
        for (const [node, t] of Object.entries(owner)) assert.equal(placed.find((x) => x.name === t).node, node, `${target} ${t}`);
      }
      const firsts = new Set();
      const secondsOf = [];
      for (const t of Object.values(owner)) {
        for (const o of await listAll(all[(k + 1) % 3], target, t)) {
          if (o.properties.role.startsWith('first:')) firsts.add(o.properties.pair);
          else secondsOf.push(o.properties.pair);
        }
      }
      for (const p of secondsOf) assert.ok(firsts.has(p), `snapshot cut${k}: the second of pair ${p} without its first`);
      seconds += secondsOf.length;
    }
    assert.ok(seconds > 0, 'the snapshots held pairs');

    // Quiet: a snapshot restored equals the source.
    r = await nodes.c.req('POST', '/v1/collections/Pair/snapshots?wait=true', { name: 'quiet' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    await restore(nodes.b, 'Pair', 'quiet', 'Quiet');
    const strip = (o) => ({ id: o.id, vector: o.vector, properties: o.properties, creationTime: o.creationTime, updateTime: o.updateTime });
    const atCut = {};
    for (const t of Object.values(owner)) {
      const src = await listAll(nodes.a, 'Pair', t);
      const dst = await listAll(nodes.c, 'Quiet', t);
      assert.equal(dst.length, src.length, `tenant ${t}`);
      assert.deepEqual(dst.map(strip), src.map(strip), `tenant ${t}`);
      atCut[t] = src.map(strip);
    }
    // The restore needs none of the nodes the shards came from: c killed, the
    // same snapshot restored on a holds c's tenant as it was.
    await nodes.c.kill9();
    await until('c seen gone', async () => (await nodes.a.req('GET', '/v1/nodes')).json.nodes.find((x) => x.name === 'c').status !== 'HEALTHY');
    await restore(nodes.a, 'Pair', 'quiet', 'Quiet2');
    // Placed on the two healthy nodes: c's tenant goes to the one with fewer.
    const placed2 = (await nodes.b.req('GET', '/v1/collections/Quiet2/tenants')).json.tenants;
    assert.equal(placed2.find((x) => x.name === owner.a).node, 'a');
    assert.equal(placed2.find((x) => x.name === owner.b).node, 'b');
    assert.ok(['a', 'b'].includes(placed2.find((x) => x.name === owner.c).node), JSON.stringify(placed2));
    for (const t of Object.values(owner)) {
      assert.deepEqual((await listAll(nodes.a, 'Quiet2', t)).map(strip), atCut[t], `tenant ${t} through a`);
      assert.deepEqual((await listAll(nodes.b, 'Quiet2', t)).map(strip), atCut[t], `tenant ${t} through b`);
    }
    // a and b held their gates through c's late close (300 ms after c got
    // the cut; a node that got it later by some tens of ms under load holds
    // that much less, so each stall is far above the 10-20 ms of a cut
    // without the hook, and the median near the delay).
    const median = [...stalls].sort((x, y) => x - y)[stalls.length >> 1];
    assert.ok(Math.min(...stalls) >= 150 && median >= 250, `stalls ${stalls}`);
    console.log(`cut stall ms (max over nodes) per snapshot: ${stalls.map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    await cl.stop();
  }
});

test('an owner killed with its gates closed: the snapshot FAILED naming it, writes to the others go on', async () => {
  // c kills itself (SIGKILL) once its gates are closed for a cut.
  const cl = await startCluster(['a', 'b', 'c'], { nodeEnv: { c: { SHARDVAULT_TEST_CRASH_AT: 'cut:closed' } } });
  const { nodes } = cl;
  try {
    let r = await nodes.a.req('POST', '/v1/collections', schema('Pair'));
    assert.equal(r.status, 200, r.text);
    const owner = await tenantsOnEveryNode(nodes.a, 'Pair', ['a', 'b', 'c']);
    // Writers on a's and b's tenants through a and b, for the whole time.
    let writing = true;
    const failures = [];
    let acked = 0;
    const writer = async (w) => {
      let i = 0;
      while (writing) {
        const t = owner[w % 2 ? 'b' : 'a'];
        const id = randomUUID();
        const res = await [nodes.a, nodes.b][i++ % 2].req('PUT', `/v1/collections/Pair/objects/${id}?tenant=${t}`, { vector: [1, 1], properties: { pair: i, role: 'x' }, tenant: t });
        if (res.status !== 200) failures.push(`${res.status} ${res.text}`);
        else acked++;
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    r = await nodes.a.req('POST', '/v1/collections/Pair/snapshots?wait=true', { name: 'doomed' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'FAILED', r.text);
    assert.match(r.json.error, /node c/, r.json.error);
    await nodes.c.exited;
    assert.equal(nodes.c.proc.signalCode, 'SIGKILL');
    const before = acked;
    // Writes to a's and b's tenants keep being acknowledged (counted, not timed).
    await until('writes after the failed cut', async () => acked >= before + 20, 20000);
    writing = false;
    await Promise.all(writers);
    assert.deepEqual(failures, [], 'no write to a or b failed');
    // The abort removed the survivors' checkpoints.
    for (const n of [nodes.a, nodes.b]) assert.deepEqual(cutDirs(n), [], 'no checkpoint of the failed cut left behind');
    // The job on the coordinator says the same.
    r = await nodes.b.req('GET', '/v1/collections/Pair/snapshots/doomed');
    assert.equal(r.json.status, 'FAILED');
    r = await nodes.a.req('GET', '/v1/jobs?kind=snapshot');
    assert.equal(r.status, 200, r.text);
    const job = r.json.jobs.find((j) => j.target === 'doomed');
    assert.ok(job, JSON.stringify(r.json));
    assert.equal(job.state, 'FAILED');
    assert.match(job.reason, /node c/);
  } finally {
    await cl.stop();
  }
});

test('fixed shards: a snapshot of 3 shards on 3 nodes restores across the cluster, and onto 2 nodes when one is down; equal to the source', async () => {
  const cl = await startCluster(['a', 'b', 'c']);
  const { nodes } = cl;
  try {
    let r = await nodes.b.req('POST', '/v1/collections', { name: 'Doc', shards: 3, vectors: { default: { dim: 2 } }, properties: [{ name: 'n', type: 'int' }] });
    assert.equal(r.status, 200, r.text);
    const shardNodes = async (srv, c) => Object.fromEntries((await srv.req('GET', `/v1/collections/${c}/shards`)).json.shards.map((s) => [s.name, s.node]));
    const src = await shardNodes(nodes.a, 'Doc');
    assert.deepEqual(Object.values(src).sort(), ['a', 'b', 'c']);
    const objects = Array.from({ length: 300 }, (_, n) => ({ collection: 'Doc', id: randomUUID(), vector: [n, 1], properties: { n } }));
    r = await nodes.c.req('POST', '/v1/batch/objects', { objects });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.failed, 0, r.text);
    r = await nodes.a.req('POST', '/v1/collections/Doc/snapshots?wait=true', { name: 'full' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    assert.equal(r.json.objects, 300);
    assert.deepEqual(Object.fromEntries(r.json.shards.map((s) => [s.name, s.node])), src);
    const page = async (srv, c) => (await srv.req('GET', `/v1/collections/${c}/objects?limit=1000`)).json.objects
      .map((o) => ({ id: o.id, vector: o.vector, properties: o.properties, creationTime: o.creationTime }));
    const want = await page(nodes.a, 'Doc');
    assert.equal(want.length, 300);

    await restore(nodes.b, 'Doc', 'full', 'Back');
    assert.deepEqual(await shardNodes(nodes.c, 'Back'), src, 'every shard back on its node');
    for (const n of Object.values(nodes)) assert.deepEqual(await page(n, 'Back'), want);

    // b down: its shard goes to a healthy node; the others stay.
    await nodes.b.kill9();
    await until('b seen gone', async () => (await nodes.a.req('GET', '/v1/nodes')).json.nodes.find((x) => x.name === 'b').status !== 'HEALTHY');
    await restore(nodes.a, 'Doc', 'full', 'TwoNodes');
    const two = await shardNodes(nodes.c, 'TwoNodes');
    assert.deepEqual(Object.values(two).filter((x) => x === 'b'), []);
    for (const [s, n] of Object.entries(src)) if (n !== 'b') assert.equal(two[s], n);
    for (const n of [nodes.a, nodes.c]) assert.deepEqual(await page(n, 'TwoNodes'), want);
  } finally {
    await cl.stop();
  }
});

test('an owner killed while it lays out its shards of a restore: FAILED naming it, no target anywhere; with it back the same restore succeeds', async () => {
  // c kills itself (SIGKILL) once it has laid out a shard of a restore.
  const cl = await startCluster(['a', 'b', 'c'], { nodeEnv: { c: { SHARDVAULT_TEST_CRASH_AT: 'restore:laid' } } });
  const { nodes } = cl;
  try {
    let r = await nodes.a.req('POST', '/v1/collections', { name: 'Doc', shards: 3, vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    const objects = Array.from({ length: 90 }, (_, n) => ({ collection: 'Doc', id: randomUUID(), vector: [n, 1] }));
    r = await nodes.a.req('POST', '/v1/batch/objects', { objects });
    assert.equal(r.json.failed, 0, r.text);
    r = await nodes.a.req('POST', '/v1/collections/Doc/snapshots?wait=true', { name: 'full' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    r = await nodes.a.req('POST', '/v1/collections/Doc/snapshots/full/restore', { target: 'Back' });
    assert.equal(r.status, 202, r.text);
    const jobId = r.json.jobId;
    const job = await until('the restore to end', async () => {
      const j = await nodes.a.req('GET', `/v1/restore-jobs/${jobId}`);
      return ['COMPLETED', 'FAILED'].includes(j.json.state) ? j.json : null;
    });
    assert.equal(job.state, 'FAILED', JSON.stringify(job));
    assert.match(job.reason, /node c/, job.reason);
    await nodes.c.exited;
    assert.equal(nodes.c.proc.signalCode, 'SIGKILL');
    for (const n of [nodes.a, nodes.b]) assert.equal((await n.req('GET', '/v1/collections/Back')).status, 404);
    // c back without the crash point: the same restore (a new job) succeeds, every shard on its node.
    await cl.start('c', { dataDir: nodes.c.dataDir, extraEnv: { SHARDVAULT_TEST_CRASH_AT: '' } });
    await cl.healthy(3);
    await restore(nodes.b, 'Doc', 'full', 'Back');
    const shards = (await nodes.c.req('GET', '/v1/collections/Back/shards')).json.shards;
    assert.deepEqual(shards.map((s) => s.node).sort(), ['a', 'b', 'c']);
    assert.equal(shards.reduce((a, s) => a + s.objects, 0), 90);
  } finally {
    await cl.stop();
  }
});

test('a 3-node snapshot restored into another 3-node cluster with other node names, and into a 2-node cluster (same location, fresh etcd, rebuild first): equal to the source', async () => {
  const cl = await startCluster(['a', 'b', 'c']);
  const { nodes } = cl;
  const other = {};
  let etcd2, etcd3;
  try {
    etcd2 = await startEtcd();
    etcd3 = await startEtcd();
    let r = await nodes.a.req('POST', '/v1/collections', { name: 'Doc', shards: 3, vectors: { default: { dim: 2 } }, properties: [{ name: 'n', type: 'int' }] });
    assert.equal(r.status, 200, r.text);
    const objects = Array.from({ length: 300 }, (_, n) => ({ collection: 'Doc', id: randomUUID(), vector: [n, 2], properties: { n } }));
    r = await nodes.b.req('POST', '/v1/batch/objects', { objects });
    assert.equal(r.json.failed, 0, r.text);
    r = await nodes.c.req('POST', '/v1/collections/Doc/snapshots?wait=true', { name: 'full' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    assert.deepEqual(r.json.shards.map((s) => s.node).sort(), ['a', 'b', 'c']);
    const page = async (srv, c) => (await srv.req('GET', `/v1/collections/${c}/objects?limit=1000`)).json.objects
      .map((o) => ({ id: o.id, vector: o.vector, properties: o.properties, creationTime: o.creationTime }));
    const want = await page(nodes.a, 'Doc');
    assert.equal(want.length, 300);
    for (const n of ['a', 'b', 'c']) await nodes[n].stop(); // the first cluster is gone

    // Another cluster: its own etcd, nodes x, y, z, the same location.
    const env = { ...cl.s3.env, SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: 's3://shared/cluster' };
    for (const n of ['x', 'y', 'z'])
      other[n] = await startServer({ env, args: ['--catalog', `etcd://${etcd2.endpoint}/other/`, '--node-ttl', '2s', '--node-name', n] });
    await until('3 healthy nodes', async () => (await other.x.req('GET', '/v1/nodes')).json.nodes.filter((x) => x.status === 'HEALTHY').length === 3);
    // The location holds another cluster's data: its snapshot records come back by a rebuild.
    r = await other.y.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan' });
    assert.equal(r.status, 202, r.text);
    const done = await until('the rebuild', async () => {
      const j = await other.y.req('GET', `/v1/jobs/${r.json.jobId}`);
      return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.json.state) ? j.json : null;
    }, 120000);
    assert.equal(done.state, 'SUCCEEDED', JSON.stringify(done));
    r = await other.z.req('GET', '/v1/collections/Doc/snapshots/full');
    assert.equal(r.status, 200, r.text);
    // one rebuild adopts the location for the whole cluster: the other nodes may write it too
    for (const n of ['x', 'z'])
      await until(`node ${n} sees the store adopted`, async () => (await other[n].req('GET', '/v1/maintenance/status')).json.descriptor === 'ok', 30000);

    await restore(other.x, 'Doc', 'full', 'Doc');
    const shards = (await other.y.req('GET', '/v1/collections/Doc/shards')).json.shards;
    assert.deepEqual(shards.map((s) => s.node).sort(), ['x', 'y', 'z'], 'spread over the new nodes');
    for (const n of Object.values(other)) assert.deepEqual(await page(n, 'Doc'), want);
    // every owner writes the location (its part of a cut) without a rebuild of its own
    r = await other.z.req('POST', '/v1/collections/Doc/snapshots?wait=true', { name: 'after-rebuild' });
    assert.equal(r.json.status, 'COMMITTED', r.text);

    // And into a cluster of 2 nodes (p, q; another etcd): every shard on one of them.
    for (const n of ['x', 'y', 'z']) await other[n].stop();
    for (const n of ['p', 'q'])
      other[n] = await startServer({ env, args: ['--catalog', `etcd://${etcd3.endpoint}/two/`, '--node-ttl', '2s', '--node-name', n] });
    await until('2 healthy nodes', async () => (await other.p.req('GET', '/v1/nodes')).json.nodes.filter((x) => x.status === 'HEALTHY').length === 2);
    r = await other.p.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan' });
    assert.equal(r.status, 202, r.text);
    const done2 = await until('the rebuild', async () => {
      const j = await other.p.req('GET', `/v1/jobs/${r.json.jobId}`);
      return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.json.state) ? j.json : null;
    }, 120000);
    assert.equal(done2.state, 'SUCCEEDED', JSON.stringify(done2));
    await restore(other.q, 'Doc', 'full', 'Doc');
    const two = (await other.p.req('GET', '/v1/collections/Doc/shards')).json.shards.map((s) => s.node);
    assert.equal(two.length, 3);
    assert.deepEqual([...new Set(two)].sort(), ['p', 'q'], 'both nodes hold shards, no other');
    for (const n of [other.p, other.q]) assert.deepEqual(await page(n, 'Doc'), want);
  } finally {
    for (const n of Object.values(other)) { await n.stop(); n.cleanup(); }
    await etcd2?.cleanup();
    await etcd3?.cleanup();
    await cl.stop();
  }
});

test('the GC fence: a GC on one node while a snapshot on another stores its blobs deletes nothing (deferred); the snapshot restores whole; two snapshots started at once through two nodes both commit', async () => {
  // a stores each new blob slowly (a test hook), so its snapshot is in
  // flight while b's GC runs; no grace period, so only the fence protects
  // the blobs a reuses from the dropped snapshot
  const cl = await startCluster(['a', 'b'], { nodeEnv: {
    a: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '700', SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0' },
    b: { SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0' } } });
  const { nodes } = cl;
  try {
    let r = await nodes.b.req('POST', '/v1/collections', { name: 'Fen', shards: 2, vectors: { default: { dim: 2 } }, properties: [{ name: 'n', type: 'int' }] });
    assert.equal(r.status, 200, r.text);
    const objects = Array.from({ length: 400 }, (_, n) => ({ collection: 'Fen', id: randomUUID(), vector: [n, 1], properties: { n } }));
    r = await nodes.b.req('POST', '/v1/batch/objects', { objects });
    assert.equal(r.json.failed, 0, r.text);
    r = await nodes.b.req('POST', '/v1/collections/Fen/snapshots?wait=true', { name: 'f0' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    assert.equal((await nodes.b.req('DELETE', '/v1/collections/Fen/snapshots/f0')).status, 204);
    // f1 reuses f0's table files, now referenced by nothing, and stores new ones (slowly on a)
    const more = Array.from({ length: 100 }, (_, n) => ({ collection: 'Fen', id: randomUUID(), vector: [n, 2], properties: { n: 1000 + n } }));
    r = await nodes.b.req('POST', '/v1/batch/objects', { objects: more });
    assert.equal(r.json.failed, 0, r.text);
    objects.push(...more);
    r = await nodes.a.req('POST', '/v1/collections/Fen/snapshots', { name: 'f1' });
    assert.equal(r.status, 202, r.text);
    await until('a snapshot in flight on a', async () => {
      const x = await nodes.b.req('GET', '/v1/collections/Fen/snapshots/f1');
      if (x.json.status !== 'PENDING') throw new Error(`f1 ended before the GC: ${x.text}`);
      return cutDirs(nodes.a).length > 0;
    }, 30000);
    const gc = await nodes.b.req('POST', '/v1/snapshots/gc');
    assert.equal(gc.status, 200, gc.text);
    assert.equal(gc.json.blobsDeleted, 0, gc.text);
    assert.match(String(gc.json.deferred), /writer.*node a/, gc.text);
    const f1 = await until('f1 ends', async () => {
      const x = await nodes.b.req('GET', '/v1/collections/Fen/snapshots/f1');
      return x.json.status !== 'PENDING' ? x.json : null;
    }, 120000);
    assert.equal(f1.status, 'COMMITTED', JSON.stringify(f1));
    // nothing in flight now: GC deletes what no manifest names (f0's own files), and f1 is whole
    const gc2 = await nodes.b.req('POST', '/v1/snapshots/gc');
    assert.equal(gc2.status, 200, gc2.text);
    assert.equal(gc2.json.deferred, null, gc2.text);
    await restore(nodes.b, 'Fen', 'f1', 'FenBack');
    const ids = new Set();
    for (let after = null; ;) {
      const p = (await nodes.a.req('GET', `/v1/collections/FenBack/objects?limit=1000${after ? `&after=${after}` : ''}`)).json;
      for (const o of p.objects) ids.add(o.id);
      if (!p.next) break;
      after = p.next;
    }
    assert.deepEqual([...ids].sort(), objects.map((o) => o.id).sort());

    // Two snapshots of one collection started at once through both nodes: each
    // cut round refused by the other's gates is retried, so both commit.
    for (let round = 0; round < 4; round++) {
      const [x, y] = await Promise.all([
        nodes.a.req('POST', '/v1/collections/Fen/snapshots?wait=true', { name: `ca${round}` }),
        nodes.b.req('POST', '/v1/collections/Fen/snapshots?wait=true', { name: `cb${round}` }),
      ]);
      for (const s of [x, y]) {
        assert.equal(s.status, 200, s.text);
        assert.equal(s.json.status, 'COMMITTED', s.text);
        assert.equal(s.json.objects, objects.length, s.text);
      }
    }
  } finally {
    await cl.stop();
  }
});
