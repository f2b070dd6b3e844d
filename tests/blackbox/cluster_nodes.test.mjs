// Membership on etcd: every node holds a lease on nodes/{name}; GET /v1/nodes
// lists them HEALTHY, a node killed with -9 turns UNREACHABLE once its lease
// lapses, a stopped node at once; a restarted node takes its name back; a
// second process under a live node's name is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startServer, BIN, tempDir } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function nodes(srv) {
  const r = await srv.req('GET', '/v1/nodes');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json), ['nodes']);
  for (const n of r.json.nodes) {
    assert.deepEqual(Object.keys(n).sort(), ['name', 'objects', 'shards', 'startedAt', 'status', 'url', 'version']);
  }
  return r.json.nodes;
}

// Polls (bounded, generously) until pred holds on the node list.
async function until(srv, pred, what) {
  const deadline = Date.now() + 60000;
  for (;;) {
    const list = await nodes(srv);
    if (pred(list)) return list;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(list)}`);
    await sleep(100);
  }
}

const byName = (list) => Object.fromEntries(list.map((n) => [n.name, n]));

test('nodes register, report, lapse, come back, and a taken name is refused', async () => {
  const etcd = await startEtcd();
  const catalog = `etcd://${etcd.endpoint}/c1/`;
  const common = ['--catalog', catalog, '--node-ttl', '2s'];
  const a = await startServer({ args: [...common, '--node-name', 'a'] });
  let b = await startServer({ args: [...common, '--node-name', 'b'] });
  const bDir = b.dataDir;
  try {
    const both = await until(a, (l) => l.length === 2, 'both nodes listed');
    const m = byName(both);
    assert.equal(m.a.status, 'HEALTHY');
    assert.equal(m.b.status, 'HEALTHY');
    assert.equal(m.a.url, a.url);
    assert.equal(m.b.url, b.url);
    assert.equal(m.a.version, (await a.req('GET', '/v1/meta')).json.version);
    assert.ok(m.a.startedAt > 1.7e12 && m.a.startedAt <= Date.now());
    assert.deepEqual(await nodes(b), both); // one view from either node

    // a's counts reach b through a's record. One shard: placed on a (both
    // nodes hold none; ties go by name), so a holds the object.
    let r = await a.req('POST', '/v1/collections', { name: 'OnA', shards: 1, vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    r = await a.req('POST', '/v1/collections/OnA/objects', { vector: [1, 2] });
    assert.equal(r.status, 200, r.text);
    assert.equal(byName(await nodes(a)).a.objects, 1); // its own: counted on the spot
    const seen = await until(b, (l) => byName(l).a.objects === 1, "a's object count seen from b");
    assert.equal(byName(seen).a.shards, 1);
    assert.equal(byName(seen).b.shards, 0);

    // kill -9: the lease lapses and a sees b UNREACHABLE (still listed, with its URL).
    await b.kill9();
    const gone = await until(a, (l) => byName(l).b.status === 'UNREACHABLE', 'b unreachable after kill -9');
    assert.equal(byName(gone).b.url, b.url);
    assert.equal(byName(gone).a.status, 'HEALTHY');

    // b restarts on its data directory: it takes its name back at once.
    b = await startServer({ dataDir: bDir, args: [...common, '--node-name', 'b'] });
    await until(a, (l) => byName(l).b.status === 'HEALTHY' && byName(l).b.url === b.url, 'b back');

    // Another process (another data directory) under the live name "a" is refused.
    const other = tempDir();
    const res = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', other, ...common, '--node-name', 'a'],
      { env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn' }, encoding: 'utf8', timeout: 60000 });
    assert.equal(res.status, 1, res.stderr);
    assert.match(res.stderr, /node name a is held by another live node/);
    // An advertise URL with credentials is refused without echoing them.
    for (const url of ['http://user:s3cr3tpw@127.0.0.1:1', 'http://127.0.0.1:1/p?s3cr3tpw']) {
      const adv = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', tempDir(), ...common, '--node-name', 'z',
        '--advertise-url', url], { env: { ...process.env, SHARDVAULT_LOG_LEVEL: 'warn' }, encoding: 'utf8', timeout: 60000 });
      assert.notEqual(adv.status, 0, adv.stderr);
      assert.match(adv.stderr, /advertise URL/);
      assert.ok(!`${adv.stderr}${adv.stdout}`.includes('s3cr3tpw'), adv.stderr);
    }
    assert.equal(byName(await nodes(b)).a.status, 'HEALTHY');

    // A graceful stop revokes the lease: UNREACHABLE without waiting for the TTL.
    assert.equal((await a.stop()).code, 0);
    await until(b, (l) => byName(l).a.status === 'UNREACHABLE', 'a unreachable after stop');
    assert.match(b.stderr + '', /node left the cluster/);
  } finally {
    await a.stop();
    await b.stop();
    a.cleanup();
    b.cleanup();
    await etcd.cleanup();
  }
});

test('one node on the embedded catalog lists itself', async () => {
  const srv = await startServer({ args: ['--node-name', 'solo'] });
  try {
    const list = await nodes(srv);
    assert.equal(list.length, 1);
    assert.equal(list[0].name, 'solo');
    assert.equal(list[0].status, 'HEALTHY');
    assert.equal(list[0].url, srv.url);
    const cli = spawnSync(BIN, ['--url', srv.url, 'nodes'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout).nodes.map((n) => [n.name, n.status]), [['solo', 'HEALTHY']]);
    const bad = spawnSync(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', tempDir(), '--node-ttl', '10x'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /node-ttl/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('jobs and schedules are per node in a cluster: a restarted node neither lists nor runs another node\'s; schedule names are cluster-wide', async () => {
  const etcd = await startEtcd();
  const common = ['--catalog', `etcd://${etcd.endpoint}/js/`, '--node-ttl', '2s'];
  const env = { SHARDVAULT_CLUSTER_SECRET: 'jobs-cluster-secret-0123456789' };
  const a = await startServer({ env, args: [...common, '--node-name', 'a'] });
  let b = await startServer({ env, args: [...common, '--node-name', 'b'] });
  try {
    let r = await a.req('POST', '/v1/collections', { name: 'J', vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    r = await a.req('POST', '/v1/schedules', { name: 'nightly', kind: 'snapshot', collection: 'J', every: '1h', retention: { keepLast: 2 } });
    assert.equal(r.status, 201, r.text);
    r = await b.req('POST', '/v1/schedules', { name: 'nightly', kind: 'snapshot', collection: 'J', every: '2h', retention: { keepLast: 1 } });
    assert.equal(r.status, 409, r.text);
    assert.match(r.text, /exists on node a/);
    r = await a.req('POST', '/v1/snapshots/gc');
    assert.equal(r.status, 200, r.text);
    const gcJob = (await a.req('GET', '/v1/jobs?kind=gc')).json.jobs[0];
    assert.equal(gcJob.node, 'a');
    // b restarts: it loads what the catalog holds, and takes only its own
    await b.stop();
    b = await startServer({ dataDir: b.dataDir, env, args: [...common, '--node-name', 'b'] });
    assert.deepEqual((await b.req('GET', '/v1/schedules')).json.schedules.map((s) => s.name), []);
    assert.equal((await b.req('GET', `/v1/jobs/${gcJob.id}`)).status, 404);
    assert.ok(!(await b.req('GET', '/v1/jobs')).json.jobs.some((x) => x.node === 'a'));
    assert.deepEqual((await a.req('GET', '/v1/schedules')).json.schedules.map((s) => s.name), ['nightly']);
    assert.equal((await a.req('GET', `/v1/jobs/${gcJob.id}`)).json.state, 'SUCCEEDED');
  } finally {
    await a.stop();
    await b.stop();
    a.cleanup();
    b.cleanup();
    await etcd.cleanup();
  }
});
