// Schedules: snapshots and exports on a cron or an interval, with restic-style
// retention over what the schedule created (never manual or other schedules'
// artifacts), surviving restarts and catching up once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BIN, startServer } from './lib/server.mjs';
import { createCollection, load } from './lib/snapshot.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function snapshotNames(srv, c) {
  const r = await srv.req('GET', `/v1/collections/${c}/snapshots`);
  assert.equal(r.status, 200, r.text);
  const list = Array.isArray(r.json) ? r.json : r.json.snapshots;
  return list.map((s) => s.name).sort();
}

test('an every: 1s snapshot schedule with keepLast 2 leaves its 2 newest; manual snapshots untouched', async () => {
  const srv = await startServer();
  try {
    await createCollection(srv, 'Sched', 2);
    await load(srv, 'Sched', 500);
    let r = await srv.req('POST', '/v1/collections/Sched/snapshots?wait=true', { name: 'manual' });
    assert.equal(r.json.status, 'COMMITTED');
    // another schedule's snapshots are not this one's to delete
    r = await srv.req('POST', '/v1/schedules', { name: 'other', kind: 'snapshot', collection: 'Sched', cron: '0 3 1 1 *' });
    assert.equal(r.status, 201, r.text);
    r = await srv.req('POST', '/v1/schedules', {
      name: 'fast', kind: 'snapshot', collection: 'Sched', every: '1s', retention: { keepLast: 2 },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.name, 'fast');
    assert.equal(r.json.every, '1s');
    assert.equal(r.json.paused, false);
    assert.equal(r.json.lastRun, null);
    assert.ok(r.json.nextRunAt > Date.now() - 1000);
    await sleep(5000);
    // stop it, let the last run finish and retention run
    r = await srv.req('PUT', '/v1/schedules/fast', { paused: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.paused, true);
    await sleep(1500);
    const names = await snapshotNames(srv, 'Sched');
    const sched = names.filter((n) => n.startsWith('fast-'));
    assert.equal(sched.length, 2, `scheduled snapshots: ${names.join(', ')}`);
    for (const n of sched) assert.match(n, /^fast-\d{8}T\d{6}Z$/);
    assert.ok(names.includes('manual'));
    r = await srv.req('GET', '/v1/schedules/fast');
    assert.equal(r.status, 200);
    assert.equal(r.json.lastRun.state, 'SUCCEEDED');
    assert.ok(r.json.lastRun.jobId);
    const job = await srv.req('GET', `/v1/jobs/${r.json.lastRun.jobId}`);
    assert.equal(job.json.schedule, 'fast');
    assert.equal(job.json.kind, 'snapshot');
    // each run is a job with the schedule's name
    const jobs = (await srv.req('GET', '/v1/jobs?kind=snapshot&limit=1000')).json.jobs;
    assert.ok(jobs.filter((j) => j.schedule === 'fast').length >= 4);
    r = await srv.req('GET', '/v1/schedules');
    assert.deepEqual(r.json.schedules.map((s) => s.name).sort(), ['fast', 'other']);
    // delete keeps what it created
    r = await srv.req('DELETE', '/v1/schedules/fast');
    assert.equal(r.status, 204);
    assert.equal((await srv.req('GET', '/v1/schedules/fast')).status, 404);
    assert.equal((await snapshotNames(srv, 'Sched')).filter((n) => n.startsWith('fast-')).length, 2);
    // a new schedule of the same name does not inherit them: its retention keeps its own
    const before = (await snapshotNames(srv, 'Sched')).filter((n) => n.startsWith('fast-'));
    r = await srv.req('POST', '/v1/schedules', { name: 'fast', kind: 'snapshot', collection: 'Sched', every: '1s', retention: { keepLast: 1 } });
    assert.equal(r.status, 201, r.text);
    await sleep(3500);
    r = await srv.req('PUT', '/v1/schedules/fast', { paused: true });
    assert.equal(r.status, 200, r.text);
    await sleep(1500);
    const after = (await snapshotNames(srv, 'Sched')).filter((n) => n.startsWith('fast-'));
    for (const n of before) assert.ok(after.includes(n), `the deleted schedule's ${n} is gone: ${after.join(', ')}`);
    assert.equal(after.length, before.length + 1, after.join(', '));
    // fields it does not know are refused, not ignored
    r = await srv.req('POST', '/v1/schedules', { name: 'exc', kind: 'export', backend: 'filesystem', every: '1h', exclude: ['Sched'] });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /exclude: unknown field/);
    r = await srv.req('PUT', '/v1/schedules/fast', { paused: false, every: '5s' });
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /only paused can be changed/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('schedule validation: 422 naming the field, 409 on a taken name', async () => {
  const srv = await startServer();
  try {
    const base = { name: 'v', kind: 'snapshot', collection: 'A', every: '1h' };
    const cases = [
      [{ ...base, name: 'Upper' }, /name/],
      [{ ...base, name: '-x' }, /name/],
      [{ ...base, kind: 'gc' }, /kind/],
      [{ ...base, collection: undefined }, /collection/],
      [{ ...base, every: '0s' }, /every/],
      [{ ...base, every: '5 minutes' }, /every/],
      [{ ...base, every: undefined, cron: '61 * * * *' }, /cron/],
      [{ ...base, every: undefined, cron: '* * * *' }, /cron/],
      [{ ...base, cron: '* * * * *' }, /cron/],
      [{ ...base, retention: { keepForever: 1 } }, /retention/],
      [{ name: 'e', kind: 'export', every: '1h' }, /backend/],
    ];
    for (const [body, re] of cases) {
      const r = await srv.req('POST', '/v1/schedules', body);
      assert.equal(r.status, 422, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
      assert.match(r.json.error[0].message, re, JSON.stringify(body));
    }
    let r = await srv.req('POST', '/v1/schedules', { ...base, cron: undefined });
    assert.equal(r.status, 201, r.text);
    r = await srv.req('POST', '/v1/schedules', base);
    assert.equal(r.status, 409);
    r = await srv.req('PUT', '/v1/schedules/v', { paused: 'yes' });
    assert.equal(r.status, 422);
    r = await srv.req('PUT', '/v1/schedules/nope', { paused: true });
    assert.equal(r.status, 404);
    r = await srv.req('POST', '/v1/schedules', '');
    assert.equal(r.status, 400);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a schedule survives a restart; runs missed while down are caught up once', async () => {
  let srv = await startServer();
  const dataDir = srv.dataDir;
  try {
    await createCollection(srv, 'Up', 1);
    await load(srv, 'Up', 100);
    // First run due 5 s after creation; the server dies before it and stays
    // down for two slots. At start the missed slots cause one catch-up run.
    let r = await srv.req('POST', '/v1/schedules', { name: 'hourly', kind: 'snapshot', collection: 'Up', every: '5s' });
    assert.equal(r.status, 201, r.text);
    await srv.kill9();
    await sleep(11000);
    srv = await startServer({ dataDir });
    await sleep(1500);
    r = await srv.req('GET', '/v1/schedules/hourly');
    assert.equal(r.status, 200);
    assert.ok(r.json.lastRun, 'the missed run was caught up');
    const names = (await snapshotNames(srv, 'Up')).filter((n) => n.startsWith('hourly-'));
    assert.equal(names.length, 1, `one catch-up run, not one per missed slot: ${names.join(', ')}`);
    assert.ok(r.json.nextRunAt > Date.now() - 500);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a scheduled export runs and gets a lower-case id; the CLI drives schedules and jobs', async () => {
  const srv = await startServer();
  try {
    await createCollection(srv, 'Lake', 1);
    await load(srv, 'Lake', 200);
    const cli = (...args) => spawnSync(BIN, ['--url', srv.url, ...args], { encoding: 'utf8' });
    let out = cli('schedules', 'create', 'lake', '--kind', 'export', '--backend', 'filesystem', '--include', 'Lake',
      '--every', '1s', '--keep-last', '1');
    assert.equal(out.status, 0, out.stderr);
    await sleep(3500);
    out = cli('schedules', 'pause', 'lake');
    assert.equal(out.status, 0, out.stderr);
    assert.equal(JSON.parse(out.stdout).paused, true);
    await sleep(1500);
    out = cli('jobs', 'list', '--kind', 'export');
    assert.equal(out.status, 0, out.stderr);
    const jobs = JSON.parse(out.stdout).jobs;
    assert.ok(jobs.length >= 2, out.stdout);
    for (const j of jobs) assert.match(j.target, /^lake-\d{8}t\d{6}z$/);
    const ok = jobs.filter((j) => j.state === 'SUCCEEDED');
    assert.ok(ok.length >= 2, out.stdout);
    // retention keepLast 1: only the newest successful export's files remain
    const r = await srv.req('GET', `/v1/export/filesystem/${ok[0].target}`);
    assert.equal(r.status, 200, r.text);
    const gone = await srv.req('GET', `/v1/export/filesystem/${ok[ok.length - 1].target}`);
    assert.equal(gone.status, 404, gone.text);
    out = cli('jobs', 'get', ok[0].id);
    assert.equal(out.status, 0);
    assert.equal(JSON.parse(out.stdout).kind, 'export');
    out = cli('schedules', 'get', 'nope');
    assert.notEqual(out.status, 0);
    out = cli('schedules', '--help');
    assert.equal(out.status, 0);
    assert.match(out.stdout, /keep-last/);
    out = cli('schedules', 'delete', 'lake');
    assert.equal(out.status, 0, out.stderr);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
