// bench/maintenance: on a location holding N small synthetic snapshot
// manifests (and a store.json, as a lost node leaves them), a fresh node's
//   - full-scan rebuild at parallelism 16 beside parallelism 1 (the peer),
//   - the checkpoint path (auto) with 1% of the manifests newer than the
//     newest checkpoint,
// on file:// and s3rver; and verify --read-data MB/s beside `sha256sum` of the
// same blob files (one process, and two in parallel: both cores).
//   node bench/maintenance/bench.mjs [--file-sizes 10000,100000] [--s3-sizes 2000] [--blob-mb 256]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, utimesSync, mkdtempSync } from 'node:fs';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3, startFaultProxy } from '../../tests/blackbox/lib/s3.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const FILE_SIZES = arg('--file-sizes', '10000').split(',').filter(Boolean).map(Number);
const S3_SIZES = arg('--s3-sizes', '2000').split(',').filter(Boolean).map(Number);
// s3rver answers in about a millisecond of its own (single-threaded) CPU; real
// object stores answer in tens of ms. A proxy adding this latency per request
// shows what parallel reads are for.
const LATENCY_MS = Number(arg('--latency-ms', 10));
const BLOB_MB = Number(arg('--blob-mb', 256));
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const out = path.join(root, 'bench/out');
mkdirSync(out, { recursive: true });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-maint-'));

async function startServer(env) {
  const dataDir = mkdtempSync(path.join(tmp, 'data-'));
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', SHARDVAULT_SNAPSHOT_GC_INTERVAL_MS: '-1',
      SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL: '-1', ...env },
  });
  const url = await new Promise((resolve, reject) => {
    let s = '';
    proc.stdout.on('data', (d) => { s += d; const m = s.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    proc.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const req = async (method, p, body) => {
    const r = await fetch(url + p, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined, text };
  };
  return {
    req,
    async agent(op, body) {
      const r = await req('POST', `/v1/maintenance/${op}`, body);
      if (r.status !== 202) throw new Error(`${op}: ${r.text}`);
      for (;;) {
        const j = (await req('GET', `/v1/jobs/${r.json.jobId}`)).json;
        if (j.state === 'SUCCEEDED') return j.result;
        if (j.state === 'FAILED' || j.state === 'CANCELED') throw new Error(`${op} ${j.state}: ${j.reason}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    },
    async stop() { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); rmSync(dataDir, { recursive: true, force: true }); },
  };
}

// A small pool of real blobs every synthetic manifest references.
function blobPool(n = 8) {
  return Array.from({ length: n }, (_, i) => {
    const data = crypto.randomBytes(1000 + i);
    return { data, hex: crypto.createHash('sha256').update(data).digest('hex') };
  });
}
const POOL = blobPool();
const STORE = JSON.stringify({ format_version: 1, storeId: crypto.randomUUID(), createdAt: Date.now(), layout: 'shardvault-1' }) + '\n';

function manifest(i) {
  const c = `Bench${i % 10}`;
  const files = [0, 1, 2].map((k) => { const b = POOL[(i + k) % POOL.length]; return { name: `00000${k + 1}.sst`, blob: b.hex, size: b.data.length }; });
  const bytes = files.reduce((s, f) => s + f.size, 0);
  return {
    key: `snapshots/${c}/s${i}/manifest.json`,
    body: JSON.stringify({ format_version: 1, kind: 'shardvault.snapshot', collection: c, name: `s${i}`, description: 'synthetic',
      createdAt: 1764374400000 + i, capturedAt: 1764374400000 + i, schema: { name: c, shards: 1 }, objects: 10, bytes,
      shards: [{ name: 'shard0000', status: 'OK', objects: 10, bytes, files }] }),
  };
}

// Writers for the two location kinds.
function fileWriter(dir) {
  return {
    url: `file://${dir}`,
    async put(key, body, oldMs) {
      const p = path.join(dir, key);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, body);
      if (oldMs) utimesSync(p, new Date(oldMs), new Date(oldMs));
    },
  };
}
function s3Writer(s3, bucket, prefix) {
  return {
    url: `s3://${bucket}/${prefix}`,
    async put(key, body) {
      const r = await fetch(`${s3.endpoint}/${bucket}/${prefix}/${key}`, { method: 'PUT', body });
      if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status}`);
    },
  };
}

async function putAll(w, from, to, oldMs) {
  let next = from;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < to) { const m = manifest(next++); await w.put(m.key, m.body, oldMs); }
  }));
}

async function populate(w, n) {
  await w.put('store.json', STORE);
  for (const b of POOL) await w.put(`blobs/${b.hex.slice(0, 2)}/${b.hex}`, b.data);
  await putAll(w, 0, n, Date.now() - 3600000);
}

const rows = [];
async function rebuildRow(kind, w, n, env) {
  await populate(w, n);
  const r = {};
  for (const par of [16, 1]) {
    const srv = await startServer({ ...env, SHARDVAULT_LOCATION: w.url });
    const res = await srv.agent('rebuild', { source: 'full-scan', parallelism: par });
    if (res.manifestsIndexed !== n) throw new Error(`indexed ${res.manifestsIndexed} of ${n}`);
    r[par] = res.durationMs;
    if (par === 16) {
      // The checkpoint path: a checkpoint of the rebuilt catalog, then 1% newer manifests.
      const ck = await srv.req('POST', '/v1/maintenance/checkpoint');
      if (ck.status !== 200) throw new Error(ck.text);
      await srv.stop();
      const extra = Math.max(1, Math.round(n / 100));
      await new Promise((res2) => setTimeout(res2, 1100)); // mtimes strictly after the checkpoint
      await putAll(w, n, n + extra);
      const srv2 = await startServer({ ...env, SHARDVAULT_LOCATION: w.url, SHARDVAULT_MAINTENANCE_CHECKPOINT_OVERLAP_MS: '0' });
      const auto = await srv2.agent('rebuild', { source: 'auto', parallelism: 16 });
      if (auto.manifestsIndexed !== n + extra) throw new Error(`auto indexed ${auto.manifestsIndexed} of ${n + extra}`);
      r.auto = auto.durationMs;
      r.autoRead = auto.manifestsIndexed - auto.manifestsFromCheckpoint;
      await srv2.stop();
      // back to n manifests for the serial run
      for (let i = n; i < n + extra; i++) {
        if (kind === 'file') rmSync(path.join(w.url.slice(7), manifest(i).key));
        else await fetch(`${w.endpoint}/${manifest(i).key}`, { method: 'DELETE' });
      }
    } else {
      await srv.stop();
    }
  }
  const row = { location: kind, manifests: n, p16_ms: r[16], p16_per_s: Math.round(n / (r[16] / 1000)), p1_ms: r[1],
    p1_per_s: Math.round(n / (r[1] / 1000)), speedup: +(r[1] / r[16]).toFixed(2), auto_ms: r.auto, auto_manifests_read: r.autoRead,
    auto_per_s: Math.round((n + Math.max(1, Math.round(n / 100))) / (r.auto / 1000)) };
  rows.push(row);
  console.log(JSON.stringify(row));
}

for (const n of FILE_SIZES) {
  const dir = mkdtempSync(path.join(tmp, 'loc-'));
  await rebuildRow('file', fileWriter(dir), n, {});
  rmSync(dir, { recursive: true, force: true });
}
if (S3_SIZES.length) {
  const s3 = await startS3();
  try {
    for (const n of S3_SIZES) {
      const bucket = `bench${n}`;
      await s3.createBucket(bucket);
      const w = s3Writer(s3, bucket, 'p');
      w.endpoint = `${s3.endpoint}/${bucket}/p`;
      await rebuildRow('s3rver', w, n, s3.env);
    }
    if (LATENCY_MS > 0) {
      const proxy = await startFaultProxy({ target: s3.endpoint, delayMs: LATENCY_MS });
      try {
        for (const n of S3_SIZES) {
          const bucket = `lat${n}`;
          await s3.createBucket(bucket);
          const w = s3Writer(s3, bucket, 'p');
          w.endpoint = `${s3.endpoint}/${bucket}/p`;
          await rebuildRow(`s3rver+${LATENCY_MS}ms`, w, n, { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint });
        }
      } finally { await proxy.stop(); }
    }
  } finally { await s3.stop(); }
}

// verify --read-data beside sha256sum of the same blob files.
let verifyRow = null;
if (BLOB_MB > 0) {
  const dir = mkdtempSync(path.join(tmp, 'vloc-'));
  const w = fileWriter(dir);
  await w.put('store.json', STORE);
  const nb = Math.max(2, Math.round(BLOB_MB / 8));
  const files = [];
  const mfiles = [];
  for (let i = 0; i < nb; i++) {
    const data = crypto.randomBytes(8 << 20);
    const hex = crypto.createHash('sha256').update(data).digest('hex');
    await w.put(`blobs/${hex.slice(0, 2)}/${hex}`, data);
    files.push(path.join(dir, 'blobs', hex.slice(0, 2), hex));
    mfiles.push({ name: `${String(i).padStart(6, '0')}.sst`, blob: hex, size: data.length });
  }
  const bytes = mfiles.reduce((s, f) => s + f.size, 0);
  await w.put('snapshots/Big/s/manifest.json', JSON.stringify({ format_version: 1, kind: 'shardvault.snapshot', collection: 'Big', name: 's',
    description: '', createdAt: 1, capturedAt: 1, schema: { name: 'Big' }, objects: 1, bytes, shards: [{ name: 'shard0000', status: 'OK', objects: 1, bytes, files: mfiles }] }));
  const srv = await startServer({ SHARDVAULT_LOCATION: w.url });
  await srv.agent('rebuild', { source: 'full-scan' });
  spawnSync('cat', files, { stdio: ['ignore', 'ignore', 'inherit'] }); // same page cache state for both
  const v = await srv.agent('verify', { readData: true, parallelism: 2 });
  await srv.stop();
  if (v.bytesRead !== bytes || v.issues.length) throw new Error(`verify read ${v.bytesRead} of ${bytes} bytes, ${v.issues.length} issues`);
  let t = process.hrtime.bigint();
  const s1 = spawnSync('sha256sum', files, { stdio: ['ignore', 'ignore', 'inherit'] });
  const one = Number(process.hrtime.bigint() - t) / 1e6;
  t = process.hrtime.bigint();
  const half = Math.ceil(files.length / 2);
  await Promise.all([files.slice(0, half), files.slice(half)].map((fs) => new Promise((res) => spawn('sha256sum', fs, { stdio: 'ignore' }).on('exit', res))));
  const two = Number(process.hrtime.bigint() - t) / 1e6;
  if (s1.status !== 0) throw new Error('sha256sum failed');
  // openssl uses the CPU's SHA extensions where coreutils' sha256sum may not.
  t = process.hrtime.bigint();
  await Promise.all([files.slice(0, half), files.slice(half)].map((fs) => new Promise((res) => spawn('openssl', ['dgst', '-sha256', ...fs], { stdio: 'ignore' }).on('exit', res))));
  const ossl = Number(process.hrtime.bigint() - t) / 1e6;
  const mb = bytes / 1e6;
  verifyRow = { mb: +mb.toFixed(0), verify_ms: v.durationMs, verify_mb_s: +(mb / (v.durationMs / 1000)).toFixed(0),
    sha256sum_1_mb_s: +(mb / (one / 1000)).toFixed(0), sha256sum_2_mb_s: +(mb / (two / 1000)).toFixed(0), openssl_2_mb_s: +(mb / (ossl / 1000)).toFixed(0), issues: v.issues.length };
  console.log(JSON.stringify(verifyRow));
  rmSync(dir, { recursive: true, force: true });
}

console.log('\nfull-scan rebuild of synthetic manifests (fresh node; peer: parallelism 1 in the same run)');
console.log('location | manifests | p16 manifests/s | p1 manifests/s | p16/p1 | auto (1% newer) manifests/s | manifests read by auto');
console.log('---|---|---|---|---|---|---');
for (const r of rows) console.log(`${r.location} | ${r.manifests} | ${r.p16_per_s} | ${r.p1_per_s} | ${r.speedup}× | ${r.auto_per_s} | ${r.auto_manifests_read}`);
if (verifyRow) {
  console.log(`\nverify --read-data (parallelism 2) of ${verifyRow.mb} MB: ${verifyRow.verify_mb_s} MB/s; sha256sum 1 process ${verifyRow.sha256sum_1_mb_s} MB/s, 2 processes ${verifyRow.sha256sum_2_mb_s} MB/s; openssl dgst 2 processes ${verifyRow.openssl_2_mb_s} MB/s`);
}
writeFileSync(path.join(out, 'maintenance.json'), JSON.stringify({ when: new Date().toISOString(), cpus: os.cpus().length, rebuild: rows, verify: verifyRow }, null, 1));
rmSync(tmp, { recursive: true, force: true });
