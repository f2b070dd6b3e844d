// shardvault maintenance rebuild|verify|recovery-kit|status through the CLI:
// the disaster-recovery path an operator types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir, runCli as run } from './lib/server.mjs';
import { createCollection, load } from './lib/snapshot.mjs';
import { snapshotTable } from './lib/maintenance.mjs';

test('maintenance commands: kit, rebuild on a fresh node with progress, verify, status', async () => {
  const loc = tempDir('sv-loc-');
  const senv = { SHARDVAULT_LOCATION: `file://${loc}` };
  let srv = await startServer({ env: senv });
  try {
    await createCollection(srv, 'Cli', 1);
    await load(srv, 'Cli', 200, 3);
    for (const n of ['a', 'b']) assert.equal((await srv.req('POST', `/v1/collections/Cli/snapshots?wait=true`, { name: n })).json.status, 'COMMITTED');
    const expected = await snapshotTable(srv, ['Cli']);
    let env = { SHARDVAULT_URL: srv.url };
    const help = await run(['maintenance', '--help'], env);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /maintenance rebuild/);
    assert.equal((await run(['maintenance', 'frob'], env)).status, 2);
    // --help on an agent prints its usage and starts nothing; a mistyped flag starts nothing
    for (const sub of ['rebuild', 'verify', 'analyze', 'move']) {
      const h = await run(['maintenance', sub, '--help'], env);
      assert.equal(h.status, 0, `${sub} --help: ${h.stderr}`);
      assert.match(h.stdout, /usage: shardvault maintenance/);
    }
    // any command: --help anywhere prints its usage and does nothing
    const snapHelp = await run(['snapshot', 'create', 'Cli', 'nothelp', '--help'], env);
    assert.equal(snapHelp.status, 0);
    assert.match(snapHelp.stdout, /usage: shardvault snapshot/);
    assert.equal((await srv.req('GET', '/v1/collections/Cli/snapshots/nothelp')).status, 404);
    const typo = await run(['maintenance', 'rebuild', '--dryrun'], env);
    assert.equal(typo.status, 2);
    assert.match(typo.stderr, /unknown argument '--dryrun'.*nothing was started/);
    assert.equal((await srv.req('GET', '/v1/jobs?kind=maintenance')).json.jobs.length, 0, 'no agent ran');
    const kit = await run(['maintenance', 'recovery-kit'], env);
    assert.equal(kit.status, 0, kit.stderr);
    assert.match(kit.stdout, /^checksum: sha256:/m);
    const kitFile = path.join(loc, '..', `kit-${process.pid}.txt`);
    writeFileSync(kitFile, kit.stdout);

    await srv.kill9();
    rmSync(srv.dataDir, { recursive: true, force: true });
    rmSync(path.join(loc, 'store.json'));
    srv = await startServer({ env: senv });
    env = { SHARDVAULT_URL: srv.url };
    const st = await run(['maintenance', 'status'], env);
    assert.equal(st.status, 0);
    assert.equal(JSON.parse(st.stdout).descriptor, 'missing');
    const refused = await run(['maintenance', 'rebuild', '--source', 'full-scan'], env);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /recovery kit/);
    const dry = await run(['maintenance', 'rebuild', '--source', 'full-scan', '--dry-run', '--recovery-kit', kitFile], env);
    assert.equal(dry.status, 0, dry.stderr);
    assert.equal(JSON.parse(dry.stdout).result.manifestsIndexed, 2);
    assert.deepEqual((await snapshotTable(srv, ['Cli'])).Cli, [], 'a dry run writes nothing');
    const rb = await run(['maintenance', 'rebuild', '--source', 'full-scan', '--parallelism', '2', '--recovery-kit', kitFile], env);
    assert.equal(rb.status, 0, rb.stderr);
    assert.match(rb.stderr, /rebuild: 2 manifests in [0-9.]+ s/); // not a terminal: one final line
    const job = JSON.parse(rb.stdout);
    assert.equal(job.state, 'SUCCEEDED');
    assert.equal(job.result.descriptorRewritten, true);
    assert.deepEqual(await snapshotTable(srv, ['Cli']), expected);
    const v = await run(['maintenance', 'verify', '--read-data'], env);
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(JSON.parse(v.stdout).result.issues, []);
    const an = await run(['maintenance', 'analyze', '--blobs', '10', '--max-blob-bytes', '64Ki', '--concurrency', '2'], env);
    assert.equal(an.status, 0, an.stderr);
    assert.equal(JSON.parse(an.stdout).result.conditionalCreate, 'exclusive');
    rmSync(kitFile);
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
