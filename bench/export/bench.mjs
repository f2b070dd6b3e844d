// bench/export: objects/s, MB/s and peak RSS of exporting N objects (128-d
// vector, ~300 B properties) to the filesystem backend with zstd, beside
// DuckDB writing the same rows from an in-memory table with
// COPY ... TO (FORMAT parquet, COMPRESSION zstd) in the same run.
//   node bench/export/bench.mjs [--objects N[,N2...]] [--clients C] [--batch B]
// Loading (HTTP batch API, NDJSON generated in memory) is not timed. The
// server is restarted after loading so its peak RSS is the export's (plus
// opening the shards), not the import's.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const SIZES = String(arg('--objects', '1000000')).split(',').map(Number);
const CLIENTS = Number(arg('--clients', 4));
const BATCH = Number(arg('--batch', 2000));
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const out = path.join(root, 'bench/out');
mkdirSync(out, { recursive: true });

const peakRss = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]) * 1024;

async function startServer(dataDir, env = {}) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', ...env } });
  const url = await new Promise((resolve, reject) => {
    let s = '';
    proc.stdout.on('data', (d) => { s += d; const m = s.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    proc.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  const stop = async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); };
  return { proc, url, stop };
}

// The ingest benchmark's object shape, generated batch by batch. Math.imul
// keeps the LCG exact: `seed * 1103515245` in doubles loses the low bits and
// the generator then repeats after a few thousand ids.
function* batches(n) {
  let seed = 12345;
  const rand = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 4294967296; };
  const words = 'vector database shard export parquet snapshot restore tenant collection object storage'.split(' ');
  let cur = [];
  for (let i = 0; i < n; i++) {
    const v = new Array(128);
    for (let d = 0; d < 128; d++) v[d] = (rand() * 2 - 1).toFixed(6);
    const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
    const title = Array.from({ length: 8 }, () => words[Math.floor(rand() * words.length)]).join(' ');
    const body = Array.from({ length: 24 }, () => words[Math.floor(rand() * words.length)]).join(' ');
    cur.push(`{"collection":"Bench","id":"${id}","vector":[${v.join(',')}],"properties":{"title":"${title}","body":"${body}","views":${Math.floor(rand() * 1e6)},"score":${rand().toFixed(4)},"published":${rand() < 0.5},"tags":["a","b","c"]}}`);
    if (cur.length === BATCH) { yield cur.join('\n') + '\n'; cur = []; }
  }
  if (cur.length) yield cur.join('\n') + '\n';
}

async function load(url, n) {
  const mk = await fetch(`${url}/v1/collections`, { method: 'POST', body: JSON.stringify({ name: 'Bench', shards: 2, vectors: { default: { dim: 128 } }, properties: [{ name: 'title', type: 'text' }, { name: 'body', type: 'text' }, { name: 'views', type: 'int' }, { name: 'score', type: 'number' }, { name: 'published', type: 'boolean' }, { name: 'tags', type: 'text[]' }] }) });
  if (mk.status !== 200) throw new Error(await mk.text());
  const gen = batches(n);
  let ok = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let b = gen.next(); !b.done; b = gen.next()) {
      const r = await fetch(`${url}/v1/batch/objects`, { method: 'POST', body: b.value, headers: { 'content-type': 'application/x-ndjson' } });
      const j = await r.json();
      ok += j.ok;
    }
  }));
  if (ok !== n) throw new Error(`loaded ${ok} of ${n}`);
}

async function runShardvault(n) {
  const dataDir = path.join(out, `export-data-${n}`);
  rmSync(dataDir, { recursive: true, force: true });
  let srv = await startServer(dataDir);
  const t0 = Date.now();
  await load(srv.url, n);
  process.stderr.write(`loaded ${n} objects in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  await srv.stop();
  srv = await startServer(dataDir);
  const rssBefore = peakRss(srv.proc.pid);
  const start = process.hrtime.bigint();
  const r = await fetch(`${srv.url}/v1/export/filesystem`, { method: 'POST', body: JSON.stringify({ id: 'bench', options: { compression: 'zstd' } }) });
  if (r.status !== 200) throw new Error(await r.text());
  let st;
  for (;;) {
    st = await (await fetch(`${srv.url}/v1/export/filesystem/bench`)).json();
    if (['SUCCESS', 'FAILED', 'CANCELED'].includes(st.status)) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const rss = peakRss(srv.proc.pid);
  await srv.stop();
  if (st.status !== 'SUCCESS') throw new Error(JSON.stringify(st));
  let objects = 0;
  let bytes = 0;
  for (const shards of Object.values(st.shardStatus)) for (const s of Object.values(shards)) { objects += s.objectsExported; bytes += s.bytesWritten; }
  if (objects !== n) throw new Error(`exported ${objects} of ${n}`);
  const dir = path.join(dataDir, 'exports', 'bench');
  const files = readdirSync(dir).filter((f) => f.endsWith('.parquet'));
  return {
    system: 'shardvault export (filesystem, zstd)', objects, seconds: secs, took_ms: st.tookInMs,
    objects_per_s: objects / secs, mb_per_s: bytes / 1e6 / secs, bytes, files: files.length,
    peak_rss_mb: rss / 1e6, rss_at_start_mb: rssBefore / 1e6, dir, dataDir,
  };
}

// DuckDB: the same rows (read from shardvault's files into an in-memory
// table, not timed), then COPY ... TO parquet with zstd (timed).
function runDuckdb(n, dir) {
  const target = path.join(out, `export-duckdb-${n}.parquet`);
  const script = `
    import { DuckDBInstance } from '@duckdb/node-api';
    import { readFileSync } from 'node:fs';
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    await con.run("CREATE TABLE t AS SELECT * FROM read_parquet('${dir}/*.parquet')");
    const n = Number((await (await con.run('SELECT count(*) FROM t')).getRows())[0][0]);
    const threads = (await (await con.run("SELECT current_setting('threads')")).getRows())[0][0];
    const t0 = process.hrtime.bigint();
    await con.run("COPY t TO '${target}' (FORMAT parquet, COMPRESSION zstd)");
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const rss = Number(readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+)/)[1]) * 1024;
    console.log(JSON.stringify({ n, secs, rss, threads: Number(threads) }));`;
  const scriptFile = path.join(root, 'bench/export/.duckdb-peer.mjs');
  writeFileSync(scriptFile, script);
  const r = spawnSync('node', [scriptFile], { encoding: 'utf8', cwd: root });
  rmSync(scriptFile, { force: true });
  if (r.status !== 0) throw new Error(r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  const bytes = statSync(target).size;
  rmSync(target, { force: true });
  if (j.n !== n) throw new Error(`DuckDB table has ${j.n} rows`);
  return {
    system: `DuckDB COPY TO parquet zstd (${j.threads} threads)`, objects: j.n, seconds: j.secs,
    objects_per_s: j.n / j.secs, mb_per_s: bytes / 1e6 / j.secs, bytes, peak_rss_mb: j.rss / 1e6,
  };
}

const results = [];
for (const n of SIZES) {
  const sv = await runShardvault(n);
  const duck = runDuckdb(n, sv.dir);
  rmSync(sv.dataDir, { recursive: true, force: true });
  delete sv.dir; delete sv.dataDir;
  results.push({ objects: n, rows: [sv, duck], ratio: sv.objects_per_s / duck.objects_per_s });
  process.stderr.write(`${n}: shardvault ${sv.objects_per_s.toFixed(0)} objects/s, peak RSS ${sv.peak_rss_mb.toFixed(0)} MB; `
    + `DuckDB ${duck.objects_per_s.toFixed(0)} rows/s\n`);
  // Results so far, in case a later (bigger) size does not finish.
  writeFileSync(path.join(out, 'export.json'), JSON.stringify({ generated: new Date().toISOString(), results }, null, 2));
}
console.log(`\nexport to filesystem, zstd level 3, 128-d vector + ~300 B properties, EXPORT_PARALLELISM=${process.env.EXPORT_PARALLELISM || 'cores'} on ${(await import('node:os')).cpus().length} cores\n`);
console.log('objects   system                                   objects/s     MB/s   seconds  peak RSS MB');
for (const r of results) {
  for (const x of r.rows) console.log(`${String(r.objects).padEnd(9)} ${x.system.padEnd(40)} ${x.objects_per_s.toFixed(0).padStart(9)} ${x.mb_per_s.toFixed(1).padStart(8)} ${x.seconds.toFixed(2).padStart(9)} ${x.peak_rss_mb.toFixed(0).padStart(12)}`);
  console.log(`${String(r.objects).padEnd(9)} shardvault / DuckDB rows/s: ${r.ratio.toFixed(2)}x   (targets: >= 1.5x, peak RSS <= 256 MB)`);
}
writeFileSync(path.join(out, 'export.json'), JSON.stringify({ generated: new Date().toISOString(), results }, null, 2));
