// Helpers for the location black-box tests: run build/tests/location_tool and awscli.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export function toolPath() {
  const build = process.env.SV_BUILD_DIR;
  if (!build) throw new Error('SV_BUILD_DIR is not set: run the suite through scripts/test.sh or set it to the build dir');
  const p = path.join(build, 'tests', 'location_tool');
  if (!existsSync(p)) throw new Error(`${p} is missing: build the location module (SV_MODULES includes location)`);
  return p;
}

// Deterministic bytes that differ per offset, so misplaced ranges are caught.
export function pattern(n, seed = 1) {
  const b = Buffer.allocUnsafe(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 255;
  }
  return b;
}

// Runs location_tool asynchronously (in-process proxies keep working).
// Resolves { status, stdout: Buffer, stderr: string, code } where code is the
// sv_strerror name from "error[<name>]: ..." or null.
export function runTool(args, { env = {}, input = null, timeoutMs = 60000, onSpawn = null } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath(), args, {
      env: { ...process.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => { err += d; });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const m = /error\[([^\]]+)\]/.exec(err);
      resolve({ status: status ?? signal, stdout: Buffer.concat(out), stderr: err, code: m ? m[1] : null });
    });
    if (onSpawn) onSpawn(child);
    else if (input !== null) child.stdin.end(input);
    else child.stdin.end();
  });
}

// Runs awscli against an s3rver started by lib/s3.mjs; rejects with its stderr on failure.
export function runAws(s3, args) {
  return new Promise((resolve, reject) => {
    const child = spawn('aws', ['--endpoint-url', s3.endpoint, ...args], {
      env: { ...process.env, ...s3.env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => reject(new Error(`awscli (aws) could not be started: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`aws ${args.join(' ')}: exit ${code}: ${err}`))));
  });
}
