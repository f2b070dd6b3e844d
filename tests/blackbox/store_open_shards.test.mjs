// Open shards are bounded: a server with a small file-handle limit serves a
// collection of many shards and still writes to every other collection
// (before the bound, each shard kept its RocksDB open for ever and one large
// collection exhausted the handles: "Too many open files").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BIN, tempDir, rng, uuidFrom } from './lib/server.mjs';

async function startLimited(nofile, env = {}) {
  const dataDir = tempDir();
  const proc = spawn('bash', ['-c', `ulimit -n ${nofile} && exec "$0" serve --listen 127.0.0.1:0 --data-dir "$1"`, BIN, dataDir],
    { env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((res, rej) => {
    proc.stdout.on('data', (d) => { out += d; const m = out.match(/listening on (http:\/\/[0-9.:]+)/); if (m) res(m[1]); });
    proc.on('exit', (c) => rej(new Error(`exited ${c}: ${err}`)));
  });
  const req = async (m, p, body, ct = 'application/json') => {
    const r = await fetch(url + p, { method: m, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': ct } });
    const text = await r.text();
    return { status: r.status, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
  };
  return { proc, req, dataDir, stderr: () => err };
}

test('a 256-shard collection under a 512-handle limit: every write lands, open shards stay bounded', async () => {
  const s = await startLimited(512);
  try {
    let r = await s.req('POST', '/v1/collections', { name: 'Wide', shards: 256, vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    r = await s.req('POST', '/v1/collections', { name: 'Other', vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    const rand = rng(5);
    const ids = [];
    for (let b = 0; b < 4; b++) {
      const lines = [];
      for (let i = 0; i < 1000; i++) {
        const id = uuidFrom(rand);
        ids.push(id);
        lines.push(JSON.stringify({ collection: 'Wide', id, vector: [i, b] }));
      }
      r = await s.req('POST', '/v1/batch/objects', lines.join('\n'), 'application/x-ndjson');
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.equal(r.json.failed, 0, r.text.slice(0, 300));
    }
    r = await s.req('POST', '/v1/collections/Other/objects', { vector: [1, 2] });
    assert.equal(r.status, 200, r.text);
    for (const id of ids.slice(0, 300)) {
      r = await s.req('GET', `/v1/collections/Wide/objects/${id}`);
      assert.equal(r.status, 200, r.text);
    }
    const m = (await s.req('GET', '/metrics')).text;
    const open = Number(m.match(/^shardvault_shards_open (\d+)/m)[1]);
    const max = Number(m.match(/^shardvault_shards_open_max (\d+)/m)[1]);
    assert.equal(max, 16); // (512 - 256) / 16
    assert.ok(open <= max + 2, `open ${open} max ${max}`); // + the shards in use at that instant
    const shards = (await s.req('GET', '/v1/collections/Wide/shards')).json.shards;
    assert.equal(shards.reduce((a, x) => a + x.objects, 0), 4000);
    assert.doesNotMatch(s.stderr(), /Too many open files/);
  } finally {
    s.proc.kill('SIGTERM');
    await new Promise((res) => s.proc.on('exit', res));
  }
});
