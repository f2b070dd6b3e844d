// Verify finds each injected fault (deleted blob, truncated blob, flipped
// byte with readData, garbage manifest, orphan blob), marks the snapshots
// concerned "damaged", finds nothing in a clean store, and deletes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, unlinkSync, truncateSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { createCollection, load, manifestBlobs, blobsOnDisk } from './lib/snapshot.mjs';
import { runAgent, waitJobDone } from './lib/maintenance.mjs';

const blobPath = (loc, hex) => path.join(loc, 'blobs', hex.slice(0, 2), hex);

test('verify: a clean store has no issues; each injected fault is found and named', async () => {
  const loc = tempDir('sv-loc-');
  const srv = await startServer({ env: { SHARDVAULT_LOCATION: `file://${loc}` } });
  try {
    // Three collections, each with its own blobs (different data, one shard).
    for (const [i, c] of ['A', 'B', 'C', 'D'].entries()) {
      await createCollection(srv, c, 1);
      await load(srv, c, 300, 50 + i);
      assert.equal((await srv.req('POST', `/v1/collections/${c}/snapshots?wait=true`, { name: 's' })).json.status, 'COMMITTED');
    }
    const clean = await runAgent(srv, 'verify', { readData: true, parallelism: 4 });
    assert.equal(clean.state, 'SUCCEEDED', clean.reason);
    assert.deepEqual(clean.result.issues, []);
    assert.equal(clean.result.manifestsChecked, 4);
    assert.ok(clean.result.blobsChecked > 0);
    assert.ok(clean.result.bytesRead > 0);
    assert.equal((await srv.req('GET', '/v1/collections/A/snapshots/s')).json.damaged, false);

    // Pick one blob unique to each of A, B, C (the largest: an SST file).
    const own = {};
    const all = {};
    for (const c of ['A', 'B', 'C', 'D']) all[c] = manifestBlobs(loc, c, 's');
    for (const c of ['A', 'B', 'C']) {
      const others = new Set(['A', 'B', 'C', 'D'].filter((x) => x !== c).flatMap((x) => [...all[x].blobs]));
      const files = all[c].manifest.shards.flatMap((s) => s.files).filter((f) => !others.has(f.blob) && f.size > 16);
      files.sort((x, y) => y.size - x.size);
      assert.ok(files.length > 0, `a blob unique to ${c}`);
      own[c] = files[0];
    }
    unlinkSync(blobPath(loc, own.A.blob)); // missing
    truncateSync(blobPath(loc, own.B.blob), own.B.size - 1); // size mismatch
    {
      // flipped byte: same size, only readData sees it. The file may be a hard
      // link of the server's own files, so rewrite it as a new inode.
      const p = blobPath(loc, own.C.blob);
      const buf = readFileSync(p);
      buf[Math.floor(buf.length / 2)] ^= 0xff;
      unlinkSync(p);
      writeFileSync(p, buf);
    }
    const orphan = 'ab'.repeat(32);
    mkdirSync(path.join(loc, 'blobs', 'ab'), { recursive: true });
    writeFileSync(blobPath(loc, orphan), 'nobody references me');
    const before = blobsOnDisk(loc);

    const quick = await runAgent(srv, 'verify', {});
    assert.equal(quick.state, 'SUCCEEDED', quick.reason);
    const kinds = (r) => r.result.issues.map((i) => i.kind).sort();
    assert.deepEqual(kinds(quick), ['missing-blob', 'orphan-blob', 'size-mismatch']);
    assert.equal(quick.result.bytesRead, 0);
    assert.equal(quick.result.orphansChecked, true);

    const full0 = await runAgent(srv, 'verify', { readData: true });
    assert.deepEqual(kinds(full0), ['corrupt-blob', 'missing-blob', 'orphan-blob', 'size-mismatch']);
    assert.equal((await srv.req('GET', '/v1/collections/D/snapshots/s')).json.damaged, false);

    // A garbage manifest: reported; orphans are then not judged (its blobs
    // would look unreferenced).
    writeFileSync(path.join(loc, 'snapshots', 'D', 's', 'manifest.json'), '{"format_version": 1, garbage');
    const full = await runAgent(srv, 'verify', { readData: true });
    assert.deepEqual(kinds(full), ['corrupt-blob', 'missing-blob', 'size-mismatch', 'unreadable-manifest']);
    assert.equal(full.result.orphansChecked, false);
    const by = Object.fromEntries(full.result.issues.map((i) => [i.kind, i]));
    assert.equal(by['missing-blob'].blob, own.A.blob);
    assert.deepEqual(by['missing-blob'].snapshots, ['A/s']);
    assert.equal(by['size-mismatch'].blob, own.B.blob);
    assert.deepEqual(by['size-mismatch'].snapshots, ['B/s']);
    assert.equal(by['corrupt-blob'].blob, own.C.blob);
    assert.deepEqual(by['corrupt-blob'].snapshots, ['C/s']);
    assert.deepEqual(by['unreadable-manifest'].snapshots, ['D/s']);
    assert.equal(Object.fromEntries(full0.result.issues.map((i) => [i.kind, i]))['orphan-blob'].blob, orphan);
    for (const i of full.result.issues) assert.equal(typeof i.detail, 'string');

    for (const c of ['A', 'B', 'C', 'D']) {
      const g = await srv.req('GET', `/v1/collections/${c}/snapshots/s`);
      assert.equal(g.json.damaged, true, `${c}/s is damaged`);
    }
    // Never deletes anything.
    assert.deepEqual(blobsOnDisk(loc), before);
    // No body: every default; the job's counters are live and then complete.
    const nb = await srv.req('POST', '/v1/maintenance/verify');
    assert.equal(nb.status, 202, nb.text);
    const nj = await waitJobDone(srv, nb.json.jobId);
    assert.equal(nj.state, 'SUCCEEDED');
    assert.equal(nj.itemsDone, nj.itemsTotal);
    assert.equal(nj.result.readData, false);
    // that size-only verify cannot see C's flipped byte: it leaves the mark the readData one set
    assert.equal((await srv.req('GET', '/v1/collections/C/snapshots/s')).json.damaged, true, 'C/s stays damaged');
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
