// bench/cluster/move: time and bytes of a shard move between two nodes
// (etcd + s3rver location, all on this machine), beside the peer in the same
// run: `aws s3 cp --recursive` of the shard's files up to the same s3rver and
// back down to another directory (what a move has to do at the least: every
// byte up once and down once).
//   node bench/cluster/move.mjs [--mib 150]   (--mib 1024 for a 1 GB shard)
// Prints a table and writes bench/out/cluster_move.json.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../../tests/blackbox/lib/etcd.mjs';
import { startS3 } from '../../tests/blackbox/lib/s3.mjs';
import { reqJson, sleep, startNode, stopNodes } from './lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const MIB = arg('--mib', 150);
const SECRET = 'bench-move-secret-0123456789abcdef';
const OBJ_BYTES = 4096, BATCH = 400, CLIENTS = 4;

const work = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-move-'));
const start = (name, args, env) => startNode(path.join(work, name), args, env);
const req = reqJson;
function dirBytes(d) {
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) n += e.isDirectory() ? dirBytes(path.join(d, e.name)) : statSync(path.join(d, e.name)).size;
  return n;
}
function timed(cmd, argv, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const etcd = await startEtcd();
const s3 = await startS3({ dir: path.join(work, 's3rver') });
try {
  await s3.createBucket('shared');
  const env = { ...s3.env, SHARDVAULT_CLUSTER_SECRET: SECRET, SHARDVAULT_LOCATION: 's3://shared/cluster' };
  const nodes = {};
  for (const n of ['a', 'b']) nodes[n] = await start(n, ['--catalog', `etcd://${etcd.endpoint}/benchmove/`, '--node-name', n], env);
  for (;;) {
    const r = await req(nodes.a, 'GET', '/v1/nodes');
    if (r.json.nodes.filter((x) => x.status === 'HEALTHY').length === 2) break;
    await sleep(100);
  }
  let r = await req(nodes.a, 'POST', '/v1/collections', { name: 'Big', shards: 1, vectors: { default: { dim: 8 } }, properties: [{ name: 'blob', type: 'text' }] });
  if (r.status !== 200) throw new Error(r.text);
  const owner = (await req(nodes.a, 'GET', '/v1/collections/Big/shards')).json.shards[0].node;
  const to = owner === 'a' ? 'b' : 'a';
  // Incompressible text (base64 of random bytes), OBJ_BYTES per object.
  const total = Math.ceil((MIB * 1024 * 1024) / OBJ_BYTES);
  let next = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < total) {
      const lines = [];
      for (let i = 0; i < BATCH && next < total; i++, next++)
        lines.push(JSON.stringify({ collection: 'Big', vector: [1, 2, 3, 4, 5, 6, 7, 8], properties: { blob: randomBytes(OBJ_BYTES * 3 / 4).toString('base64') } }));
      const res = await req(nodes[owner], 'POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
      if (res.status !== 200 || res.json.failed) throw new Error(res.text.slice(0, 500));
    }
  }));
  const move = async (from, dest) => {
    const t0 = process.hrtime.bigint();
    const m = await req(nodes[from], 'POST', '/v1/collections/Big/shards/shard0000/move', { to: dest });
    if (m.status !== 202) throw new Error(m.text);
    for (;;) {
      const j = (await req(nodes[from], 'GET', `/v1/jobs/${m.json.jobId}`)).json;
      if (j.state === 'SUCCEEDED') return { s: Number(process.hrtime.bigint() - t0) / 1e9, result: j.result };
      if (j.state === 'FAILED' || j.state === 'CANCELED') throw new Error(JSON.stringify(j));
      await sleep(50);
    }
  };
  const first = await move(owner, to);
  const back = await move(to, owner);

  const uid = readdirSync(path.join(nodes[owner].dir, 'shards'))[0];
  const shardDir = path.join(nodes[owner].dir, 'shards', uid, 'shard0000');

  // The peer, after the moves: the shard's files (as the move back laid them out, so the same
  // files the move carried) up and down with awscli (same s3rver, same machine).
  const awsEnv = { ...s3.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
  const snap = path.join(work, 'peer-src');
  // A copy first (a compaction may still change the live directory: retry until a copy goes through).
  for (let tries = 0; ; tries++) {
    try { rmSync(snap, { recursive: true, force: true }); timed('cp', ['-a', shardDir, snap]); break; } catch (e) {
      if (tries > 60) throw e;
      await sleep(1000);
    }
  }
  const shardBytes = dirBytes(snap);
  const up = timed('aws', ['--endpoint-url', s3.endpoint, 's3', 'cp', '--recursive', '--quiet', snap, 's3://shared/peer/'], awsEnv);
  const down = timed('aws', ['--endpoint-url', s3.endpoint, 's3', 'cp', '--recursive', '--quiet', 's3://shared/peer/', path.join(work, 'peer-dst')], awsEnv);

  const mb = (b) => b / 1e6;
  const rows = [
    { what: 'shard move (cold location): upload, lay-out on the target, fenced catch-up, switch', s: first.s, bytes: first.result.bytes, up: first.result.bytesUploaded, down: first.result.bytesFetched, heldMs: first.result.writesHeldMs },
    { what: 'shard move back (its blobs already in the location)', s: back.s, bytes: back.result.bytes, up: back.result.bytesUploaded, down: back.result.bytesFetched, heldMs: back.result.writesHeldMs },
    { what: 'peer: aws s3 cp --recursive up + down of the shard\'s files', s: up + down, bytes: shardBytes, up: shardBytes, down: shardBytes, heldMs: null, upS: up, downS: down },
  ];
  console.log(`shard of ${total} objects of ${OBJ_BYTES} B (--mib ${MIB}); 2 nodes + etcd + s3rver on one ${os.cpus().length}-core machine`);
  console.log('| what | seconds | shard MB | MB uploaded | MB fetched | MB/s (shard / seconds) | writes held ms |\n|---|---|---|---|---|---|---|');
  for (const x of rows) console.log(`| ${x.what} | ${x.s.toFixed(2)} | ${mb(x.bytes).toFixed(1)} | ${mb(x.up).toFixed(1)} | ${mb(x.down).toFixed(1)} | ${(mb(x.bytes) / x.s).toFixed(1)} | ${x.heldMs ?? '—'} |`);
  console.log(`(aws up ${up.toFixed(2)} s, down ${down.toFixed(2)} s)`);
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  writeFileSync(path.join(root, 'bench/out/cluster_move.json'), JSON.stringify({ shardBytes, objects: total, rows, first: first.result, back: back.result }, null, 2));
} finally {
  await stopNodes();
  await s3.stop();
  await etcd.cleanup();
  rmSync(work, { recursive: true, force: true });
}
