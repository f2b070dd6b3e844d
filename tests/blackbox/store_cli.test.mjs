// The command line: --help everywhere, collections, import with a summary, get/delete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, startServer, rng, uuidFrom, vec } from './lib/server.mjs';

const run = (args, env = {}) => spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, ...env } });

test('--help works for every command and unknown input is refused', () => {
  for (const args of [['--help'], ['serve', '--help'], ['collections', '--help'], ['tenants', '--help'],
    ['import', '--help'], ['get', '--help'], ['delete', '--help'], ['list', '--help']]) {
    const r = run(args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /usage|shardvault/i);
  }
  const bad = run(['frobnicate']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown command/);
  const badFlag = run(['serve', '--listen', 'nowhere']);
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /HOST:PORT/);
  const badSize = run(['serve', '--max-body-bytes', 'lots']);
  assert.equal(badSize.status, 2);
  const down = run(['--url', 'http://127.0.0.1:1', 'collections', 'list']);
  assert.equal(down.status, 1);
  assert.match(down.stderr, /cannot reach/);
});

test('collections, import, get, delete through the CLI', async () => {
  const srv = await startServer();
  const env = { SHARDVAULT_URL: srv.url };
  const created = run(['collections', 'create', JSON.stringify({ name: 'Cli', shards: 2, vectors: { default: { dim: 3 } }, properties: [{ name: 'n', type: 'int' }] })], env);
  assert.equal(created.status, 0, created.stderr);
  assert.match(created.stdout, /"name": "Cli"/);
  const dup = run(['collections', 'create', JSON.stringify({ name: 'Cli' })], env);
  assert.equal(dup.status, 1);
  assert.match(dup.stderr, /409.*already exists/);

  const rand = rng(5);
  const ids = [];
  const lines = [];
  for (let i = 0; i < 2500; i++) {
    const id = uuidFrom(rand);
    ids.push(id);
    lines.push(JSON.stringify({ id, vector: vec(rand, 3), properties: { n: i } }));
  }
  lines.splice(10, 0, JSON.stringify({ id: 'broken', vector: [1, 2, 3] }));
  const file = path.join(srv.dataDir, 'objects.ndjson');
  writeFileSync(file, lines.join('\n') + '\n');
  const imp = run(['import', file, '--collection', 'Cli', '--batch-size', '700'], env);
  assert.equal(imp.status, 1, 'a failed object makes the exit status 1');
  assert.match(imp.stdout, /imported 2500, failed 1/);
  assert.match(imp.stderr, /broken|uuid/i);

  const got = run(['get', 'Cli', ids[42]], env);
  assert.equal(got.status, 0, got.stderr);
  assert.equal(JSON.parse(got.stdout).properties.n, 42);
  const list = run(['list', 'Cli', '--limit', '5'], env);
  assert.equal(JSON.parse(list.stdout).objects.length, 5);
  assert.equal(run(['delete', 'Cli', ids[42]], env).status, 0);
  const gone = run(['get', 'Cli', ids[42]], env);
  assert.equal(gone.status, 1);
  assert.match(gone.stderr, /404/);
  const l = run(['collections', 'list'], env);
  assert.match(l.stdout, /"Cli"/);
  assert.equal(run(['collections', 'delete', 'Cli'], env).status, 0);
  await srv.stop();
  srv.cleanup();
});
