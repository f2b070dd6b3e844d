// `shardvault export create|status|cancel|list` against a running server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startServer, BIN, rng, uuidFrom, vec } from './lib/server.mjs';
import { batch } from './lib/export.mjs';

test('export CLI: create --wait, status, list, cancel', async (t) => {
  const srv = await startServer();
  t.after(async () => { await srv.stop(); srv.cleanup(); });
  assert.equal((await srv.req('POST', '/v1/collections', { name: 'Cli', vectors: { default: { dim: 4 } }, properties: [{ name: 'n', type: 'int' }] })).status, 200);
  const rand = rng(1);
  await batch(srv, Array.from({ length: 500 }, (_, i) => ({ collection: 'Cli', id: uuidFrom(rand), vector: vec(rand, 4), properties: { n: i } })));
  const cli = (...args) => spawnSync(BIN, ['--url', srv.url, 'export', ...args], { encoding: 'utf8' });

  const c = cli('create', 'cli-1', '--include', 'Cli', '--schema', 'weaviate', '--compression', 'snappy', '--wait');
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /export: SUCCESS, 500 objects, [\d.]+ MB/);
  const final = JSON.parse(c.stdout);
  assert.equal(final.status, 'SUCCESS');
  assert.equal(final.objectsTotal, 500);

  const s = cli('status', 'cli-1');
  assert.equal(s.status, 0, s.stderr);
  assert.equal(JSON.parse(s.stdout).id, 'cli-1');
  const l = cli('list');
  assert.equal(l.status, 0, l.stderr);
  assert.deepEqual(JSON.parse(l.stdout).map((e) => e.id), ['cli-1']);
  const x = cli('cancel', 'cli-1');
  assert.equal(x.status, 1);
  assert.match(x.stderr, /HTTP 409.*already finished/);
  const dup = cli('create', 'cli-1');
  assert.equal(dup.status, 1);
  assert.match(dup.stderr, /HTTP 409/);
  const bad = cli('create', 'cli-2', '--include', 'Nope');
  assert.match(bad.stderr, /HTTP 422.*Nope/);
  const nf = cli('status', 'missing', '--backend', 'filesystem');
  assert.match(nf.stderr, /HTTP 404/);
  const u = cli('--help');
  assert.equal(u.status, 0);
  assert.match(u.stdout, /export create ID/);
  // Without --wait the answer is the STARTED document.
  const n = cli('create', 'cli-3');
  assert.equal(n.status, 0, n.stderr);
  assert.equal(JSON.parse(n.stdout).status, 'STARTED');
});
