// The jobs API: every long operation (export, snapshot, restore, gc) is a job,
// listed with consistent counters, cancellable, never left running after a
// kill -9, and pruned by the retention rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { createCollection, load, waitJob } from './lib/snapshot.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function jobsOf(srv, query = '') {
  const r = await srv.req('GET', `/v1/jobs${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json.jobs;
}

async function waitFinal(srv, id, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await srv.req('GET', `/v1/jobs/${id}`);
    assert.equal(r.status, 200, r.text);
    if (['SUCCEEDED', 'FAILED', 'CANCELED'].includes(r.json.state)) return r.json;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${r.json.state}`);
    await sleep(50);
  }
}

function checkCounters(j) {
  assert.ok(j.progress >= 0 && j.progress <= 100, JSON.stringify(j));
  assert.ok(j.itemsDone >= 0 && j.bytesDone >= 0, JSON.stringify(j));
  if (j.itemsTotal > 0) assert.ok(j.itemsDone <= j.itemsTotal, JSON.stringify(j));
  if (j.bytesTotal > 0) assert.ok(j.bytesDone <= j.bytesTotal, JSON.stringify(j));
  if (j.state === 'SUCCEEDED') assert.equal(j.progress, 100);
  for (const k of ['id', 'kind', 'state', 'createdAt']) assert.ok(j[k] !== undefined && j[k] !== null, k);
}

test('every kind of long operation is a job with its link, result and consistent counters', async () => {
  const srv = await startServer();
  try {
    await createCollection(srv, 'Jobs', 2);
    await load(srv, 'Jobs', 3000);
    // snapshot create
    let r = await srv.req('POST', '/v1/collections/Jobs/snapshots?wait=true', { name: 's1' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'COMMITTED');
    const snapBytes = r.json.bytes;
    let snaps = await jobsOf(srv, '?kind=snapshot');
    assert.equal(snaps.length, 1);
    assert.equal(snaps[0].state, 'SUCCEEDED');
    assert.equal(snaps[0].collection, 'Jobs');
    assert.equal(snaps[0].link, '/v1/collections/Jobs/snapshots/s1');
    assert.ok(snaps[0].bytesTotal > 0 && snaps[0].bytesDone === snaps[0].bytesTotal, JSON.stringify(snaps[0]));
    checkCounters(snaps[0]);
    // a committed snapshot's job says what it holds
    const sj = (await srv.req('GET', `/v1/jobs/${snaps[0].id}`)).json;
    assert.deepEqual({ ...sj.result, bytesUploaded: undefined },
      { collection: 'Jobs', snapshot: 's1', objects: 3000, bytes: r.json.bytes, bytesUploaded: undefined });
    assert.ok(sj.result.bytesUploaded > 0 && sj.result.bytesUploaded <= r.json.bytes, JSON.stringify(sj.result));
    // restore: the job id is the restore job's id; its own API keeps COMPLETED
    r = await srv.req('POST', '/v1/collections/Jobs/snapshots/s1/restore', { target: 'JobsCopy' });
    assert.equal(r.status, 202, r.text);
    const rid = r.json.jobId;
    const own = await waitJob(srv, rid);
    assert.equal(own.state, 'COMPLETED');
    const rj = await waitFinal(srv, rid);
    assert.equal(rj.kind, 'restore');
    assert.equal(rj.state, 'SUCCEEDED');
    assert.equal(rj.link, `/v1/restore-jobs/${rid}`);
    assert.equal(rj.itemsTotal, 2);
    assert.equal(rj.itemsDone, 2);
    checkCounters(rj);
    const rres = (await srv.req('GET', `/v1/jobs/${rid}`)).json.result;
    assert.equal(rres.collection, 'JobsCopy');
    assert.equal(rres.sourceCollection, 'Jobs');
    assert.equal(rres.snapshot, 's1');
    assert.equal(rres.shardsRestored, 2);
    assert.equal(rres.objectsRestored, 3000);
    assert.equal(rres.bytesRestored, snapBytes);
    // gc: the result is GC's own outcome
    r = await srv.req('POST', '/v1/snapshots/gc');
    assert.equal(r.status, 200, r.text);
    const gcs = await jobsOf(srv, '?kind=gc');
    assert.ok(gcs.length >= 1);
    const g = await srv.req('GET', `/v1/jobs/${gcs[0].id}`);
    assert.equal(g.json.state, 'SUCCEEDED');
    assert.equal(typeof g.json.result.blobsDeleted, 'number');
    assert.equal(typeof g.json.result.bytesFreed, 'number');
    // export: SUCCESS in its own API, SUCCEEDED as a job
    r = await srv.req('POST', '/v1/export/filesystem', { id: 'jobs-exp', include: ['Jobs'] });
    assert.equal(r.status, 200, r.text);
    let ex;
    for (let i = 0; i < 600; i++) {
      ex = await srv.req('GET', '/v1/export/filesystem/jobs-exp');
      if (ex.json.status !== 'STARTED' && ex.json.status !== 'TRANSFERRING') break;
      await sleep(50);
    }
    assert.equal(ex.json.status, 'SUCCESS');
    const exps = await jobsOf(srv, '?kind=export');
    assert.equal(exps.length, 1);
    const ej = await waitFinal(srv, exps[0].id);
    assert.equal(ej.state, 'SUCCEEDED');
    assert.equal(ej.target, 'jobs-exp');
    assert.equal(ej.link, '/v1/export/filesystem/jobs-exp');
    assert.equal(ej.itemsDone, 3000);
    checkCounters(ej);
    // filters, newest first, cursor
    const all = await jobsOf(srv);
    assert.ok(all.length >= 4);
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].createdAt >= all[i].createdAt);
    const p1 = await srv.req('GET', '/v1/jobs?limit=2');
    assert.equal(p1.json.jobs.length, 2);
    assert.equal(p1.json.next, p1.json.jobs[1].id);
    const p2 = await srv.req('GET', `/v1/jobs?limit=2&after=${p1.json.next}`);
    assert.equal(p2.json.jobs[0].id, all[2].id);
    assert.equal((await jobsOf(srv, '?collection=Jobs')).length, all.filter((j) => j.collection === 'Jobs').length);
    assert.equal((await jobsOf(srv, '?state=FAILED')).length, 0);
    r = await srv.req('GET', '/v1/jobs?state=DONE');
    assert.equal(r.status, 422);
    assert.match(r.json.error[0].message, /state/);
    r = await srv.req('GET', '/v1/jobs/no-such-job');
    assert.equal(r.status, 404);
    r = await srv.req('POST', `/v1/jobs/${rid}/cancel`);
    assert.equal(r.status, 409, 'a finished job cannot be canceled');
    r = await srv.req('POST', '/v1/jobs/no-such-job/cancel');
    assert.equal(r.status, 404);
    // metrics
    const m = await srv.req('GET', '/metrics');
    assert.match(m.text, /shardvault_jobs_finished_total\{state="SUCCEEDED"\} [1-9]/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('cancel a running export and a running snapshot through /v1/jobs', async () => {
  const srv = await startServer({ env: { EXPORT_MAX_ROWS_PER_SECOND: '500', SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '400' } });
  try {
    await createCollection(srv, 'Slow', 2);
    await load(srv, 'Slow', 4000);
    let r = await srv.req('POST', '/v1/export/filesystem', { id: 'slow-exp', include: ['Slow'] });
    assert.equal(r.status, 200, r.text);
    let [job] = await jobsOf(srv, '?kind=export');
    assert.equal(job.state, 'RUNNING');
    await sleep(300);
    [job] = await jobsOf(srv, '?kind=export');
    checkCounters(job);
    assert.equal(job.itemsTotal, 4000);
    r = await srv.req('POST', `/v1/jobs/${job.id}/cancel`);
    assert.equal(r.status, 202, r.text);
    const ej = await waitFinal(srv, job.id, 30000);
    assert.equal(ej.state, 'CANCELED');
    const st = await srv.req('GET', '/v1/export/filesystem/slow-exp');
    assert.equal(st.json.status, 'CANCELED');
    // snapshot create
    r = await srv.req('POST', '/v1/collections/Slow/snapshots', { name: 'c1' });
    assert.equal(r.status, 202, r.text);
    [job] = await jobsOf(srv, '?kind=snapshot');
    r = await srv.req('POST', `/v1/jobs/${job.id}/cancel`);
    assert.equal(r.status, 202, r.text);
    const sj = await waitFinal(srv, job.id, 30000);
    assert.equal(sj.state, 'CANCELED');
    const snap = await srv.req('GET', '/v1/collections/Slow/snapshots/c1');
    assert.equal(snap.json.status, 'FAILED');
    assert.match(snap.json.error, /cancel/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('kill -9 during export, snapshot create and restore: after restart no job is PENDING or RUNNING', async () => {
  let srv = await startServer({ env: { SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '300' } });
  const dataDir = srv.dataDir;
  try {
    await createCollection(srv, 'K', 2);
    await load(srv, 'K', 2000);
    let r = await srv.req('POST', '/v1/collections/K/snapshots?wait=true', { name: 'base' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    await load(srv, 'K', 500, 99); // new files, so 'mid' has blobs to upload (slowed) and is still running
    r = await srv.req('POST', '/v1/collections/K/snapshots', { name: 'mid' });
    assert.equal(r.status, 202);
    r = await srv.req('POST', '/v1/collections/K/snapshots/base/restore', { target: 'KCopy' });
    assert.equal(r.status, 202);
    const rid = r.json.jobId;
    await srv.kill9();
    srv = await startServer({ dataDir, env: { EXPORT_MAX_ROWS_PER_SECOND: '200' } });
    r = await srv.req('POST', '/v1/export/filesystem', { id: 'killed', include: ['K'] });
    assert.equal(r.status, 200, r.text);
    await sleep(300);
    await srv.kill9();
    srv = await startServer({ dataDir });
    const jobs = await jobsOf(srv, '?limit=1000');
    const byKind = Object.fromEntries(jobs.map((j) => [j.kind + ':' + (j.target || ''), j]));
    for (const j of jobs) assert.ok(!['PENDING', 'RUNNING'].includes(j.state) || j.kind === 'restore', JSON.stringify(j));
    assert.equal(byKind['snapshot:mid'].state, 'FAILED');
    assert.equal(byKind['snapshot:mid'].reason, 'interrupted by restart');
    assert.equal(byKind['export:killed'].state, 'FAILED');
    assert.equal(byKind['export:killed'].reason, 'interrupted by restart');
    // the restore resumes (its kind can) and finishes
    const rj = await waitFinal(srv, rid);
    assert.equal(rj.state, 'SUCCEEDED', JSON.stringify(rj));
    assert.equal((await waitJob(srv, rid)).state, 'COMPLETED');
  } finally {
    await srv.kill9();
    srv.cleanup();
  }
});

test('kill -9 during GC: after restart the gc job is FAILED "interrupted by restart"', async () => {
  const env = { SHARDVAULT_SNAPSHOT_GC_GRACE_MS: '0', SHARDVAULT_LOCATION_TEST_DELETE_DELAY_MS: '3000' };
  let srv = await startServer({ env });
  const dataDir = srv.dataDir;
  try {
    await createCollection(srv, 'G', 2);
    await load(srv, 'G', 500);
    let r = await srv.req('POST', '/v1/collections/G/snapshots?wait=true', { name: 'g1' });
    assert.equal(r.json.status, 'COMMITTED', r.text);
    assert.equal((await srv.req('DELETE', '/v1/collections/G/snapshots/g1')).status, 204);
    const gc = srv.req('POST', '/v1/snapshots/gc').catch(() => null); // never answers: killed
    let running;
    for (let i = 0; i < 100 && !running; i++) {
      running = (await jobsOf(srv, '?kind=gc&state=RUNNING'))[0];
      if (!running) await sleep(20);
    }
    assert.ok(running, 'the gc job is RUNNING while it deletes');
    await srv.kill9();
    await gc;
    srv = await startServer({ dataDir });
    const j = (await srv.req('GET', `/v1/jobs/${running.id}`)).json;
    assert.equal(j.state, 'FAILED');
    assert.equal(j.reason, 'interrupted by restart');
  } finally {
    await srv.kill9();
    srv.cleanup();
  }
});

test('finished jobs are kept by the retention rule (SHARDVAULT_JOBS_KEEP per kind)', async () => {
  const srv = await startServer({ env: { SHARDVAULT_JOBS_KEEP: '2' } });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await srv.req('POST', '/v1/snapshots/gc')).status, 200);
    assert.equal((await jobsOf(srv, '?kind=gc')).length, 2);
  } finally {
    await srv.stop();
  }
  // and after a restart (the catalog was pruned too)
  const again = await startServer({ dataDir: srv.dataDir });
  try {
    assert.equal((await jobsOf(again, '?kind=gc')).length, 2);
  } finally {
    await again.stop();
    again.cleanup();
  }
});
