// Flushes and compactions write with O_DIRECT where the data directory's
// filesystem takes it (SHARDVAULT_DIRECT_IO=auto, the default; docs/engine.md).
// Checked here: the probe's decision is logged once per filesystem and leaves
// no file behind; objects written past several memtable flushes read back
// whole after a kill -9 and after a clean restart, with the mode on and off;
// a bad value stops the server with a message naming the variable.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startServer, tempDir, BIN, rng } from './lib/server.mjs';

const DIM = 128;
const N = 64000; // ~0.56 KB encoded each: two 16 MiB memtables flushed while writing

function bodyOf(from, to, rand) {
  const lines = [];
  for (let i = from; i < to; i++) {
    const v = Array.from({ length: DIM }, () => Math.round((rand() * 2 - 1) * 1e6) / 1e6);
    lines.push(JSON.stringify({ collection: 'Dio', properties: { n: i, s: `object ${i}` }, vector: v }));
  }
  return lines.join('\n') + '\n';
}

async function fill(srv) {
  let r = await srv.req('POST', '/v1/collections', { name: 'Dio', shards: 1, vectors: { default: { dim: DIM } }, properties: [{ name: 'n', type: 'int' }, { name: 's', type: 'text' }] });
  assert.equal(r.status, 200, r.text);
  const rand = rng(7);
  for (let at = 0; at < N; at += 3000) {
    r = await srv.req('POST', '/v1/batch/objects', bodyOf(at, Math.min(N, at + 3000), rand), { 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
  }
}

async function countAll(srv) {
  const c = await srv.req('GET', '/v1/collections/Dio/shards');
  return c.json.shards.reduce((a, s) => a + s.objects, 0);
}

async function sumN(srv) {
  let sum = 0, seen = 0, after = '';
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/Dio/objects?limit=1000${after ? `&after=${after}` : ''}&include=vector`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    for (const o of r.json.objects) { sum += o.properties.n; seen++; assert.equal(o.vector.length, DIM); }
    if (r.json.objects.length < 1000) break;
    after = r.json.objects[r.json.objects.length - 1].id;
  }
  return { sum, seen };
}

for (const mode of ['auto', 'off']) {
  test(`SHARDVAULT_DIRECT_IO=${mode}: objects past several flushes survive kill -9 and a restart`, async () => {
    const dir = tempDir('sv-dio-');
    const env = { SHARDVAULT_DIRECT_IO: mode, SHARDVAULT_LOG_LEVEL: 'info' };
    let srv = await startServer({ dataDir: dir, env });
    try {
      await fill(srv);
      const logged = srv.stderr.match(/direct I\/O for flushes and compactions[^\n]*/g) || [];
      if (mode === 'off') assert.equal(logged.length, 0, logged.join('\n'));
      else {
        assert.ok(logged.length >= 1, srv.stderr.slice(-2000));
        assert.match(logged[0], /direct=(on|off \(the filesystem refuses O_DIRECT\))/);
        // once per filesystem: the catalog and the shard share one
        assert.equal(logged.length, 1, logged.join('\n'));
      }
      // memtables were flushed while writing (table files exist before any close)
      const ssts = [];
      const find = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { if (e.isDirectory()) find(path.join(d, e.name)); else if (e.name.endsWith('.sst') && d.includes('shards')) ssts.push(e.name); } };
      find(dir);
      assert.ok(ssts.length >= 1, 'no table file was flushed');
      await srv.kill9();
      srv = await startServer({ dataDir: dir, env });
      assert.equal(await countAll(srv), N);
      const want = (N * (N - 1)) / 2;
      assert.deepEqual(await sumN(srv), { sum: want, seen: N });
      await srv.stop();
      srv = await startServer({ dataDir: dir, env });
      assert.deepEqual(await sumN(srv), { sum: want, seen: N });
      const stray = [];
      const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { if (e.name.startsWith('.sv-direct-probe')) stray.push(path.join(d, e.name)); if (e.isDirectory()) walk(path.join(d, e.name)); } };
      walk(dir);
      assert.deepEqual(stray, []);
    } finally {
      await srv.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a bad SHARDVAULT_DIRECT_IO stops the server and names the variable', () => {
  const dir = tempDir('sv-dio-bad-');
  const r = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], { env: { ...process.env, SHARDVAULT_DIRECT_IO: 'always' }, encoding: 'utf8', timeout: 20000 });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /SHARDVAULT_DIRECT_IO must be auto or off/);
});
