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

test('user arguments are percent-encoded: they reach the server as one value, never as another URL', async () => {
  const srv = await startServer();
  const env = { SHARDVAULT_URL: srv.url };
  try {
    for (const body of [{ name: 'Enc', vectors: { default: { dim: 1 } } },
      { name: 'EncT', multiTenancy: true, vectors: { default: { dim: 1 } } }]) {
      assert.equal((await srv.req('POST', '/v1/collections', body)).status, 200);
    }
    assert.equal((await srv.req('POST', '/v1/collections/EncT/tenants', { tenants: [{ name: 't1' }] })).status, 200);
    const id = '00000000-0000-4000-8000-0000000000aa';
    assert.equal((await srv.req('PUT', `/v1/collections/Enc/objects/${id}`, { vector: [1] })).status, 200);
    assert.equal((await srv.req('PUT', `/v1/collections/EncT/objects/${id}?tenant=t1`, { vector: [1] })).status, 200);

    // A '?' in the id used to start a query: the CLI fetched and deleted object <id>.
    const got = run(['get', 'Enc', `${id}?x=1`], env);
    assert.equal(got.status, 1, got.stdout);
    assert.match(got.stderr, /HTTP 422.*UUID/);
    const del = run(['delete', 'Enc', `${id}#frag`], env);
    assert.equal(del.status, 1, del.stdout);
    assert.match(del.stderr, /HTTP 422/);
    assert.equal((await srv.req('GET', `/v1/collections/Enc/objects/${id}`)).status, 200, 'the object is still there');

    // A '/' in a name used to reach another endpoint (/v1/collections/Enc/tenants).
    const slash = run(['collections', 'get', 'Enc/tenants'], env);
    assert.equal(slash.status, 1, slash.stdout);
    assert.match(slash.stderr, /HTTP 400.*%2F/);

    // A tenant with a space and '&' is one value (a bad tenant), not tenant "t1" plus a parameter.
    const ten = run(['get', 'EncT', id, '--tenant', 't1&limit=1'], env);
    assert.equal(ten.status, 1, ten.stdout);
    assert.match(ten.stderr, /HTTP 4\d\d.*tenant/i);
    const sp = run(['list', 'EncT', '--tenant', 't1 x'], env);
    assert.equal(sp.status, 1, sp.stdout);
    assert.match(sp.stderr, /HTTP 4\d\d.*tenant/i);
    const ok = run(['get', 'EncT', id, '--tenant', 't1'], env);
    assert.equal(ok.status, 0, ok.stderr);

    // import puts --collection and --tenant into JSON: a '"' in them is escaped, not spliced.
    const file = path.join(srv.dataDir, 'enc.ndjson');
    writeFileSync(file, `${JSON.stringify({ vector: [1] })}\n${JSON.stringify({ vector: [2] })}\n`);
    // (Unescaped, this name imported both objects into EncT's tenant t1.)
    const imp = run(['import', file, '--collection', 'EncT","tenant":"t1'], env);
    assert.equal(imp.status, 1);
    assert.match(imp.stdout, /imported 0, failed 2/, imp.stderr);
    assert.match(imp.stderr, /collection/);
    const listed = await srv.req('GET', '/v1/collections/EncT/objects?tenant=t1');
    assert.equal(listed.json.objects.length, 1, 'only the object put above');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
