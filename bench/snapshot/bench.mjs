// bench/snapshot: for each collection size on a file:// location,
//   - time to COMMITTED of the first snapshot (everything hashed) and of a
//     second one of the unchanged collection (hash cache + content addressing),
//   - bytes uploaded and time of an incremental snapshot after a 1% change,
//   - restore MB/s, next to `cp -r` (and `cp -r` + sync) of the same shard
//     files in the same run.
//   node bench/snapshot/bench.mjs [--sizes 100000,1000000,4000000] [--shards 4] [--dim 128] [--clients 4]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readFileSync, linkSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const SIZES = arg('--sizes', '100000,1000000,4000000').split(',').map(Number);
const SHARDS = Number(arg('--shards', 4));
const DIM = Number(arg('--dim', 128));
const CLIENTS = Number(arg('--clients', 4));
const BATCH = 2000;
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const out = path.join(root, 'bench/out');
mkdirSync(out, { recursive: true });

// A pool of float strings keeps generation cheap; 65536 distinct values per
// dimension keep the binary vectors (nearly) incompressible for LZ4.
let seed = 4242;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296; };
const POOL = Array.from({ length: 65536 }, () => (rand() * 2 - 1).toFixed(6));
const vecStr = () => { const v = new Array(DIM); for (let d = 0; d < DIM; d++) v[d] = POOL[(Math.random() * 65536) | 0]; return v.join(','); };
const uuid = (n, salt) => {
  const h = ((n * 2654435761) >>> 0).toString(16).padStart(8, '0') + n.toString(16).padStart(12, '0') + salt.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
};
const objLine = (i, version) => `{"collection":"Snap","id":"${uuid(i, 7)}","vector":[${vecStr()}],"properties":{"n":${i},"version":${version},"title":"object number ${i}"}}`;

async function startServer(dataDir) {
  rmSync(dataDir, { recursive: true, force: true });
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', SHARDVAULT_SNAPSHOT_GC_INTERVAL_MS: '-1' },
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

async function load(srv, ids, version) {
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < ids.length) {
      const start = next; next += BATCH;
      const lines = [];
      for (let k = start; k < Math.min(start + BATCH, ids.length); k++) lines.push(objLine(ids[k], version));
      const r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
      if (r.status !== 200 || r.json.failed) throw new Error(`batch failed: ${r.text.slice(0, 300)}`);
    }
  }));
}

async function snapshot(srv, name) {
  const t0 = process.hrtime.bigint();
  const r = await srv.req('POST', '/v1/collections/Snap/snapshots?wait=true', { name });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.json?.status !== 'COMMITTED') throw new Error(`snapshot ${name}: ${r.text}`);
  return { ms, bytes: r.json.bytes, uploaded: r.json.bytesUploaded, files: r.json.shards.reduce((a, s) => a + s.files, 0), timings: r.json.timings };
}

function timeCmd(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const rows = [];
for (const N of SIZES) {
  const dataDir = path.join(out, `snapshot-data-${N}`);
  const srv = await startServer(dataDir);
  try {
    const mk = await srv.req('POST', '/v1/collections', { name: 'Snap', shards: SHARDS, vectors: { default: { dim: DIM } }, properties: [{ name: 'n', type: 'int' }, { name: 'version', type: 'int' }, { name: 'title', type: 'text' }] });
    if (mk.status !== 200) throw new Error(mk.text);
    const ids = Array.from({ length: N }, (_, i) => i);
    let t0 = Date.now();
    await load(srv, ids, 0);
    const loadS = (Date.now() - t0) / 1000;
    process.stderr.write(`${N}: loaded in ${loadS.toFixed(1)} s (${(N / loadS).toFixed(0)} objects/s)\n`);
    // Let RocksDB finish the flushes and compactions the load started, so the
    // second snapshot measures an unchanged collection, not a compaction.
    await new Promise((r) => setTimeout(r, Math.min(20000, N / 100)));

    const first = await snapshot(srv, 'first');
    const second = await snapshot(srv, 'second');
    const third = await snapshot(srv, 'third'); // a second unchanged run: steady state
    // 1%: every 100th object, rewritten.
    await load(srv, ids.filter((i) => i % 100 === 0), 1);
    const inc = await snapshot(srv, 'incremental');

    // Restore of the first snapshot.
    const job = await srv.req('POST', '/v1/collections/Snap/snapshots/first/restore', { target: 'SnapCopy' });
    let j;
    for (;;) {
      j = (await srv.req('GET', `/v1/restore-jobs/${job.json.jobId}`)).json;
      if (j.state === 'COMPLETED' || j.state === 'FAILED') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (j.state !== 'COMPLETED') throw new Error(`restore failed: ${j.reason}`);

    // Peer: the same shard files laid out as shards (hard links of the
    // blobs), copied with cp -r, then cp -r + sync.
    const m = JSON.parse(readFileSync(path.join(dataDir, 'location/snapshots/Snap/first/manifest.json'), 'utf8'));
    const src = path.join(dataDir, 'cp-src');
    for (const s of m.shards) {
      mkdirSync(path.join(src, s.name), { recursive: true });
      for (const f of s.files) linkSync(path.join(dataDir, 'location/blobs', f.blob.slice(0, 2), f.blob), path.join(src, s.name, f.name));
    }
    const cpMs = timeCmd('cp', ['-r', src, path.join(dataDir, 'cp-dst1')]);
    const cpSyncMs = timeCmd('sh', ['-c', `cp -r '${src}' '${path.join(dataDir, 'cp-dst2')}' && sync`]);

    const row = {
      objects: N, shards: SHARDS, dim: DIM, load_s: loadS,
      first_ms: first.ms, first_bytes: first.bytes, first_files: first.files,
      first_timings: first.timings, second_timings: second.timings,
      first_hash_gb_s: first.timings.bytesHashedFresh / 1e9 / (Math.max(1, first.timings.hashMs) / 1000),
      second_ms: second.ms, second_uploaded: second.uploaded, third_ms: third.ms,
      incremental_ms: inc.ms, incremental_uploaded: inc.uploaded, incremental_bytes: inc.bytes,
      incremental_ratio: inc.uploaded / first.uploaded,
      restore_ms: j.tookInMs, restore_mb_s: j.bytesTotal / 1e6 / (j.tookInMs / 1000),
      cp_ms: cpMs, cp_mb_s: m.bytes / 1e6 / (cpMs / 1000),
      cp_sync_ms: cpSyncMs, cp_sync_mb_s: m.bytes / 1e6 / (cpSyncMs / 1000),
    };
    row.restore_vs_cp = row.restore_mb_s / row.cp_mb_s;
    row.restore_vs_cp_sync = row.restore_mb_s / row.cp_sync_mb_s;
    rows.push(row);
    process.stderr.write(JSON.stringify(row) + '\n');
  } finally {
    await srv.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const f = (x, d = 0) => x.toFixed(d);
console.log(`\nsnapshot on file:// (same filesystem), ${SHARDS} shards, ${DIM}-d vectors, ${os.cpus().length} cores\n`);
console.log('(1st ms is the whole create: capture incl. memtable flush + hashing + storing; hash GB/s = bytes hashed / hashing time)');
console.log('objects    data MB  1st ms  hash GB/s  2nd ms  3rd ms  1%: uploaded MB (% of 1st)  ms   restore MB/s  cp MB/s  cp+sync MB/s  restore/cp  restore/cp+sync');
for (const r of rows) {
  console.log(`${String(r.objects).padEnd(9)} ${f(r.first_bytes / 1e6).padStart(8)} ${f(r.first_ms).padStart(7)} ${f(r.first_hash_gb_s, 2).padStart(10)} ${f(r.second_ms).padStart(7)} ${f(r.third_ms).padStart(7)} ${(f(r.incremental_uploaded / 1e6, 1) + ' (' + f(r.incremental_ratio * 100, 2) + '%)').padStart(27)} ${f(r.incremental_ms).padStart(5)} ${f(r.restore_mb_s).padStart(14)} ${f(r.cp_mb_s).padStart(8)} ${f(r.cp_sync_mb_s).padStart(13)} ${f(r.restore_vs_cp, 2).padStart(11)} ${f(r.restore_vs_cp_sync, 2).padStart(16)}`);
}
console.log('targets: unchanged snapshot <= 200 ms at 4M objects; first snapshot hashes >= 1 GB/s; restore >= 80% of cp MB/s');
writeFileSync(path.join(out, 'snapshot.json'), JSON.stringify({ shards: SHARDS, dim: DIM, cores: os.cpus().length, rows }, null, 2));
