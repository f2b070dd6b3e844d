// Location benchmark driver (see run.sh). Runs shardvault's location_tool and
// awscli against the same s3rver in the same run, and file:// next to cp.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, writeSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3 } from '../../tests/blackbox/lib/s3.mjs';
import { toolPath } from '../../tests/blackbox/lib/location.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const largeMiB = opt('--large-mib', 1024);
const smallCount = opt('--small-count', 10000);
const smallKiB = opt('--small-kib', 64);
const threads = opt('--threads', 16);
const concurrency = opt('--concurrency', 8);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(path.join(os.tmpdir(), 'sv-bench-location-'));
const tool = toolPath();

function timed(label, cmd, argv, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${label}: ${cmd} ${argv.join(' ')} failed: ${r.stderr}`);
  return s;
}

function makeFile(p, bytes) {
  const fd = openSync(p, 'w');
  const chunk = Buffer.allocUnsafe(Math.min(bytes, 64 << 20));
  for (let left = bytes; left > 0; left -= chunk.length) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  }
  closeSync(fd);
}

const results = [];
const row = (op, unit, sv, peer, peerName) => {
  results.push({ op, unit, shardvault: sv, peer, peer_name: peerName, ratio: peer ? sv / peer : null });
};

const s3 = await startS3({ dir: path.join(work, 's3rver') });
try {
  await s3.createBucket('bench');
  const env = s3.env;
  const aws = (argv) => ['--endpoint-url', s3.endpoint, ...argv];
  const awsEnv = { ...env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
  const svFlags = ['--concurrency', String(concurrency)];

  // ---- one large object ----
  const big = path.join(work, 'big.bin');
  const bigBytes = largeMiB * 1024 * 1024;
  makeFile(big, bigBytes);
  const mb = bigBytes / 1e6;
  let sv = timed('sv large up', tool, [...svFlags, 's3://bench', 'put-file', 'large/sv.bin', big], env);
  let peer = timed('aws large up', 'aws', aws(['s3', 'cp', '--quiet', big, 's3://bench/large/aws.bin']), awsEnv);
  row(`upload 1 x ${largeMiB} MiB`, 'MB/s', mb / sv, mb / peer, 'aws s3 cp');
  const out1 = path.join(work, 'big.sv.out');
  const out2 = path.join(work, 'big.aws.out');
  sv = timed('sv large down', tool, ['s3://bench', 'get-file', 'large/sv.bin', out1], env);
  peer = timed('aws large down', 'aws', aws(['s3', 'cp', '--quiet', 's3://bench/large/aws.bin', out2]), awsEnv);
  row(`download 1 x ${largeMiB} MiB`, 'MB/s', mb / sv, mb / peer, 'aws s3 cp');
  execFileSync('cmp', [big, out1]);
  execFileSync('cmp', [big, out2]);
  rmSync(out1);
  rmSync(out2);

  // ---- many small objects ----
  const smallDir = path.join(work, 'small');
  mkdirSync(smallDir);
  const buf = Buffer.allocUnsafe(smallKiB * 1024);
  for (let i = 0; i < smallCount; i++) {
    randomFillSync(buf);
    writeFileSync(path.join(smallDir, `o${String(i).padStart(6, '0')}`), buf);
  }
  sv = timed('sv small up', tool, ['s3://bench', 'sync-up', smallDir, 'small/sv', String(threads)], env);
  peer = timed('aws small up', 'aws', aws(['s3', 'sync', '--quiet', smallDir, 's3://bench/small/aws/']), awsEnv);
  row(`upload ${smallCount} x ${smallKiB} KiB`, 'objects/s', smallCount / sv, smallCount / peer, 'aws s3 sync');
  const d1 = path.join(work, 'small.sv.out');
  const d2 = path.join(work, 'small.aws.out');
  sv = timed('sv small down', tool, ['s3://bench', 'sync-down', 'small/sv', d1, String(threads)], env);
  peer = timed('aws small down', 'aws', aws(['s3', 'sync', '--quiet', 's3://bench/small/aws/', d2]), awsEnv);
  row(`download ${smallCount} x ${smallKiB} KiB`, 'objects/s', smallCount / sv, smallCount / peer, 'aws s3 sync');
  execFileSync('diff', ['-rq', smallDir, d1]);
  rmSync(d1, { recursive: true });
  rmSync(d2, { recursive: true });

  // ---- file:// ----
  const floc = `file://${path.join(work, 'floc')}`;
  const cpDst = path.join(work, 'cp.bin');
  sv = timed('file put', tool, [floc, 'put', 'large/f.bin', big], {});
  peer = timed('cp', 'sh', ['-c', `cp "${big}" "${cpDst}" && sync "${cpDst}"`], {});
  row(`file:// put (copy + fsync) 1 x ${largeMiB} MiB`, 'MB/s', mb / sv, mb / peer, 'cp + sync');
  sv = timed('file put-file', tool, [floc, 'put-file', 'large/linked.bin', big], {});
  row(`file:// put_file (hard link) 1 x ${largeMiB} MiB`, 'MB/s', mb / sv, null, '-');
} finally {
  await s3.stop();
  rmSync(work, { recursive: true, force: true });
}

const pad = (s, n) => String(s).padEnd(n);
console.log(`\nlocation benchmark (s3rver on 127.0.0.1, ${os.cpus().length} cores; shardvault --concurrency ${concurrency}, ${threads} threads for small objects)`);
console.log(pad('operation', 44) + pad('unit', 11) + pad('shardvault', 12) + pad('peer', 12) + pad('ratio', 7) + 'peer');
for (const r of results) {
  console.log(pad(r.op, 44) + pad(r.unit, 11) + pad(r.shardvault.toFixed(1), 12) +
    pad(r.peer ? r.peer.toFixed(1) : '-', 12) + pad(r.ratio ? r.ratio.toFixed(2) : '-', 7) + r.peer_name);
}
mkdirSync(path.join(root, 'bench', 'out'), { recursive: true });
writeFileSync(path.join(root, 'bench', 'out', 'location.json'), JSON.stringify({
  benchmark: 'location', date: new Date().toISOString(), large_mib: largeMiB, small_count: smallCount,
  small_kib: smallKiB, threads, concurrency, results,
}, null, 2) + '\n');
console.log(`\nwrote bench/out/location.json`);
