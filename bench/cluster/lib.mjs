// Shared by the cluster benches: shardvault nodes as child processes, and a
// JSON request helper.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.SHARDVAULT_BIN || path.join(root, 'build/shardvault');

// Started nodes, in order; stopNodes() ends them all.
export const procs = [];

// A node with its data in dir (made when missing); resolves once it listens.
export async function startNode(dir, args, env = {}) {
  mkdirSync(dir, { recursive: true });
  const p = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  const url = await new Promise((res) => p.stdout.on('data', (d) => { out += d; const m = out.match(/listening on (http:\/\/[0-9.:]+)/); if (m) res(m[1]); }));
  const s = { p, dir, url };
  procs.push(s);
  return s;
}

// SIGTERM to every node started, waiting for each to exit.
export async function stopNodes() {
  for (const s of procs) {
    s.p.kill('SIGTERM');
    await new Promise((res) => (s.p.exitCode !== null ? res() : s.p.on('exit', res)));
  }
}

// A request; a non-string body is sent as JSON. {status, text, json}.
export async function reqJson(s, m, p, body, h = { 'content-type': 'application/json' }) {
  const r = await fetch(s.url + p, { method: m, body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body), headers: h });
  const text = await r.text();
  return { status: r.status, text, json: text ? JSON.parse(text) : undefined };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
