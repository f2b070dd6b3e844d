// bench/registry: the registry's data paths beside a peer doing the same work
// in the same run.
//   - cold acquire (onload of an offloaded tenant: hydrate into the cache with
//     sha256 verification, then lay out) MB/s, from file:// beside `cp -r` of
//     the same blob files, and from s3rver beside `aws s3 cp --recursive` of
//     the same blobs;
//   - re-offload of an unchanged tenant: ms and bytes uploaded;
//   - snapshot restore MB/s beside `cp -r`;
//   - object read latency p50/p99: a mounted snapshot's shard (AVAILABLE in the
//     cache) vs the live ACTIVE tenant.
//   node bench/registry/bench.mjs [--objects 1000000] [--s3-objects 200000] [--dim 128] [--reads 2000]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readFileSync, linkSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3 } from '../../tests/blackbox/lib/s3.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const N = Number(arg('--objects', 1000000));
const NS3 = Number(arg('--s3-objects', 200000));
const DIM = Number(arg('--dim', 128));
const READS = Number(arg('--reads', 2000));
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const out = path.join(root, 'bench/out');
mkdirSync(out, { recursive: true });

let seed = 99;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296; };
const POOL = Array.from({ length: 65536 }, () => (rand() * 2 - 1).toFixed(6));
const vecStr = () => { const v = new Array(DIM); for (let d = 0; d < DIM; d++) v[d] = POOL[(Math.random() * 65536) | 0]; return v.join(','); };
const uuid = (n) => {
  const h = ((n * 2654435761) >>> 0).toString(16).padStart(8, '0') + n.toString(16).padStart(24, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

async function startServer(dataDir, env = {}) {
  rmSync(dataDir, { recursive: true, force: true });
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', SHARDVAULT_SNAPSHOT_GC_INTERVAL_MS: '-1', ...env },
  });
  const url = await new Promise((resolve, reject) => {
    let s = '';
    proc.stdout.on('data', (d) => { s += d; const m = s.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    proc.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const req = async (method, p, body, headers = {}) => {
    const r = await fetch(url + p, { method, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined, text };
  };
  return { proc, url, req, async stop() { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); } };
}

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
function timeCmd(cmd, args, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
  return ms(t0);
}

async function load(srv, n) {
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < n) {
      const start = next; next += 2000;
      const lines = [];
      for (let i = start; i < Math.min(start + 2000, n); i++) lines.push(`{"collection":"Reg","tenant":"big","id":"${uuid(i)}","vector":[${vecStr()}],"properties":{"n":${i},"title":"object number ${i}"}}`);
      const r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
      if (r.status !== 200 || r.json.failed) throw new Error(`batch failed: ${r.text.slice(0, 300)}`);
    }
  }));
}

async function setStatus(srv, status) {
  const t0 = process.hrtime.bigint();
  const r = await srv.req('PUT', '/v1/collections/Reg/tenants?wait=true', { tenants: [{ name: 'big', status }] });
  if (r.json?.tenants?.[0]?.status !== status) throw new Error(`${status}: ${r.text}`);
  return ms(t0);
}

async function lastJob(srv, kind) {
  const l = await srv.req('GET', `/v1/jobs?kind=${kind}&limit=1`);
  for (;;) { // the job is finished right after the tenant's status settles
    const j = (await srv.req('GET', `/v1/jobs/${l.json.jobs[0].id}`)).json;
    if (['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state)) return j;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
async function latency(srv, pathOf) {
  const t = [];
  for (let i = 0; i < READS; i++) {
    const id = uuid(Math.floor(Math.random() * N));
    const t0 = process.hrtime.bigint();
    const r = await srv.req('GET', pathOf(id));
    t.push(ms(t0));
    if (r.status !== 200) throw new Error(`read ${id}: ${r.text}`);
  }
  return { p50: pct(t, 0.5), p99: pct(t, 0.99) };
}

// Lays the shard's blob files out as a directory (hard links), for the peers.
function layOut(dataDir, manifestPath, dst) {
  const m = JSON.parse(readFileSync(manifestPath, 'utf8'));
  mkdirSync(dst, { recursive: true });
  for (const f of m.shards[0].files) linkSync(path.join(dataDir, 'location/blobs', f.blob.slice(0, 2), f.blob), path.join(dst, f.name));
  return m.shards[0].bytes;
}

async function setup(srv, n) {
  const mk = await srv.req('POST', '/v1/collections', { name: 'Reg', multiTenancy: true, vectors: { default: { dim: DIM } }, properties: [{ name: 'n', type: 'int' }, { name: 'title', type: 'text' }] });
  if (mk.status !== 200) throw new Error(mk.text);
  await srv.req('POST', '/v1/collections/Reg/tenants', { tenants: [{ name: 'big' }] });
  const t0 = Date.now();
  await load(srv, n);
  process.stderr.write(`${n}: loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  await new Promise((r) => setTimeout(r, Math.min(20000, n / 100)));
}

const row = { objects: N, dim: DIM, cores: os.cpus().length };
{ // file://
  const dataDir = path.join(out, 'registry-data');
  const srv = await startServer(dataDir);
  try {
    await setup(srv, N);
    row.active = await latency(srv, (id) => `/v1/collections/Reg/objects/${id}?tenant=big`);

    // First offload (every file hashed and stored), the cold acquire (onload)
    // beside cp -r of the same files, then a re-offload of the unchanged tenant.
    row.offload_ms = await setStatus(srv, 'OFFLOADED');
    const off = await lastJob(srv, 'offload');
    row.offload_bytes = off.result.bytes;
    row.offload_mb_s = row.offload_bytes / 1e6 / (row.offload_ms / 1000);
    row.onload_ms = await setStatus(srv, 'INACTIVE');
    row.onload_mb_s = row.offload_bytes / 1e6 / (row.onload_ms / 1000);
    row.reoffload_ms = await setStatus(srv, 'OFFLOADED');
    row.reoffload_uploaded = (await lastJob(srv, 'offload')).result.bytesUploaded;
    const src = path.join(dataDir, 'cp-src');
    layOut(dataDir, path.join(dataDir, 'location/tenants/Reg/big/manifest.json'), src);
    // cp -r twice (the first may read cold pages): the faster one is the peer.
    row.cp_ms = Math.min(timeCmd('cp', ['-r', src, path.join(dataDir, 'cp-dst1')]),
      timeCmd('cp', ['-r', src, path.join(dataDir, 'cp-dst2')]));
    row.cp_mb_s = row.offload_bytes / 1e6 / (row.cp_ms / 1000);
    row.onload_vs_cp = row.onload_mb_s / row.cp_mb_s;
    await setStatus(srv, 'ACTIVE');

    // A snapshot, mounted and warmed: read latency of an AVAILABLE shard.
    const snap = await srv.req('POST', '/v1/collections/Reg/snapshots?wait=true', { name: 's' });
    if (snap.json.status !== 'COMMITTED') throw new Error(snap.text);
    await srv.req('POST', '/v1/collections/Reg/snapshots/s/mount');
    await srv.req('GET', `/v1/collections/Reg/snapshots/s/objects/${uuid(0)}?tenant=big`); // hydrates
    row.available = await latency(srv, (id) => `/v1/collections/Reg/snapshots/s/objects/${id}?tenant=big`);
    await srv.req('DELETE', '/v1/collections/Reg/snapshots/s/mount');

    // Restore beside cp -r.
    const t0 = process.hrtime.bigint();
    const job = await srv.req('POST', '/v1/collections/Reg/snapshots/s/restore', { target: 'RegCopy' });
    let j;
    for (;;) {
      j = (await srv.req('GET', `/v1/restore-jobs/${job.json.jobId}`)).json;
      if (j.state === 'COMPLETED' || j.state === 'FAILED') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (j.state !== 'COMPLETED') throw new Error(`restore: ${j.reason}`);
    row.restore_ms = j.tookInMs || ms(t0);
    row.restore_mb_s = j.bytesTotal / 1e6 / (row.restore_ms / 1000);
    row.restore_vs_cp = row.restore_mb_s / row.cp_mb_s;
  } finally {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
{ // s3rver
  const s3 = await startS3();
  await s3.createBucket('reg');
  const dataDir = path.join(out, 'registry-data-s3');
  const srv = await startServer(dataDir, { ...s3.env, SHARDVAULT_LOCATION: 's3://reg/x' });
  try {
    await setup(srv, NS3);
    await setStatus(srv, 'OFFLOADED');
    const off = await lastJob(srv, 'offload');
    row.s3_objects = NS3;
    row.s3_bytes = off.result.bytes;
    row.s3_onload_ms = await setStatus(srv, 'INACTIVE');
    row.s3_onload_mb_s = row.s3_bytes / 1e6 / (row.s3_onload_ms / 1000);
    const dst = path.join(dataDir, 'aws-dst');
    row.aws_ms = timeCmd('aws', ['s3', 'cp', '--recursive', '--quiet', '--endpoint-url', s3.endpoint, 's3://reg/x/blobs/', dst], s3.env);
    row.aws_mb_s = row.s3_bytes / 1e6 / (row.aws_ms / 1000);
    row.s3_onload_vs_aws = row.s3_onload_mb_s / row.aws_mb_s;
  } finally {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await s3.stop();
  }
}

const f = (x, d = 0) => (x === undefined ? '-' : x.toFixed(d));
console.log(`\nregistry, ${DIM}-d vectors, ${row.cores} cores; one tenant of ${N} objects (${f(row.offload_bytes / 1e6)} MB) on file://, ${NS3} (${f(row.s3_bytes / 1e6)} MB) on s3rver\n`);
console.log('what                                         shardvault           peer                    ratio');
console.log(`cold acquire (onload) file://, MB/s           ${f(row.onload_mb_s).padStart(10)}           cp -r ${f(row.cp_mb_s).padStart(10)}        ${f(row.onload_vs_cp, 2)}`);
console.log(`cold acquire (onload) s3rver, MB/s            ${f(row.s3_onload_mb_s).padStart(10)}   aws s3 cp --recursive ${f(row.aws_mb_s).padStart(6)}        ${f(row.s3_onload_vs_aws, 2)}`);
console.log(`snapshot restore file://, MB/s                ${f(row.restore_mb_s).padStart(10)}           cp -r ${f(row.cp_mb_s).padStart(10)}        ${f(row.restore_vs_cp, 2)}`);
console.log(`offload (first: hash + store), MB/s           ${f(row.offload_mb_s).padStart(10)}`);
console.log(`re-offload of unchanged data: ms, bytes up    ${f(row.reoffload_ms).padStart(10)}, ${row.reoffload_uploaded}`);
console.log(`object read p50/p99 ms: AVAILABLE (mounted)   ${f(row.available.p50, 2)}/${f(row.available.p99, 2)}   ACTIVE ${f(row.active.p50, 2)}/${f(row.active.p99, 2)}`);
console.log('targets: hydration >= 0.8x cp -r (file://) and >= 0.8x aws s3 cp (s3); restore >= 0.8x cp -r');
writeFileSync(path.join(out, 'registry.json'), JSON.stringify(row, null, 2));
