// bench/cluster/snapshot: the write stall of a cluster-wide snapshot (the
// time each owner's write gates stay closed: close -> drain -> checkpoint ->
// every other owner checkpointed -> release), 3 nodes + etcd + s3rver on this
// machine, beside the peer in the same run: a snapshot of a collection whose
// one shard lives on one node (the one-node path, writes held while its
// checkpoint is taken: the record's timings.captureMs).
// Both collections hold the same number of objects and get the same writers
// (2 clients, one object per request) while the snapshots run; the writers'
// latency is reported too.
//   node bench/cluster/snapshot.mjs [--snapshots 20] [--objects 20000]
// Prints a table and writes bench/out/cluster_snapshot.json.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../../tests/blackbox/lib/etcd.mjs';
import { startS3 } from '../../tests/blackbox/lib/s3.mjs';
import { reqJson, sleep, startNode, stopNodes } from './lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const SNAPS = arg('--snapshots', 20), N = arg('--objects', 20000);
const SECRET = 'bench-snapshot-secret-0123456789abcdef';

const work = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-cut-'));
const start = (name, args, env) => startNode(path.join(work, name), args, env);
const req = reqJson;
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN; };

const etcd = await startEtcd();
const s3 = await startS3({ dir: path.join(work, 's3rver') });
try {
  await s3.createBucket('shared');
  const env = { ...s3.env, SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: 's3://shared/cluster' };
  const nodes = {};
  for (const n of ['a', 'b', 'c']) nodes[n] = await start(n, ['--catalog', `etcd://${etcd.endpoint}/benchcut/`, '--node-name', n], env);
  const all = Object.values(nodes);
  for (;;) {
    const r = await req(nodes.a, 'GET', '/v1/nodes');
    if (r.json.nodes.filter((x) => x.status === 'HEALTHY').length === 3) break;
    await sleep(100);
  }
  const schema = (name, shards) => ({ name, shards, vectors: { default: { dim: 16 } }, properties: [{ name: 'title', type: 'text' }] });
  // Spread: 3 shards, one per node. One: 1 shard, on one node.
  let r = await req(nodes.a, 'POST', '/v1/collections', schema('Spread', 3));
  if (r.status !== 200) throw new Error(r.text);
  r = await req(nodes.a, 'POST', '/v1/collections', schema('One', 1));
  if (r.status !== 200) throw new Error(r.text);
  const spreadNodes = (await req(nodes.a, 'GET', '/v1/collections/Spread/shards')).json.shards.map((s) => s.node);
  const oneNode = (await req(nodes.a, 'GET', '/v1/collections/One/shards')).json.shards[0].node;
  const vec = () => Array.from({ length: 16 }, () => +(Math.random() * 2 - 1).toFixed(4));
  for (const coll of ['Spread', 'One']) {
    for (let off = 0; off < N; off += 1000) {
      const lines = [];
      for (let i = off; i < Math.min(N, off + 1000); i++) lines.push(JSON.stringify({ collection: coll, vector: vec(), properties: { title: `object ${i} ${'x'.repeat(100)}` } }));
      const res = await req(all[(off / 1000) % 3], 'POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
      if (res.status !== 200 || res.json.failed) throw new Error(res.text.slice(0, 400));
    }
  }

  const run = async (coll) => {
    let writing = true;
    const lat = [];
    const writer = async (w) => {
      let i = 0;
      while (writing) {
        const id = randomUUID();
        const t0 = process.hrtime.bigint();
        const res = await req(all[(w + i++) % 3], 'PUT', `/v1/collections/${coll}/objects/${id}`, { vector: vec(), properties: { title: 'w' } });
        if (res.status !== 200) throw new Error(res.text);
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    };
    const ws = [0, 1].map(writer);
    const stalls = [], perSnap = [], totals = [];
    for (let k = 0; k < SNAPS; k++) {
      const res = await req(all[k % 3], 'POST', `/v1/collections/${coll}/snapshots?wait=true`, { name: `s${k}` });
      if (res.status !== 200 || res.json.status !== 'COMMITTED') throw new Error(res.text);
      if (res.json.cut) {
        for (const n of res.json.cut.nodes) stalls.push(n.stallMs);
        perSnap.push(res.json.cut.stallMaxMs);
      } else {
        stalls.push(res.json.timings.captureMs);
        perSnap.push(res.json.timings.captureMs);
      }
      totals.push(res.json.timings.totalMs);
    }
    writing = false;
    await Promise.all(ws);
    return { stalls, perSnap, totals, lat };
  };
  const spread = await run('Spread');
  const one = await run('One');
  const row = (what, x) => ({ what, n: x.stalls.length, p50: pct(x.stalls, 50), p99: pct(x.stalls, 99), max: Math.max(...x.stalls),
    snapP50: pct(x.totals, 50), wP50: pct(x.lat, 50), wP99: pct(x.lat, 99), wMax: Math.max(...x.lat), writes: x.lat.length });
  const rows = [row(`cluster-wide snapshot, 3 shards on nodes ${spreadNodes.join(',')} (stall per node per snapshot)`, spread),
    row(`peer: one-node snapshot, 1 shard on node ${oneNode} (captureMs: writes held for the checkpoint)`, one)];
  console.log(`${SNAPS} snapshots each of ${N} objects (16-d + 100 B text); 2 writers during the snapshots; 3 nodes + etcd + s3rver on one ${os.cpus().length}-core machine`);
  console.log('| what | stalls | stall p50 ms | stall p99 ms | stall max ms | snapshot p50 ms | write p50 ms | write p99 ms | write max ms | writes |\n|---|---|---|---|---|---|---|---|---|---|');
  const f = (v) => (Number.isFinite(v) ? v.toFixed(1) : '—');
  for (const x of rows) console.log(`| ${x.what} | ${x.n} | ${f(x.p50)} | ${f(x.p99)} | ${f(x.max)} | ${f(x.snapP50)} | ${f(x.wP50)} | ${f(x.wP99)} | ${f(x.wMax)} | ${x.writes} |`);
  console.log(`goal: cluster stall p99 <= 50 ms: ${rows[0].p99 <= 50 ? 'met' : 'NOT met'}`);
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  writeFileSync(path.join(root, 'bench/out/cluster_snapshot.json'), JSON.stringify({ snapshots: SNAPS, objects: N, rows, spread: { stalls: spread.stalls, perSnap: spread.perSnap }, one: { stalls: one.stalls } }, null, 2));
} finally {
  await stopNodes();
  await s3.stop();
  await etcd.cleanup();
  rmSync(work, { recursive: true, force: true });
}
