// shardvault snapshot create|list|describe|drop|restore through the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, runCli as run } from './lib/server.mjs';
import { createCollection, load, listAll } from './lib/snapshot.mjs';

test('snapshot commands with --wait, progress and errors', async () => {
  const srv = await startServer();
  const env = { SHARDVAULT_URL: srv.url };
  try {
    await createCollection(srv, 'Cli', 2);
    await load(srv, 'Cli', 1000, 2);
    const help = await run(['snapshot', '--help'], env);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /snapshot create COLLECTION NAME/);
    assert.equal((await run(['snapshot', 'frob'], env)).status, 2);

    const c = await run(['snapshot', 'create', 'Cli', 'one', '--description', 'from the cli', '--wait'], env);
    assert.equal(c.status, 0, c.stderr);
    const rec = JSON.parse(c.stdout);
    assert.equal(rec.status, 'COMMITTED');
    assert.equal(rec.description, 'from the cli');
    assert.match(c.stderr, /snapshot: [0-9.]+ MB in/);

    const dup = await run(['snapshot', 'create', 'Cli', 'one'], env);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /409.*already exists/);
    const bad = await run(['snapshot', 'create', 'Cli', 'bad.name'], env);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /422/);

    const list = await run(['snapshot', 'list', 'Cli'], env);
    assert.equal(list.status, 0);
    assert.deepEqual(JSON.parse(list.stdout).snapshots.map((s) => s.name), ['one']);
    const desc = await run(['snapshot', 'describe', 'Cli', 'one'], env);
    assert.equal(JSON.parse(desc.stdout).objects, 1000);

    const r = await run(['snapshot', 'restore', 'Cli', 'one', '--target', 'CliCopy', '--wait'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).state, 'COMPLETED');
    assert.match(r.stderr, /restore: [0-9.]+ MB in/);
    assert.equal((await listAll(srv, 'CliCopy')).size, 1000);
    const again = await run(['snapshot', 'restore', 'Cli', 'one', '--target', 'CliCopy'], env);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /409/);

    const noWait = await run(['snapshot', 'restore', 'Cli', 'one', '--target', 'CliCopy2'], env);
    assert.equal(noWait.status, 0, noWait.stderr);
    const jobId = JSON.parse(noWait.stdout).jobId;
    const job = await run(['snapshot', 'job', jobId, '--wait'], env);
    assert.equal(job.status, 0, job.stderr);
    assert.equal(JSON.parse(job.stdout).target, 'CliCopy2');

    assert.equal((await run(['snapshot', 'drop', 'Cli', 'one'], env)).status, 0);
    const gone = await run(['snapshot', 'describe', 'Cli', 'one'], env);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /404/);
    const gc = await run(['snapshot', 'gc'], env);
    assert.equal(gc.status, 0, gc.stderr);
    assert.ok('blobsDeleted' in JSON.parse(gc.stdout));
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
