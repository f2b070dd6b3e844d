// bench/auth: the cost of authentication. The same server binary, the same
// objects and the same client, once with --auth off and once with --auth
// apikey (every request carries a Bearer key, checked by HMAC-SHA256 and the
// route's permission), alternating rounds so machine noise hits both alike.
//   node bench/auth/bench.mjs [--objects N] [--gets N] [--rounds R]
// Prints a table and writes bench/out/auth.json. Target: auth costs <= 3%.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('--objects', 200000), GETS = arg('--gets', 20000), ROUNDS = arg('--rounds', 3);
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const DIM = 64, BATCH = 2000, CLIENTS = 4;

let seed = 7;
const rand = () => { seed = (seed + 0x6d2b79f5) >>> 0; let t = Math.imul(seed ^ (seed >>> 15), seed | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const hex = (n) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
const ids = [], batches = [];
for (let b = 0; b < N / BATCH; b++) {
  const lines = [];
  for (let i = 0; i < BATCH; i++) {
    const h = hex(32);
    const id = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
    ids.push(id);
    lines.push(JSON.stringify({ collection: 'B', id, vector: Array.from({ length: DIM }, () => +(rand() * 2 - 1).toFixed(5)), properties: { n: i } }));
  }
  batches.push(lines.join('\n'));
}

async function start(auth) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-auth-'));
  const p = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--auth', auth], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn' } });
  let out = '';
  const url = await new Promise((res) => p.stdout.on('data', (d) => { out += d; const m = out.match(/listening on (http:\/\/[0-9.:]+)/); if (m) res(m[1]); }));
  const headers = auth === 'apikey' ? { authorization: `Bearer ${readFileSync(path.join(dir, 'root.key'), 'utf8').trim()}` } : {};
  return { p, dir, url, headers };
}

async function round(auth) {
  const s = await start(auth);
  const req = (m, p, body, h = {}) => fetch(s.url + p, { method: m, body, headers: { ...s.headers, ...h } });
  let r = await req('POST', '/v1/collections', JSON.stringify({ name: 'B', shards: 2, vectors: { default: { dim: DIM } } }), { 'content-type': 'application/json' });
  if (r.status !== 200) throw new Error(await r.text());
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < batches.length) {
      const b = batches[next++];
      const res = await req('POST', '/v1/batch/objects', b, { 'content-type': 'application/x-ndjson' });
      const j = await res.json();
      if (j.failed) throw new Error(JSON.stringify(j.results.find((x) => x.error)));
    }
  }));
  const ingest = N / (Number(process.hrtime.bigint() - t0) / 1e9);
  const lat = [];
  for (let i = 0; i < GETS; i++) {
    const id = ids[Math.floor(rand() * ids.length)];
    const a = process.hrtime.bigint();
    const res = await req('GET', `/v1/collections/B/objects/${id}`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET ${res.status}`);
    lat.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  lat.sort((x, y) => x - y);
  s.p.kill('SIGTERM');
  await new Promise((res) => s.p.on('exit', res));
  rmSync(s.dir, { recursive: true, force: true });
  return { ingest, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)] };
}

const res = { off: [], apikey: [] };
for (let i = 0; i < ROUNDS; i++)
  for (const mode of i % 2 ? ['apikey', 'off'] : ['off', 'apikey']) {
    res[mode].push(await round(mode));
    process.stderr.write(`round ${i + 1} ${mode}: ${JSON.stringify(res[mode].at(-1))}\n`);
  }
const med = (a, k) => a.map((x) => x[k]).sort((x, y) => x - y)[Math.floor(a.length / 2)];
const rows = ['off', 'apikey'].map((m) => ({ auth: m, objectsPerSec: med(res[m], 'ingest'), getP50us: med(res[m], 'p50'), getP99us: med(res[m], 'p99') }));
const cost = (k, higherBetter) => {
  const [a, b] = [rows[0][k], rows[1][k]];
  return higherBetter ? (a - b) / a * 100 : (b - a) / a * 100;
};
console.log(`objects=${N} gets=${GETS} rounds=${ROUNDS} (medians)`);
console.log('auth      objects/s   GET p50 us   GET p99 us');
for (const r of rows) console.log(`${r.auth.padEnd(8)} ${r.objectsPerSec.toFixed(0).padStart(10)} ${r.getP50us.toFixed(0).padStart(12)} ${r.getP99us.toFixed(0).padStart(12)}`);
console.log(`cost of auth: ingest ${cost('objectsPerSec', true).toFixed(1)}%, GET p50 ${cost('getP50us', false).toFixed(1)}%, GET p99 ${cost('getP99us', false).toFixed(1)}%  (target <= 3%)`);
mkdirSync(path.join(root, 'bench/out'), { recursive: true });
writeFileSync(path.join(root, 'bench/out/auth.json'), JSON.stringify({ objects: N, gets: GETS, rounds: ROUNDS, rows, raw: res }, null, 2));
