// bench/cluster: what forwarding costs. Three nodes on one etcd (all on this
// machine), beside the peer in the same run: one node on the embedded catalog
// holding everything.
//   - GET latency of the same objects through their owner and through a
//     non-owner (one forward: libcurl to the owner, its answer passed back);
//   - batch ingest (NDJSON, 4 clients) through one node (it splits every batch
//     by owner and forwards two thirds) vs spread over the three nodes vs the
//     single node.
//   - export to Parquet of --export N objects (128-d, default 200,000; the
//     issue's figure is 1,000,000) of a collection spread over the three nodes
//     (two-phase export, every node writing its own shards to a shared
//     directory) vs the same objects on the single node.
//   node bench/cluster/bench.mjs [--objects N] [--gets N] [--export N]
// Prints a table and writes bench/out/cluster.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../../tests/blackbox/lib/etcd.mjs';
import { procs, startNode, stopNodes } from './lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('--objects', 30000), GETS = arg('--gets', 3000), EXPORT_N = arg('--export', 200000);
const DIM = 32, BATCH = 1000, CLIENTS = 4, SECRET = 'bench-cluster-secret-0123456789';

let seed = 11;
const rand = () => { seed = (seed + 0x6d2b79f5) >>> 0; let t = Math.imul(seed ^ (seed >>> 15), seed | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const hex = (n) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
function makeBatches(coll) {
  const ids = [], batches = [];
  for (let b = 0; b < N / BATCH; b++) {
    const lines = [];
    for (let i = 0; i < BATCH; i++) {
      const h = hex(32);
      const id = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
      ids.push(id);
      lines.push(JSON.stringify({ collection: coll, id, vector: Array.from({ length: DIM }, () => +(rand() * 2 - 1).toFixed(5)), properties: { n: i } }));
    }
    batches.push(lines.join('\n'));
  }
  return { ids, batches };
}

// The export collection's batches, made one at a time (1M 128-d objects do
// not fit in memory as text): batch k is the same on every call.
const EXPORT_DIM = 128;
function exportBatch(coll, k) {
  let x = (k + 1) * 2654435761 >>> 0;
  const r = () => { x = (x * 1103515245 + 12345) >>> 0; return x / 4294967296; };
  const lines = [];
  for (let i = 0; i < BATCH && k * BATCH + i < EXPORT_N; i++) {
    const n = k * BATCH + i, h = (Math.floor(r() * 0xffffffff) >>> 0).toString(16).padStart(8, '0');
    lines.push(JSON.stringify({ collection: coll, id: `${h}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
      vector: Array.from({ length: EXPORT_DIM }, () => +(r() * 2 - 1).toFixed(4)),
      properties: { title: `object ${n} of the export benchmark`, body: 'x'.repeat(200), n } }));
  }
  return lines.join('\n');
}

async function ingestExport(targets, coll) {
  const nb = Math.ceil(EXPORT_N / BATCH);
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < nb) {
      const k = next++;
      const res = await req(targets[k % targets.length], 'POST', '/v1/batch/objects', exportBatch(coll, k), { 'content-type': 'application/x-ndjson' });
      const j = await res.json();
      if (j.failed) throw new Error(JSON.stringify(j.results.find((x) => x.error)));
    }
  }));
}

async function timeExport(s, id, coll) {
  const t0 = process.hrtime.bigint();
  const r = await req(s, 'POST', '/v1/export/filesystem', JSON.stringify({ id, include: [coll] }), { 'content-type': 'application/json' });
  if (r.status !== 200) throw new Error(await r.text());
  for (;;) {
    const st = await (await req(s, 'GET', `/v1/export/filesystem/${id}`)).json();
    if (st.status === 'SUCCESS') {
      const rows = Object.values(st.shardStatus[coll]).reduce((a, x) => a + x.objectsExported, 0);
      if (rows !== EXPORT_N) throw new Error(`export ${id}: ${rows} rows, want ${EXPORT_N}`);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    }
    if (['FAILED', 'CANCELED'].includes(st.status)) throw new Error(JSON.stringify(st));
    await new Promise((res) => setTimeout(res, 100));
  }
}

const start = (args, env = {}) => startNode(mkdtempSync(path.join(os.tmpdir(), 'sv-bench-cluster-')), args, env);
const req = (s, m, p, body, h = {}) => fetch(s.url + p, { method: m, body, headers: h });

async function ingest(targets, coll, batches) {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < batches.length) {
      const k = next++;
      const res = await req(targets[k % targets.length], 'POST', '/v1/batch/objects', batches[k], { 'content-type': 'application/x-ndjson' });
      const j = await res.json();
      if (j.failed) throw new Error(JSON.stringify(j.results.find((x) => x.error)));
    }
  }));
  return N / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function create(s, name) {
  const r = await req(s, 'POST', '/v1/collections', JSON.stringify({ name, shards: 6, vectors: { default: { dim: DIM } } }), { 'content-type': 'application/json' });
  if (r.status !== 200) throw new Error(await r.text());
}

const pct = (a, q) => a[Math.min(a.length - 1, Math.floor(a.length * q))];
async function timeGet(s, coll, id) {
  const a = process.hrtime.bigint();
  const res = await req(s, 'GET', `/v1/collections/${coll}/objects/${id}`);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${res.status}`);
  return Number(process.hrtime.bigint() - a) / 1e3;
}

const etcd = await startEtcd();
const shared = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-cluster-exports-'));
try {
  const nodes = {};
  for (const n of ['a', 'b', 'c']) nodes[n] = await start(['--catalog', `etcd://${etcd.endpoint}/bench/`, '--node-name', n], { SHARDVAULT_CLUSTER_SECRET: SECRET, EXPORT_FILESYSTEM_PATH: shared });
  const single = await start(['--node-name', 'solo']);
  for (;;) { // all three HEALTHY
    const j = await (await req(nodes.a, 'GET', '/v1/nodes')).json();
    if (j.nodes.filter((x) => x.status === 'HEALTHY').length === 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const data = { one: makeBatches('One'), spread: makeBatches('Spread'), single: makeBatches('Single') };
  await create(nodes.a, 'One');
  await create(nodes.a, 'Spread');
  await create(single, 'Single');
  const rows = [];
  rows.push({ what: 'batch ingest, 3 nodes, all through node a', objectsPerSec: await ingest([nodes.a], 'One', data.one.batches) });
  rows.push({ what: 'batch ingest, 3 nodes, spread over a, b, c', objectsPerSec: await ingest([nodes.a, nodes.b, nodes.c], 'Spread', data.spread.batches) });
  rows.push({ what: 'batch ingest, 1 node (embedded catalog) — peer', objectsPerSec: await ingest([single], 'Single', data.single.batches) });

  // The owner of each sampled id: a forwarded GET is served only by the owner.
  const owner = {};
  const sample = [];
  for (let i = 0; sample.length < Math.min(GETS, N); i++) {
    const id = data.one.ids[Math.floor(rand() * N)];
    const r = await req(nodes.a, 'GET', `/v1/collections/One/objects/${id}`, undefined, { 'X-Shardvault-Forwarded-By': 'bench', 'X-Shardvault-Cluster-Secret': SECRET });
    const t = await r.text();
    owner[id] = r.status === 200 ? 'a' : (t.match(/served by node (\w+)/) || [])[1];
    if (!owner[id]) throw new Error(`no owner for ${id}: ${t}`);
    sample.push(id);
  }
  const viaOwner = [], viaOther = [], viaSingle = [];
  for (const id of sample) { // interleaved: noise hits all three alike
    const o = owner[id], other = o === 'a' ? 'b' : 'a';
    viaOwner.push(await timeGet(nodes[o], 'One', id));
    viaOther.push(await timeGet(nodes[other], 'One', id));
    viaSingle.push(await timeGet(single, 'Single', data.single.ids[Math.floor(rand() * N)]));
  }
  for (const a of [viaOwner, viaOther, viaSingle]) a.sort((x, y) => x - y);
  const lat = [
    { what: 'GET through the owner', p50us: pct(viaOwner, 0.5), p99us: pct(viaOwner, 0.99) },
    { what: 'GET through a non-owner (forwarded)', p50us: pct(viaOther, 0.5), p99us: pct(viaOther, 0.99) },
    { what: 'GET on one node (embedded) — peer', p50us: pct(viaSingle, 0.5), p99us: pct(viaSingle, 0.99) },
  ];
  // Export: the same objects on 3 nodes (6 shards, 2 per node) and on 1.
  const ex = [];
  if (EXPORT_N > 0) {
    for (const [s, name] of [[nodes.a, 'ExpSpread'], [single, 'ExpSingle']]) {
      const r = await req(s, 'POST', '/v1/collections', JSON.stringify({ name, shards: 6, vectors: { default: { dim: EXPORT_DIM } },
        properties: [{ name: 'title', type: 'text' }, { name: 'body', type: 'text' }, { name: 'n', type: 'int' }] }), { 'content-type': 'application/json' });
      if (r.status !== 200) throw new Error(await r.text());
    }
    await ingestExport([nodes.a, nodes.b, nodes.c], 'ExpSpread');
    await ingestExport([single], 'ExpSingle');
    const t3 = await timeExport(nodes.b, 'bench-spread', 'ExpSpread');
    const t1 = await timeExport(single, 'bench-single', 'ExpSingle');
    ex.push({ what: `export of ${EXPORT_N} objects, 3 nodes (two-phase, 2 shards each)`, seconds: t3, rowsPerSec: EXPORT_N / t3 });
    ex.push({ what: `export of ${EXPORT_N} objects, 1 node — peer`, seconds: t1, rowsPerSec: EXPORT_N / t1 });
  }
  console.log(`objects=${N} (dim ${DIM}, batches of ${BATCH}, ${CLIENTS} clients) gets=${sample.length}; 3 nodes + etcd + the peer on one ${os.cpus().length}-core machine`);
  console.log('| ingest | objects/s |\n|---|---|');
  for (const r of rows) console.log(`| ${r.what} | ${r.objectsPerSec.toFixed(0)} |`);
  console.log('| GET | p50 µs | p99 µs |\n|---|---|---|');
  for (const r of lat) console.log(`| ${r.what} | ${r.p50us.toFixed(0)} | ${r.p99us.toFixed(0)} |`);
  if (ex.length) {
    console.log('| export (128-d, ~300 B properties) | seconds | rows/s |\n|---|---|---|');
    for (const r of ex) console.log(`| ${r.what} | ${r.seconds.toFixed(2)} | ${r.rowsPerSec.toFixed(0)} |`);
  }
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  writeFileSync(path.join(root, 'bench/out/cluster.json'), JSON.stringify({ objects: N, gets: sample.length, ingest: rows, get: lat, export: ex }, null, 2));
} finally {
  await stopNodes();
  for (const s of procs) rmSync(s.dir, { recursive: true, force: true });
  await etcd.cleanup();
  rmSync(shared, { recursive: true, force: true });
}
