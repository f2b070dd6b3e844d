// Two-phase export across nodes, on 3 real nodes sharing a real etcd and a
// real S3 store (s3rver): the node that receives the request coordinates,
// every node owning shards prepares (reserves its slot, captures its shards),
// the decision is written to etcd, then every node writes its own files and
// node_{name}_status.json. DuckDB reads back exactly the union of the
// objects. kill -9 of a participant mid-export -> FAILED "node X left the
// cluster" and every other slot free; kill -9 of the coordinator after
// prepare -> aborted, or finished when it had no shards of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startServer, tempDir } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { startS3 } from './lib/s3.mjs';
import { runAws } from './lib/location.mjs';
import { readExportDir } from './lib/export.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'export-cluster-secret-0123456789abcdef';
const TTL_MS = 2000;

async function startCluster(names, { env = {}, nodeEnv = {} } = {}) {
  const etcd = await startEtcd();
  const s3 = await startS3();
  await s3.createBucket('exports');
  const common = ['--catalog', `etcd://${etcd.endpoint}/ce/`, '--node-ttl', `${TTL_MS / 1000}s`];
  const nodes = {};
  const baseEnv = { SHARDVAULT_CLUSTER_SECRET: SECRET, ...s3.env, EXPORT_DEFAULT_BUCKET: 'exports', ...env };
  for (const n of names) {
    nodes[n] = await startServer({ env: { ...baseEnv, ...(nodeEnv[n] || {}) }, args: [...common, '--node-name', n] });
  }
  const stop = async () => {
    const findings = [];
    for (const [n, s] of Object.entries(nodes)) {
      await s.stop().catch(() => {});
      // Under ASan + UBSan (scripts/test.sh) a finding shows on stderr.
      const m = /(ERROR: (Address|Leak)Sanitizer|runtime error:)[^\n]*/.exec(s.stderr);
      if (m) findings.push(`${n}: ${m[0]}\n${s.stderr.slice(m.index, m.index + 3000)}`);
      s.cleanup();
    }
    await s3.stop();
    await etcd.cleanup();
    assert.deepEqual(findings, [], 'sanitizer findings');
  };
  return { etcd, s3, nodes, stop, common, baseEnv };
}

async function untilHealthy(srv, n) {
  for (let i = 0; ; i++) {
    const r = await srv.req('GET', '/v1/nodes');
    if (r.status === 200 && r.json.nodes.filter((x) => x.status === 'HEALTHY').length === n) return r.json.nodes;
    if (i > 600) throw new Error(`not ${n} healthy nodes: ${r.text}`);
    await sleep(100);
  }
}

async function waitStatus(srv, id, until, limitMs = 120000) {
  const t0 = Date.now();
  for (;;) {
    const r = await srv.req('GET', `/v1/export/s3/${id}`);
    if (r.status === 200 && until.includes(r.json.status)) return { st: r.json, ms: Date.now() - t0 };
    if (Date.now() - t0 > limitMs) throw new Error(`export ${id}: ${r.status} ${r.text.slice(0, 400)}`);
    await sleep(50);
  }
}

async function slotReserved(srv) {
  const r = await srv.req('GET', '/metrics');
  const m = /^shardvault_export_slot_reserved (\d)$/m.exec(r.text);
  assert.ok(m, 'the slot gauge is in /metrics');
  return Number(m[1]);
}

async function untilSlotsFree(nodes) {
  for (let i = 0; ; i++) {
    const busy = [];
    for (const [n, s] of Object.entries(nodes)) if (await slotReserved(s)) busy.push(n);
    if (!busy.length) return;
    if (i > 400) throw new Error(`slots still reserved on ${busy}`);
    await sleep(50);
  }
}

const objs = (coll, n, tenant) =>
  Array.from({ length: n }, (_, i) => ({ id: randomUUID(), collection: coll, ...(tenant ? { tenant } : {}),
    vector: [i % 7, (i * 3) % 11], properties: { title: `${coll} ${tenant || ''} ${i}` } }));

async function load(srv, list) {
  for (let i = 0; i < list.length; i += 500) {
    const r = await srv.req('POST', '/v1/batch/objects', { objects: list.slice(i, i + 500) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.failed, 0, r.text.slice(0, 300));
  }
}

async function shardNodes(srv, coll) {
  const r = await srv.req('GET', `/v1/collections/${coll}/shards`);
  assert.equal(r.status, 200, r.text);
  return Object.fromEntries(r.json.shards.map((s) => [s.name, s.node]));
}

test('3 nodes: an export of collections spread over every node is the union, status aggregated on any node', async () => {
  const c = await startCluster(['a', 'b', 'c']);
  const { a, b, c: cc } = c.nodes;
  const dl = tempDir('sv-cluster-export-');
  try {
    await untilHealthy(a, 3);
    let r = await a.req('POST', '/v1/collections',
      { name: 'Doc', shards: 6, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    r = await b.req('POST', '/v1/collections',
      { name: 'MT', multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    r = await cc.req('POST', '/v1/collections/MT/tenants', { tenants: ['t0', 't1', 't2'].map((name) => ({ name })) });
    assert.equal(r.status, 200, r.text);
    const docNodes = await shardNodes(a, 'Doc');
    assert.deepEqual(new Set(Object.values(docNodes)), new Set(['a', 'b', 'c']), 'Doc spreads over all three');
    const mtNodes = await shardNodes(a, 'MT');
    const doc = objs('Doc', 900);
    const mt = [...objs('MT', 100, 't0'), ...objs('MT', 150, 't1'), ...objs('MT', 50, 't2')];
    await load(cc, [...doc, ...mt]);

    // A client never reaches the participant endpoints, whatever it sends.
    r = await a.req('POST', '/v1/cluster/export/prepare', { id: 'x' });
    assert.equal(r.status, 403, r.text);
    r = await a.req('POST', '/v1/cluster/export/prepare', { id: 'x' },
      { 'X-Shardvault-Forwarded-By': 'b', 'X-Shardvault-Cluster-Secret': 'wrong' });
    assert.equal(r.status, 401, r.text);

    r = await b.req('POST', '/v1/export/s3', { id: 'spread-1', include: ['Doc', 'MT'] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'STARTED');
    // Any node answers the status, aggregated from every node's status file.
    const { st } = await waitStatus(a, 'spread-1', ['SUCCESS', 'FAILED', 'CANCELED']);
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st));
    assert.deepEqual(Object.keys(st.shardStatus.Doc).sort(), Object.keys(docNodes).sort());
    assert.deepEqual(Object.keys(st.shardStatus.MT).sort(), ['t0', 't1', 't2']);
    const count = (m) => Object.values(m).reduce((x, s) => x + s.objectsExported, 0);
    assert.equal(count(st.shardStatus.Doc), doc.length);
    assert.equal(count(st.shardStatus.MT), mt.length);
    for (const s of [...Object.values(st.shardStatus.Doc), ...Object.values(st.shardStatus.MT)])
      assert.equal(s.status, 'SUCCESS', JSON.stringify(s));
    assert.deepEqual((await cc.req('GET', '/v1/export/s3/spread-1')).json.status, 'SUCCESS');
    // objectsTotal is the whole export's (every node's part), on every node
    for (const n of [a, b, cc]) assert.equal((await n.req('GET', '/v1/export/s3/spread-1')).json.objectsTotal, doc.length + mt.length);

    const dir = path.join(dl, 'spread-1');
    await runAws(c.s3, ['s3', 'cp', '--recursive', 's3://exports/spread-1/', dir]);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'export_metadata.json'), 'utf8'));
    assert.equal(meta.status, 'SUCCESS');
    assert.equal(meta.coordinator, 'b');
    assert.equal(meta.objectsTotal, doc.length + mt.length);
    // nodeAssignments: each node's own shards, exactly as placed.
    for (const [shard, node] of Object.entries(docNodes)) assert.ok(meta.nodeAssignments[node].Doc.includes(shard));
    for (const [tenant, node] of Object.entries(mtNodes)) assert.ok(meta.nodeAssignments[node].MT.includes(tenant));
    for (const n of ['a', 'b', 'c']) {
      const ns = JSON.parse(fs.readFileSync(path.join(dir, `node_${n}_status.json`), 'utf8'));
      assert.equal(ns.status, 'SUCCESS', JSON.stringify(ns));
      assert.equal(ns.nodeName, n);
    }
    const { rows } = await readExportDir(dir);
    const want = new Map([...doc, ...mt].map((o) => [o.id, o]));
    assert.equal(rows.length, want.size, 'every object exactly once');
    assert.deepEqual(new Set(rows.map((x) => x.id)), new Set(want.keys()));
    for (const row of rows.slice(0, 50)) assert.equal(row.title ?? row.properties?.title, want.get(row.id).properties.title);

    // The export is a job on the coordinator; every slot is free again.
    const jobs = await b.req('GET', '/v1/jobs?kind=export');
    assert.equal(jobs.status, 200, jobs.text);
    const job = (jobs.json.jobs || jobs.json).find((j) => j.target === 'spread-1');
    assert.ok(job, jobs.text);
    for (let i = 0; i < 100 && (await b.req('GET', `/v1/jobs/${job.id}`)).json.state !== 'SUCCEEDED'; i++) await sleep(50);
    const jd = (await b.req('GET', `/v1/jobs/${job.id}`)).json;
    assert.equal(jd.state, 'SUCCEEDED');
    // it follows the whole export, not the coordinator's part
    assert.equal(jd.itemsDone, doc.length + mt.length, JSON.stringify(jd));
    assert.equal(jd.result.objectsExported, doc.length + mt.length, JSON.stringify(jd));
    assert.ok(jd.result.bytesWritten > 0, JSON.stringify(jd));
    await untilSlotsFree(c.nodes);

    // The same id is taken cluster-wide; a second export runs after the first.
    r = await cc.req('POST', '/v1/export/s3', { id: 'spread-1' });
    assert.equal(r.status, 409, r.text);
    // Cancel from a node that is not the coordinator stops it everywhere.
    r = await a.req('POST', '/v1/export/s3', { id: 'spread-2', include: ['Doc'] });
    assert.equal(r.status, 200, r.text);
    const del = await cc.req('DELETE', '/v1/export/s3/spread-2');
    assert.ok([204, 409].includes(del.status), del.text); // 409: it finished first
    const end2 = await waitStatus(b, 'spread-2', ['SUCCESS', 'FAILED', 'CANCELED']);
    assert.ok(del.status === 409 ? end2.st.status === 'SUCCESS' : end2.st.status === 'CANCELED', JSON.stringify(end2.st));
    await untilSlotsFree(c.nodes);
  } finally {
    await c.stop();
    fs.rmSync(dl, { recursive: true, force: true });
  }
});

test('kill -9 of a participant mid-export: FAILED naming it, every other slot free', async () => {
  // Slow exports (rows per second per node) so the kill lands mid-scan.
  const c = await startCluster(['a', 'b', 'c'], { env: { EXPORT_MAX_ROWS_PER_SECOND: '300', EXPORT_ROWS_PER_FILE: '200' } });
  const { a, b, c: cc } = c.nodes;
  try {
    await untilHealthy(a, 3);
    let r = await a.req('POST', '/v1/collections',
      { name: 'Doc', shards: 3, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    assert.equal(new Set(Object.values(await shardNodes(a, 'Doc'))).size, 3);
    await load(a, objs('Doc', 6000));
    r = await a.req('POST', '/v1/export/s3', { id: 'killed-part' });
    assert.equal(r.status, 200, r.text);
    await waitStatus(a, 'killed-part', ['TRANSFERRING']);
    await sleep(300);
    await cc.kill9();
    const t0 = Date.now();
    const { st } = await waitStatus(b, 'killed-part', ['SUCCESS', 'FAILED', 'CANCELED'], 30000);
    const took = Date.now() - t0;
    assert.equal(st.status, 'FAILED', JSON.stringify(st));
    assert.match(st.error, /node c left the cluster/);
    console.log(`participant killed -> export FAILED after ${took} ms (TTL ${TTL_MS} ms)`);
    // The dead node's shards say why; the others stopped.
    const cShard = Object.entries(await shardNodes(a, 'Doc')).find(([, n]) => n === 'c')[0];
    assert.equal(st.shardStatus.Doc[cShard].status, 'FAILED');
    assert.match(st.shardStatus.Doc[cShard].error, /node c left the cluster/);
    await untilSlotsFree({ a, b });
    // The survivors take the next export at once (a collection of theirs only).
    r = await a.req('POST', '/v1/collections',
      { name: 'Two', shards: 2, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    await load(b, objs('Two', 100));
    r = await b.req('POST', '/v1/export/s3', { id: 'after-kill', include: ['Two'] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await waitStatus(a, 'after-kill', ['SUCCESS', 'FAILED'])).st.status, 'SUCCESS');
  } finally {
    await c.stop();
  }
});

test('kill -9 of the coordinator after prepare: aborted when it held shards, finished when it held none', async () => {
  const crash = { SHARDVAULT_TEST_CRASH_AT: 'export-coordinator-prepared' };
  const crash2 = { SHARDVAULT_TEST_CRASH_AT: 'export-coordinator-committed' };
  const c = await startCluster(['a', 'b', 'c'], { nodeEnv: { a: crash, c: crash2 } });
  const { a, b, c: cc } = c.nodes;
  try {
    await untilHealthy(b, 3);
    // Two shards on an empty cluster: two of the three nodes hold them.
    let r = await b.req('POST', '/v1/collections',
      { name: 'Pair', shards: 2, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    const pairNodes = new Set(Object.values(await shardNodes(b, 'Pair')));
    r = await b.req('POST', '/v1/collections',
      { name: 'All', shards: 3, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    const pair = objs('Pair', 300);
    await load(b, [...pair, ...objs('All', 300)]);

    // a coordinates an export of All (it holds a shard) and dies once every
    // node prepared: the others abort within TTL + a tick.
    r = await a.req('POST', '/v1/export/s3', { id: 'coord-dies' }).catch((e) => ({ status: 0, text: String(e) }));
    assert.notEqual(r.status, 200, 'the coordinator died before answering');
    const t0 = Date.now();
    const { st } = await waitStatus(b, 'coord-dies', ['SUCCESS', 'FAILED', 'CANCELED'], 30000);
    console.log(`coordinator killed after prepare -> ${st.status} after ${Date.now() - t0} ms`);
    assert.equal(st.status, 'FAILED', JSON.stringify(st));
    assert.match(st.error, /node a left the cluster/);
    await untilSlotsFree({ b, c: cc });

    // c coordinates an export of Pair, which it holds none of (placement:
    // fewest shards first, ties by name -> a and b): it dies after the
    // decision and the participants finish the export on their own.
    assert.deepEqual([...pairNodes].sort(), ['a', 'b']);
    // a is dead since the first part: it restarts (without the crash point),
    // marks nothing (it held no marker for coord-dies: prepared parts are in
    // the marker, so it marks its part FAILED) and serves again.
    const a2 = await startServer({ dataDir: a.dataDir, env: c.baseEnv, args: [...c.common, '--node-name', 'a'] });
    c.nodes.a = a2;
    await untilHealthy(b, 3);
    r = await cc.req('POST', '/v1/export/s3', { id: 'coord-dies-2', include: ['Pair'] }).catch(() => ({ status: 0 }));
    assert.notEqual(r.status, 200);
    const { st: st2 } = await waitStatus(b, 'coord-dies-2', ['SUCCESS', 'FAILED', 'CANCELED'], 30000);
    assert.equal(st2.status, 'SUCCESS', JSON.stringify(st2));
    assert.equal(Object.values(st2.shardStatus.Pair).reduce((x, s) => x + s.objectsExported, 0), pair.length);
    await untilSlotsFree({ a: a2, b });

    // c again, holding none of Pair, dies before deciding: nothing was written
    // to the bucket, and the export reads FAILED with the reason (not 404).
    const c2 = await startServer({ dataDir: cc.dataDir, env: { ...c.baseEnv, SHARDVAULT_TEST_CRASH_AT: 'export-coordinator-unpublished' },
      args: [...c.common, '--node-name', 'c'] });
    c.nodes.c = c2;
    await untilHealthy(b, 3);
    r = await c2.req('POST', '/v1/export/s3', { id: 'coord-dies-3', include: ['Pair'] }).catch(() => ({ status: 0 }));
    assert.notEqual(r.status, 200);
    const { st: st3 } = await waitStatus(b, 'coord-dies-3', ['SUCCESS', 'FAILED', 'CANCELED'], 30000);
    assert.equal(st3.status, 'FAILED', JSON.stringify(st3));
    assert.match(st3.error, /node c, left the cluster before committing/, JSON.stringify(st3));
    assert.deepEqual(st3.shardStatus, {}, 'nothing was published: the status comes from the decision record');
    assert.equal((await a2.req('GET', '/v1/export/s3/coord-dies-3')).json.status, 'FAILED');
    await untilSlotsFree({ a: a2, b });
  } finally {
    await c.stop();
  }
});

test('kill -9 of the last participant still running, after the others ended: FAILED naming it, never STARTED for ever', async () => {
  const c = await startCluster(['a', 'b', 'c'], { env: { EXPORT_MAX_ROWS_PER_SECOND: '400' } });
  const { a, b, c: cc } = c.nodes;
  try {
    await untilHealthy(a, 3);
    let r = await b.req('POST', '/v1/collections',
      { name: 'MT', multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    r = await b.req('POST', '/v1/collections/MT/tenants', { tenants: ['t0', 't1', 't2'].map((name) => ({ name })) });
    assert.equal(r.status, 200, r.text);
    const owner = await shardNodes(b, 'MT'); // one tenant per node (fewest first)
    assert.deepEqual(new Set(Object.values(owner)), new Set(['a', 'b', 'c']));
    const big = Object.keys(owner).find((t) => owner[t] === 'a');
    const small = Object.keys(owner).filter((t) => t !== big);
    await load(b, [...objs('MT', 6000, big), ...objs('MT', 20, small[0]), ...objs('MT', 20, small[1])]);
    r = await b.req('POST', '/v1/export/s3', { id: 'last-dies' });
    assert.equal(r.status, 200, r.text);
    // b and c end their parts in moments; a's takes ~15 s: kill it once the others are idle.
    await untilSlotsFree({ b, c: cc });
    assert.equal(await slotReserved(a), 1, 'a is still exporting');
    await a.kill9();
    const { st } = await waitStatus(cc, 'last-dies', ['SUCCESS', 'FAILED', 'CANCELED'], 30000);
    assert.equal(st.status, 'FAILED', JSON.stringify(st));
    assert.match(st.error, /node a left the cluster/);
    assert.equal(st.shardStatus.MT[big].status, 'FAILED');
    for (const t of small) assert.equal(st.shardStatus.MT[t].status, 'SUCCESS');
    // The job on the coordinator ends with it: its watch reads the export's
    // metadata once a second (about 1 s after the FAILED above on a quiet
    // machine; up to 15 s allowed for a loaded CI machine, still not for ever).
    const jobs = await b.req('GET', '/v1/jobs?kind=export');
    const job = (jobs.json.jobs || jobs.json).find((j) => j.target === 'last-dies');
    for (let i = 0; i < 300 && (await b.req('GET', `/v1/jobs/${job.id}`)).json.state === 'RUNNING'; i++) await sleep(50);
    assert.equal((await b.req('GET', `/v1/jobs/${job.id}`)).json.state, 'FAILED');
  } finally {
    await c.stop();
  }
});

test('a Parquet import in a cluster: a target on another node is refused up front, naming the node to post to; posted there it imports every row; createCollection places the new collection on the importing node', async () => {
  const c = await startCluster(['a', 'b']);
  const { a, b } = c.nodes;
  try {
    await untilHealthy(a, 2);
    // the source: one shard, one node; exported to the shared bucket
    let r = await a.req('POST', '/v1/collections', { name: 'Src', shards: 1, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    const src = objs('Src', 300);
    await load(a, src);
    r = await a.req('POST', '/v1/export/s3', { id: 'imp-src', include: ['Src'] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await waitStatus(a, 'imp-src', ['SUCCESS', 'FAILED'])).st.status, 'SUCCESS');
    // targets: a collection spread over both nodes, and a tenant on each node
    r = await a.req('POST', '/v1/collections', { name: 'Wide', shards: 2, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(new Set(Object.values(await shardNodes(a, 'Wide'))), new Set(['a', 'b']));
    r = await a.req('POST', '/v1/collections', { name: 'Mt', multiTenancy: true, vectors: { default: { dim: 2 } }, properties: [{ name: 'title', type: 'text' }] });
    assert.equal(r.status, 200, r.text);
    r = await a.req('POST', '/v1/collections/Mt/tenants', [{ name: 't0' }, { name: 't1' }]);
    assert.equal(r.status, 200, r.text);
    const owner = await shardNodes(a, 'Mt');
    const onB = Object.keys(owner).find((t) => owner[t] === 'b');
    assert.ok(onB, JSON.stringify(owner));

    r = await a.req('POST', '/v1/import/s3', { id: 'wide-1', source: { export: 'imp-src' }, collection: 'Wide' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /shards on node\(s\) b/);
    r = await a.req('POST', '/v1/import/s3', { id: 'mt-1', source: { export: 'imp-src' }, collection: 'Mt', tenant: onB });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, new RegExp(`tenant '${onB}' of collection 'Mt' is on node b.*post the import to node b`));
    assert.equal((await a.req('GET', `/v1/collections/Mt/objects?tenant=${onB}&limit=1`)).json.objects.length, 0, 'nothing written');
    // posted to the owner: every row
    r = await b.req('POST', '/v1/import/s3', { id: 'mt-1', source: { export: 'imp-src' }, collection: 'Mt', tenant: onB });
    assert.equal(r.status, 202, r.text);
    let st;
    for (let i = 0; i < 600; i++) {
      st = (await a.req('GET', '/v1/import/s3/mt-1')).json;
      if (!['STARTED', 'TRANSFERRING'].includes(st.status)) break;
      await sleep(50);
    }
    assert.equal(st.status, 'SUCCESS', JSON.stringify(st));
    assert.equal(st.objectsImported, src.length);
    assert.equal(st.objectsFailed, 0);
    assert.equal(st.node, 'b', 'the status names the node that ran it, read through any node');
    const del = await a.req('DELETE', '/v1/import/s3/mt-1');
    assert.equal(del.status, 409, del.text);
    assert.match(del.text, /already finished \(SUCCESS\)/);
    // createCollection through either node: the new collection is placed where the import runs
    for (const [srv, name, node] of [[a, 'NewA', 'a'], [b, 'NewB', 'b']]) {
      r = await srv.req('POST', '/v1/import/s3', { id: `new-${node}`, source: { export: 'imp-src' }, collection: name, createCollection: true });
      assert.equal(r.status, 202, r.text);
      let x;
      for (let i = 0; i < 600; i++) {
        x = (await b.req('GET', `/v1/import/s3/new-${node}`)).json;
        if (!['STARTED', 'TRANSFERRING'].includes(x.status)) break;
        await sleep(50);
      }
      assert.equal(x.status, 'SUCCESS', JSON.stringify(x));
      assert.equal(x.objectsImported, src.length, JSON.stringify(x).slice(0, 300));
      assert.deepEqual(new Set(Object.values(await shardNodes(a, name))), new Set([node]));
      assert.equal((await a.req('GET', `/v1/collections/${name}/shards`)).json.shards.reduce((n, s) => n + s.objects, 0), src.length);
    }
    // one id, posted three times at once: one import runs, the others are 409
    const race = await Promise.all([0, 1, 2].map(() => b.req('POST', '/v1/import/s3',
      { id: 'race', source: { export: 'imp-src' }, collection: 'Mt', tenant: onB, onConflict: 'replace' })));
    assert.deepEqual(race.map((x) => x.status).sort(), [202, 409, 409], race.map((x) => x.text).join(' | '));
    const t = (await a.req('GET', '/v1/collections/Mt/tenants')).json.tenants.find((x) => x.name === onB);
    assert.equal(t.objects, src.length);
  } finally {
    await c.stop();
  }
});
