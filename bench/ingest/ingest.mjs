// bench/ingest: objects/s, MB/s and peak RSS of importing N objects (128-d
// vector, ~300 B of properties) through POST /v1/batch/objects, beside DuckDB
// loading the same NDJSON file into a table in the same run.
//   node bench/ingest/ingest.mjs [--objects N] [--clients C] [--batch B]
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const N = Number(arg('--objects', 1000000));
const CLIENTS = Number(arg('--clients', 4));
const BATCH = Number(arg('--batch', 2000));
const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');
const out = path.join(root, 'bench/out');
mkdirSync(out, { recursive: true });

// ---- data (not timed) ----
const dataFile = path.join(out, `ingest-v2-${N}.ndjson`);
if (!existsSync(dataFile)) {
  process.stderr.write(`generating ${N} objects into ${dataFile}\n`);
  // mulberry32: a plain JS multiply would lose the low bits past 2^53 and
  // repeat after a few thousand ids.
  let seed = 12345;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const seen = new Set();
  const fd = openSync(dataFile, 'w');
  const words = 'vector database shard export parquet snapshot restore tenant collection object storage'.split(' ');
  let chunk = [];
  for (let i = 0; i < N; i++) {
    const v = new Array(128);
    for (let d = 0; d < 128; d++) v[d] = (rand() * 2 - 1).toFixed(6);
    const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
    const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
    if (seen.has(id)) throw new Error(`generator repeated id ${id}`);
    seen.add(id);
    const title = Array.from({ length: 8 }, () => words[Math.floor(rand() * words.length)]).join(' ');
    const body = Array.from({ length: 24 }, () => words[Math.floor(rand() * words.length)]).join(' ');
    chunk.push(`{"collection":"Bench","id":"${id}","vector":[${v.join(',')}],"properties":{"title":"${title}","body":"${body}","views":${Math.floor(rand() * 1e6)},"score":${rand().toFixed(4)},"published":${rand() < 0.5},"tags":["a","b","c"]}}`);
    if (chunk.length === 10000) { writeSync(fd, chunk.join('\n') + '\n'); chunk = []; }
  }
  if (chunk.length) writeSync(fd, chunk.join('\n') + '\n');
  closeSync(fd);
}
const bytes = statSync(dataFile).size;

function peakRss(pid) {
  try { return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]) * 1024; } catch { return NaN; }
}

// ---- shardvault ----
async function runShardvault() {
  const dataDir = path.join(out, 'ingest-data');
  rmSync(dataDir, { recursive: true, force: true });
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn' } });
  const url = await new Promise((resolve) => { let s = ''; proc.stdout.on('data', (d) => { s += d; const m = s.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); }); });
  const mk = await fetch(`${url}/v1/collections`, { method: 'POST', body: JSON.stringify({ name: 'Bench', shards: 2, vectors: { default: { dim: 128 } }, properties: [{ name: 'title', type: 'text' }, { name: 'body', type: 'text' }, { name: 'views', type: 'int' }, { name: 'score', type: 'number' }, { name: 'published', type: 'boolean' }, { name: 'tags', type: 'text[]' }] }) });
  if (mk.status !== 200) throw new Error(await mk.text());
  // Pre-split into request bodies (not timed). The client is curl, 4 at a
  // time: on 2 cores a heavier client (node's fetch) takes the CPU the server
  // needs, and it is the server that is measured here.
  const chunkDir = path.join(out, `ingest-chunks-${N}-${BATCH}`);
  if (!existsSync(path.join(chunkDir, 'done'))) {
    rmSync(chunkDir, { recursive: true, force: true });
    mkdirSync(chunkDir, { recursive: true });
    let cur = [];
    let k = 0;
    const rl = createInterface({ input: createReadStream(dataFile), crlfDelay: Infinity });
    for await (const line of rl) {
      cur.push(line);
      if (cur.length === BATCH) { writeFileSync(path.join(chunkDir, `c${String(k++).padStart(6, '0')}`), cur.join('\n') + '\n'); cur = []; }
    }
    if (cur.length) writeFileSync(path.join(chunkDir, `c${String(k++).padStart(6, '0')}`), cur.join('\n') + '\n');
    writeFileSync(path.join(chunkDir, 'done'), '');
  }
  const respDir = path.join(out, 'ingest-responses');
  rmSync(respDir, { recursive: true, force: true });
  mkdirSync(respDir, { recursive: true });
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `cd ${chunkDir} && ls c* | xargs -P ${CLIENTS} -I{} curl -sS -o ${respDir}/{} -X POST ${url}/v1/batch/objects -H 'Content-Type: application/x-ndjson' --data-binary @{}`], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('curl clients failed');
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = peakRss(proc.pid);
  let ok = 0, failed = 0;
  for (const f of spawnSync('ls', [respDir], { encoding: 'utf8' }).stdout.trim().split('\n')) {
    const j = JSON.parse(readFileSync(path.join(respDir, f), 'utf8'));
    ok += j.ok; failed += j.failed;
  }
  const shards = await (await fetch(`${url}/v1/collections/Bench/shards`)).json();
  const stored = shards.shards.reduce((a, s) => a + s.objects, 0);
  if (stored !== N) throw new Error(`${stored} objects stored, expected ${N} distinct`);
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
  if (ok !== N) throw new Error(`shardvault imported ${ok}, failed ${failed}`);
  return { system: 'shardvault (HTTP batch, NDJSON, curl x' + CLIENTS + ')', objects: ok, seconds: secs, objects_per_s: ok / secs, mb_per_s: bytes / 1e6 / secs, peak_rss_mb: rss / 1e6 };
}

// ---- DuckDB peer: the same file into a table on disk ----
async function runDuckdb() {
  const script = `
    import { DuckDBInstance } from '@duckdb/node-api';
    import { readFileSync } from 'node:fs';
    const db = await DuckDBInstance.create(process.argv[2]);
    const con = await db.connect();
    const t0 = process.hrtime.bigint();
    await con.run("CREATE TABLE bench AS SELECT * FROM read_ndjson('${dataFile}', columns={collection:'VARCHAR', id:'UUID', vector:'FLOAT[128]', properties:'STRUCT(title VARCHAR, body VARCHAR, views BIGINT, score DOUBLE, published BOOLEAN, tags VARCHAR[])'})");
    await con.run('CHECKPOINT');
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const n = Number((await (await con.run('SELECT count(*) FROM bench')).getRows())[0][0]);
    const rss = Number(readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\\s+(\\d+)/)[1]) * 1024;
    console.log(JSON.stringify({ n, secs, rss }));`;
  const dbFile = path.join(out, 'ingest-duckdb.db');
  rmSync(dbFile, { force: true }); rmSync(dbFile + '.wal', { force: true });
  const scriptFile = path.join(root, 'bench/ingest/.duckdb-peer.mjs');
  writeFileSync(scriptFile, script);
  const r = spawnSync('node', [scriptFile, dbFile], { encoding: 'utf8', cwd: root });
  rmSync(scriptFile, { force: true });
  if (r.status !== 0) throw new Error(r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { system: 'DuckDB read_ndjson -> table', objects: j.n, seconds: j.secs, objects_per_s: j.n / j.secs, mb_per_s: bytes / 1e6 / j.secs, peak_rss_mb: j.rss / 1e6 };
}

const rows = [await runShardvault(), await runDuckdb()];
const ratio = rows[0].objects_per_s / rows[1].objects_per_s;
console.log(`\ningest of ${N} objects (128-d vector, ~300 B properties), ${(bytes / 1e6).toFixed(0)} MB NDJSON, ${CLIENTS} curl clients x ${BATCH}/batch\n`);
console.log('system                               objects/s     MB/s   seconds  peak RSS MB');
for (const r of rows) console.log(`${r.system.padEnd(36)} ${r.objects_per_s.toFixed(0).padStart(9)} ${r.mb_per_s.toFixed(1).padStart(8)} ${r.seconds.toFixed(1).padStart(9)} ${r.peak_rss_mb.toFixed(0).padStart(12)}`);
console.log(`shardvault / DuckDB objects/s: ${ratio.toFixed(2)}x   targets: >= 50000 objects/s, RSS <= 512 MB`);
writeFileSync(path.join(out, 'ingest.json'), JSON.stringify({ objects: N, bytes, clients: CLIENTS, batch: BATCH, rows, ratio }, null, 2));
