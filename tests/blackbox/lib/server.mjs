// Starts the real shardvault binary and talks HTTP to it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { removeAtExit } from './reap.mjs';

export const BIN = process.env.SHARDVAULT_BIN;
if (!BIN) throw new Error('SHARDVAULT_BIN is not set: run the suite through scripts/test.sh');

export function tempDir(prefix = 'sv-test-') {
  return removeAtExit(mkdtempSync(path.join(tmpdir(), prefix)));
}

// Starts `shardvault serve` on a free port; resolves once it listens.
export async function startServer({ dataDir = tempDir(), env = {}, args = [] } = {}) {
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...args], {
    env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s; stderr:\n${stderr}`)), 20000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/listening on (https?:\/\/[0-9.]+:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${sig}); stderr:\n${stderr}`));
    });
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const srv = {
    url, proc, dataDir, exited,
    get stderr() { return stderr; },
    get stdout() { return stdout; },
    async req(method, p, body, headers = {}) {
      const init = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
        if (!init.headers['content-type']) init.headers['content-type'] = 'application/json';
      }
      const res = await fetch(url + p, init);
      const text = await res.text();
      let json;
      try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
      return { status: res.status, json, text, headers: res.headers };
    },
    // Graceful stop: SIGTERM, resolves with the exit status.
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      return exited;
    },
    cleanup() { rmSync(dataDir, { recursive: true, force: true }); },
  };
  return srv;
}

// Deterministic pseudo-random numbers so failures can be reproduced.
export function rng(seed = 42) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uuidFrom(rand) {
  const h = [];
  for (let i = 0; i < 16; i++) h.push(Math.floor(rand() * 256).toString(16).padStart(2, '0'));
  h[6] = '4' + h[6][1];
  h[8] = ((parseInt(h[8], 16) & 0x3f) | 0x80).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

// float32 rounding, as the server stores vectors.
export const f32 = (x) => Math.fround(x);
export function vec(rand, dim) {
  return Array.from({ length: dim }, () => f32(rand() * 2 - 1));
}

// The server stores float32 and prints the shortest text that reads back as
// the same float32, so compare vectors after rounding what it printed.
export function f32deep(x) {
  if (typeof x === 'number') return Math.fround(x);
  if (Array.isArray(x)) return x.map(f32deep);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, f32deep(v)]));
  return x;
}

// Runs the CLI asynchronously (the server in this process keeps answering
// meanwhile): {status, stdout, stderr}.
export function runCli(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}
