// Disaster recovery: a node's data directory is lost (kill -9, rm -rf); a
// fresh node on the same location runs `maintenance rebuild` and gets every
// snapshot back with the same objects and bytes, and restoring each gives the
// source. On file:// and s3rver, with full-scan and auto (checkpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { startS3 } from './lib/s3.mjs';
import { createCollection, load, listAll, waitJob } from './lib/snapshot.mjs';
import { until, runAgent, snapshotTable, waitJobDone } from './lib/maintenance.mjs';

const COLLS = ['Alpha', 'Beta', 'Gamma'];
const FAST = { SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL: '200ms', SHARDVAULT_MAINTENANCE_LEASE_TTL: '2s' };

async function populate(srv) {
  const source = {};
  for (const [i, c] of COLLS.entries()) {
    await createCollection(srv, c, 2);
    await load(srv, c, 150, 10 + i);
    for (const name of ['s1', 's2']) {
      if (name === 's2') await load(srv, c, 50, 100 + i);
      const r = await srv.req('POST', `/v1/collections/${c}/snapshots?wait=true`, { name });
      assert.equal(r.json.status, 'COMMITTED', r.text);
    }
    source[c] = await listAll(srv, c); // as of s2
  }
  const sch = await srv.req('POST', '/v1/schedules', { name: 'nightly', kind: 'snapshot', collection: 'Alpha', every: '1h' });
  assert.equal(sch.status, 201, sch.text);
  return source;
}

async function checkRestores(srv, source, expected) {
  assert.deepEqual(await snapshotTable(srv, COLLS), expected);
  for (const c of COLLS) {
    const r = await srv.req('POST', `/v1/collections/${c}/snapshots/s2/restore`, { target: `${c}Back` });
    assert.equal(r.status, 202, r.text);
    const j = await waitJob(srv, r.json.jobId);
    assert.equal(j.state, 'COMPLETED', j.reason);
    const back = await listAll(srv, `${c}Back`);
    assert.equal(back.size, source[c].size);
    for (const [id, o] of source[c]) {
      assert.deepEqual(back.get(id).properties, o.properties);
      assert.deepEqual(back.get(id).vector, o.vector);
    }
  }
}

async function disaster({ env, locationUrl, source: src, locDir }) {
  let srv = await startServer({ env: { ...env, ...FAST, SHARDVAULT_LOCATION: locationUrl } });
  let source, expected, st, kit, ckKey;
  try {
    source = await populate(srv);
    expected = await snapshotTable(srv, COLLS);
    assert.equal(expected.Alpha.length, 2);
    kit = await srv.req('GET', '/v1/maintenance/recovery-kit');
    assert.equal(kit.status, 200);
    assert.match(kit.text, /^checksum: sha256:[0-9a-f]{64}$/m);
    st = await srv.req('GET', '/v1/maintenance/status');
    assert.equal(st.json.descriptor, 'ok');
    assert.ok(kit.text.includes(`store_id: ${st.json.storeId}`));
    if (src === 'auto') {
      // Coalesced: wait for a checkpoint written after the last commit (both server clock).
      let lastCommit = 0;
      for (const c of COLLS) {
        for (const s of (await srv.req('GET', `/v1/collections/${c}/snapshots`)).json.snapshots) lastCommit = Math.max(lastCommit, s.committedAt);
      }
      const keyTime = (k) => { const m = k.match(/(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(\d{3})Z/); return Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6], m[7]); };
      // Commits are followed by coalesced checkpoints on their own...
      await until('an automatic checkpoint', async () => (await srv.req('GET', '/v1/maintenance/status')).json.lastCheckpoint);
      // ...but one written within the same instant as the last commit may not hold it: ask for
      // one now, started after every record was written (deterministic under any load).
      assert.equal((await srv.req('POST', '/v1/maintenance/checkpoint', 'x')).status, 400, 'a malformed body is refused');
      assert.equal((await srv.req('POST', '/v1/maintenance/checkpoint', { now: true })).status, 422, 'it takes no body');
      const ck = await srv.req('POST', '/v1/maintenance/checkpoint');
      assert.equal(ck.status, 200, ck.text);
      assert.ok(keyTime(ck.json.key) >= lastCommit, ck.text);
      ckKey = ck.json.key;
      // One snapshot newer than the checkpoint's content, taken right before the crash.
      const r = await srv.req('POST', '/v1/collections/Beta/snapshots?wait=true', { name: 's3' });
      assert.equal(r.json.status, 'COMMITTED');
      expected.Beta = (await snapshotTable(srv, ['Beta'])).Beta;
    }
  } catch (e) {
    await srv.stop();
    srv.cleanup();
    throw e;
  }
  await srv.kill9();
  rmSync(srv.dataDir, { recursive: true, force: true });

  // No overlap: records of manifests older than the checkpoint come from it.
  srv = await startServer({ env: { ...env, ...FAST, SHARDVAULT_LOCATION: locationUrl, SHARDVAULT_MAINTENANCE_CHECKPOINT_OVERLAP_MS: '0' } });
  try {
    assert.equal((await srv.req('GET', '/v1/collections/Alpha/snapshots')).status, 404);
    const st2 = await srv.req('GET', '/v1/maintenance/status');
    assert.equal(st2.json.descriptor, 'unadopted');
    assert.equal(st2.json.locationStoreId, st.json.storeId);
    if (ckKey) {
      // the newest checkpoint in the location is known after a restart too (listed in the background)
      const last = await until('lastCheckpoint after a restart', async () => (await srv.req('GET', '/v1/maintenance/status')).json.lastCheckpoint);
      assert.ok(last >= ckKey && /^catalog\/\d{8}T\d{9}Z\.json\.zst$/.test(last), last);
    }
    // Never two stores in one location: writing is refused until adopted.
    await createCollection(srv, 'Fresh', 1);
    const refused = await srv.req('POST', '/v1/collections/Fresh/snapshots?wait=true', { name: 'x' });
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.json.error[0].message, /maintenance rebuild/);
    // so is an offload (it writes the location): ?wait=true says so with the guard's 409
    const mtr = await srv.req('POST', '/v1/collections', { name: 'FreshMT', vectors: { default: { dim: 2 } }, multiTenancy: true });
    assert.equal(mtr.status, 200, mtr.text);
    assert.equal((await srv.req('POST', '/v1/collections/FreshMT/tenants', [{ name: 't' }])).status, 200);
    const off = await srv.req('PUT', '/v1/collections/FreshMT/tenants?wait=true', [{ name: 't', status: 'OFFLOADED' }]);
    assert.equal(off.status, 409, off.text);
    assert.match(off.text, /did not become OFFLOADED.*maintenance rebuild/);
    assert.equal((await srv.req('DELETE', '/v1/collections/FreshMT')).status, 204);

    const job = await runAgent(srv, 'rebuild', { source: src, parallelism: 4 });
    assert.equal(job.state, 'SUCCEEDED', job.reason);
    const res = job.result;
    const total = Object.values(expected).reduce((n, v) => n + v.length, 0);
    for (const f of ['source', 'checkpointUsed', 'manifestsScanned', 'manifestsIndexed', 'manifestsSkipped',
      'blobsReferenced', 'descriptorRewritten', 'durationMs']) assert.ok(f in res, `result lacks ${f}`);
    assert.equal(res.source, src);
    assert.equal(res.manifestsScanned, total);
    assert.equal(res.manifestsIndexed, total);
    assert.equal(res.manifestsSkipped, 0);
    assert.equal(res.descriptorRewritten, false);
    assert.ok(res.blobsReferenced > 0);
    assert.equal(res.tenantsFound, 0);
    if (src === 'auto') {
      assert.match(res.checkpointUsed, /^catalog\/\d{8}T\d{9}Z\.json\.zst$/);
      assert.ok(res.manifestsFromCheckpoint >= 6, JSON.stringify(res));
    } else {
      assert.equal(res.checkpointUsed, null);
    }
    assert.equal((await srv.req('GET', '/v1/maintenance/status')).json.storeId, st.json.storeId);
    await checkRestores(srv, source, expected);
    // Adopted: writing works again.
    const ok = await srv.req('POST', '/v1/collections/Fresh/snapshots?wait=true', { name: 'x' });
    assert.equal(ok.json.status, 'COMMITTED', ok.text);
    // A second rebuild finds everything in the catalog already.
    const again = await runAgent(srv, 'rebuild', { source: 'full-scan' });
    assert.equal(again.result.manifestsIndexed, 0);
    assert.equal(again.result.manifestsSkipped, again.result.manifestsScanned);
    if (locDir) {
      const ck = readdirSync(path.join(locDir, 'catalog')).filter((f) => f.endsWith('.json.zst'));
      assert.ok(ck.length >= 1 && ck.length <= 5, ck.join());
    }
  } finally {
    await srv.stop();
    srv.cleanup();
  }
}

for (const src of ['full-scan', 'auto']) {
  test(`file://: data dir lost, fresh node, rebuild (${src}) gives every snapshot back`, async () => {
    const loc = tempDir('sv-loc-');
    try {
      await disaster({ env: {}, locationUrl: `file://${loc}`, source: src, locDir: loc });
    } finally { rmSync(loc, { recursive: true, force: true }); }
  });
  test(`s3rver: data dir lost, fresh node, rebuild (${src}) gives every snapshot back`, async () => {
    const s3 = await startS3();
    try {
      await s3.createBucket('drbucket');
      await disaster({ env: s3.env, locationUrl: 's3://drbucket/store-a', source: src });
    } finally { await s3.stop(); }
  });
}

test('store.json deleted: rebuild refused without the kit and with a bad kit, accepted with it', async () => {
  const loc = tempDir('sv-loc-');
  let srv = await startServer({ env: { ...FAST, SHARDVAULT_LOCATION: `file://${loc}` } });
  try {
    await createCollection(srv, 'Alpha', 2);
    await load(srv, 'Alpha', 100, 5);
    assert.equal((await srv.req('POST', '/v1/collections/Alpha/snapshots?wait=true', { name: 's1' })).json.status, 'COMMITTED');
    const source = await listAll(srv, 'Alpha');
    // An offloaded tenant (the registry writes its manifest in the location).
    let r0 = await srv.req('POST', '/v1/collections', { name: 'Mt', multiTenancy: true, vectors: { default: { dim: 16 } } });
    assert.equal(r0.status, 200, r0.text);
    r0 = await srv.req('POST', '/v1/collections/Mt/tenants', { tenants: [{ name: 't1' }] });
    assert.equal(r0.status, 200, r0.text);
    r0 = await srv.req('POST', '/v1/collections/Mt/objects?tenant=t1', { vector: Array(16).fill(0.5), properties: {} });
    assert.equal(r0.status, 200, r0.text);
    r0 = await srv.req('PUT', '/v1/collections/Mt/tenants?wait=true', { tenants: [{ name: 't1', status: 'OFFLOADED' }] });
    assert.equal(r0.json.tenants[0].status, 'OFFLOADED', r0.text);
    const kit = (await srv.req('GET', '/v1/maintenance/recovery-kit')).text;
    await srv.kill9();
    rmSync(srv.dataDir, { recursive: true, force: true });
    unlinkSync(path.join(loc, 'store.json'));
    assert.ok(existsSync(path.join(loc, 'tenants', 'Mt', 't1', 'manifest.json')));

    srv = await startServer({ env: { ...FAST, SHARDVAULT_LOCATION: `file://${loc}` } });
    assert.equal((await srv.req('GET', '/v1/maintenance/status')).json.descriptor, 'missing');
    assert.ok(!existsSync(path.join(loc, 'store.json')), 'a fresh node must not claim a location that holds data');
    const no = await srv.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan' });
    assert.equal(no.status, 422, no.text);
    assert.match(no.json.error[0].message, /recovery ?kit/i);
    const bad = kit.replace(/store_id: ([0-9a-f])/, (m, c) => `store_id: ${c === 'a' ? 'b' : 'a'}`);
    const badRes = await srv.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan', recoveryKit: bad });
    assert.equal(badRes.status, 422, badRes.text);
    assert.match(badRes.json.error[0].message, /checksum/);
    const job = await runAgent(srv, 'rebuild', { source: 'full-scan', recoveryKit: kit });
    assert.equal(job.state, 'SUCCEEDED', job.reason);
    assert.equal(job.result.descriptorRewritten, true);
    // The snapshot record, and the offloaded tenant handed to the registry's hook.
    assert.equal(job.result.manifestsIndexed, 2);
    assert.equal(job.result.tenantsFound, 1);
    assert.equal(job.result.manifestsScanned, 2);
    assert.equal(job.result.manifestsSkipped, 0);
    const mt = await srv.req('GET', '/v1/collections/Mt/tenants');
    assert.equal(mt.status, 200, mt.text);
    assert.deepEqual(mt.json.tenants.map((t) => [t.name, t.status, t.objects]), [['t1', 'OFFLOADED', 1]]);
    assert.ok(existsSync(path.join(loc, 'store.json')));
    assert.equal((await srv.req('GET', '/v1/maintenance/recovery-kit')).text, kit);
    const r = await srv.req('POST', '/v1/collections/Alpha/snapshots/s1/restore', { target: 'Back' });
    assert.equal((await waitJob(srv, r.json.jobId)).state, 'COMPLETED');
    assert.equal((await listAll(srv, 'Back')).size, source.size);
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});

test('kill -9 during rebuild: the job resumes after the lease TTL; a broken lease stops an agent; one agent at a time', async () => {
  const loc = tempDir('sv-loc-');
  const env = { ...FAST, SHARDVAULT_LOCATION: `file://${loc}` };
  let srv = await startServer({ env });
  await createCollection(srv, 'Alpha', 1);
  await load(srv, 'Alpha', 20, 5);
  const N = 12;
  for (let i = 0; i < N; i++) {
    assert.equal((await srv.req('POST', '/v1/collections/Alpha/snapshots?wait=true', { name: `s${i}` })).json.status, 'COMMITTED');
  }
  const expected = await snapshotTable(srv, ['Alpha']);
  await srv.kill9();
  rmSync(srv.dataDir, { recursive: true, force: true });
  const slow = { ...env, SHARDVAULT_MAINTENANCE_BATCH: '2', SHARDVAULT_MAINTENANCE_TEST_DELAY_MS: '400' };
  srv = await startServer({ env: slow });
  try {
    const r = await srv.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan', parallelism: 2 });
    assert.equal(r.status, 202, r.text);
    const id = r.json.jobId;
    const busy = await srv.req('POST', '/v1/maintenance/verify', {});
    assert.equal(busy.status, 409, busy.text);
    await until('two batches done', async () => {
      const s = (await srv.req('GET', '/v1/maintenance/status')).json;
      return s.agent && s.agent.manifestsScanned >= 4 && s.agent.manifestsTotal === N && s.agent.etaMs !== null;
    });
    await srv.kill9();
    srv = await startServer({ dataDir: srv.dataDir, env: slow });
    const job = await waitJobDone(srv, id).catch((e) => { throw new Error(`${e.message}; server stderr:\n${srv.stderr}`); });
    assert.equal(job.state, 'SUCCEEDED', job.reason);
    assert.equal(job.result.resumed, true);
    // Counters persisted with each batch: nothing counted twice, nothing lost.
    assert.equal(job.result.manifestsScanned, N);
    assert.equal(job.result.manifestsIndexed, N);
    assert.deepEqual(await snapshotTable(srv, ['Alpha']), expected);

    // A lease revoked under a running agent stops it: FAILED "lease lost".
    const v = await srv.req('POST', '/v1/maintenance/rebuild', { source: 'full-scan', dryRun: true, parallelism: 1 });
    assert.equal(v.status, 202, v.text);
    await until('the agent running', async () => (await srv.req('GET', '/v1/maintenance/status')).json.lease);
    const br = await srv.req('DELETE', '/v1/maintenance/lease');
    assert.equal(br.json.revoked, true);
    const lost = await waitJobDone(srv, v.json.jobId);
    assert.equal(lost.state, 'FAILED');
    assert.equal(lost.reason, 'lease lost');
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(loc, { recursive: true, force: true });
  }
});
