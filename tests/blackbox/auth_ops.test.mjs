// Authentication in operation: secrets never leak (logs, audit log, answers,
// /v1/meta, /metrics), the audit log records what it must, rate limits, the
// CLI with --api-key, and the refusal to serve anonymously beyond loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, startServer, tempDir } from './lib/server.mjs';
import { startS3 } from './lib/s3.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('secrets never leak: API keys and the S3 secret are in no log, audit record, answer, meta or metrics', async () => {
  const s3 = await startS3();
  await s3.createBucket('sec');
  const dir = tempDir();
  const s3secret = 'SECRETMARKER' + Math.random().toString(36).slice(2);
  writeFileSync(path.join(dir, 's3.secret'), s3secret + '\n');
  const audit = path.join(dir, 'audit.log');
  const srv = await startServer({
    args: ['--auth', 'apikey', '--audit-log', audit, '--location', 's3://sec/p'],
    env: { SHARDVAULT_LOG_LEVEL: 'debug', AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: '', AWS_SECRET_ACCESS_KEY_FILE: path.join(dir, 's3.secret'), SHARDVAULT_AUTH_FAIL_DELAY_MS: '0' },
  });
  const bodies = [];
  const call = async (key, m, p, b) => {
    const r = await srv.req(m, p, b, key ? { authorization: `Bearer ${key}` } : {});
    bodies.push(r.text, JSON.stringify([...r.headers]));
    return r;
  };
  try {
    const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
    const secrets = [root, s3secret];
    const k = await call(root, 'POST', '/v1/authz/keys', { name: 'w', roles: ['writer'] });
    assert.equal(k.status, 201, k.text);
    secrets.push(k.json.key);
    const rot = await call(root, 'POST', `/v1/authz/keys/${k.json.id}/rotate`, { graceSeconds: 60 });
    secrets.push(rot.json.key);
    bodies.pop(); bodies.pop(); bodies.pop(); bodies.pop(); // the two answers that show a secret, by design
    // work, failures and denials
    assert.equal((await call(root, 'POST', '/v1/collections', { name: 'S', vectors: { default: { dim: 2 } } })).status, 200);
    assert.equal((await call(k.json.key, 'POST', '/v1/collections/S/objects', { vector: [1, 2], properties: {} })).status, 200);
    assert.equal((await call(rot.json.key, 'DELETE', '/v1/collections/S')).status, 403);
    assert.equal((await call(k.json.key + 'x', 'GET', '/v1/collections')).status, 401);
    assert.equal((await call('sv_root_' + 'f'.repeat(64), 'GET', '/v1/collections')).status, 401);
    assert.equal((await call(null, 'GET', `/v1/collections?key=${encodeURIComponent(root)}`)).status, 400);
    const snap = await call(root, 'POST', '/v1/collections/S/snapshots?wait=true', { name: 's1' });
    assert.equal(snap.json.status, 'COMMITTED', snap.text);
    await call(root, 'GET', '/v1/meta');
    await call(null, 'GET', '/metrics');
    await call(root, 'GET', '/v1/authz/keys');
    await call(root, 'GET', '/v1/jobs');
    await srv.stop();
    await sleep(200);
    const auditText = readFileSync(audit, 'utf8');
    const haystacks = { stdout: srv.stdout, stderr: srv.stderr, audit: auditText, answers: bodies.join('\n') };
    for (const [where, text] of Object.entries(haystacks))
      for (const s of secrets) {
        const secretPart = s.startsWith('sv_') ? s.split('_').slice(2).join('_') : s;
        assert.ok(!text.includes(secretPart), `a secret appears in ${where}`);
      }
    // the audit log: JSON lines with key ids, writes and denials
    const recs = auditText.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(recs.some((r) => r.route === '/v1/collections/{}/objects' && r.keyId === k.json.id && r.status === 200 && r.outcome === 'ok'));
    assert.ok(recs.some((r) => r.status === 403 && r.outcome === 'denied' && r.collection === 'S' && r.action === 'manage'));
    assert.ok(recs.some((r) => r.status === 401 && r.keyId === null));
    assert.ok(recs.some((r) => r.route === '/v1/authz/keys' && r.method === 'POST' && r.keyId === 'root'));
    assert.ok(!recs.some((r) => r.route === '/v1/meta'), 'reads are not audited');
    for (const r of recs) for (const f of ['ts', 'requestId', 'keyId', 'roles', 'remoteAddr', 'method', 'route', 'action', 'collection', 'tenant', 'status', 'outcome', 'durationMs', 'jobId'])
      assert.ok(f in r, `audit record lacks ${f}`);
  } finally {
    await srv.stop();
    srv.cleanup();
    await s3.stop();
  }
});

test('rate limit per key: 429 with Retry-After; /metrics private when asked', async () => {
  const srv = await startServer({ args: ['--auth', 'apikey', '--rate-limit', '5', '--metrics-public', 'false'] });
  try {
    const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
    const h = { authorization: `Bearer ${root}` };
    const st = [];
    for (let i = 0; i < 20; i++) st.push((await srv.req('GET', '/v1/meta', undefined, h)));
    const limited = st.filter((r) => r.status === 429);
    assert.ok(limited.length > 0, 'some requests were limited');
    assert.ok(Number(limited[0].headers.get('retry-after')) >= 1);
    assert.ok(st.filter((r) => r.status === 200).length >= 5);
    assert.equal((await srv.req('GET', '/metrics')).status, 401);
    await sleep(1200);
    assert.equal((await srv.req('GET', '/metrics', undefined, h)).status, 200);
    assert.equal((await srv.req('GET', '/v1/.well-known/live')).status, 200);
    await sleep(1200);
    // the route table says what the server does: private /metrics needs operate
    const table = (await srv.req('GET', '/v1/authz/routes', undefined, h)).json.routes;
    assert.equal(table.find((r) => r.pattern === '/metrics').action, 'operate');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('CLI: --api-key, keys, roles, whoami', async () => {
  const srv = await startServer({ args: ['--auth', 'apikey'] });
  try {
    const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
    const cli = (key, ...a) => spawnSync(BIN, ['--url', srv.url, ...a], { encoding: 'utf8', env: { ...process.env, SHARDVAULT_API_KEY: key || '' } });
    let r = cli(null, 'collections', 'list');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /401|API key/);
    r = cli(root, 'roles', 'create', 'arts', '--actions', 'read,write', '--collections', 'Art*');
    assert.equal(r.status, 0, r.stderr);
    r = cli(root, 'keys', 'create', 'bob', '--roles', 'arts');
    assert.equal(r.status, 0, r.stderr);
    const bob = JSON.parse(r.stdout);
    assert.match(bob.key, /^sv_[0-9a-f]+_[0-9a-f]{64}$/);
    r = spawnSync(BIN, ['--url', srv.url, '--api-key', bob.key, 'whoami'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).roles, ['arts']);
    r = cli(bob.key, 'keys', 'list');
    assert.notEqual(r.status, 0, 'bob may not manage keys');
    r = cli(root, 'keys', 'list');
    assert.equal(r.status, 0);
    assert.ok(!r.stdout.includes(bob.key.split('_')[2]), 'no secret in the listing');
    r = cli(root, 'keys', 'set-roles', bob.id, '--roles', 'reader');
    assert.equal(r.status, 0, r.stderr);
    r = cli(root, 'keys', 'rotate', bob.id);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(cli(bob.key, 'whoami').status === 0, false, 'the old secret stops at once without grace');
    r = cli(root, 'keys', 'delete', bob.id);
    assert.equal(r.status, 0, r.stderr);
    r = cli(root, 'roles', 'delete', 'arts');
    assert.equal(r.status, 0, r.stderr);
    for (const c of ['keys', 'roles']) assert.equal(cli(root, c, '--help').status, 0);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('no authentication beyond loopback unless asked: --allow-anonymous', async () => {
  const dir = tempDir();
  const r = spawnSync(BIN, ['serve', '--listen', '0.0.0.0:0', '--data-dir', dir], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--auth apikey|--allow-anonymous/);
  const srv = await startServer({ args: ['--allow-anonymous'], dataDir: dir });
  try {
    // startServer listens on 127.0.0.1; the flag alone must not break anything
    assert.equal((await srv.req('GET', '/v1/meta')).status, 200);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
  const p = spawn(BIN, ['serve', '--listen', '0.0.0.0:0', '--data-dir', tempDir(), '--allow-anonymous'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  let out = '';
  await new Promise((res) => p.stdout.on('data', (d) => { out += d; if (/listening/.test(out)) res(); }));
  p.kill('SIGTERM');
  await new Promise((res) => p.on('exit', res));
  assert.match(err, /authentication is off on a non-loopback address/);
});

test('jobs are checked against every collection they act on; one Authorization header only; error bodies stay UTF-8', async () => {
  const auditDir = tempDir();
  const audit = path.join(auditDir, 'audit.log');
  const srv = await startServer({ args: ['--auth', 'apikey', '--audit-log', audit], env: { SHARDVAULT_AUTH_FAIL_DELAY_MS: '0', SHARDVAULT_SNAPSHOT_TEST_DELAY_MS: '200' } });
  try {
    const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
    const adm = (m, p, b) => srv.req(m, p, b, { authorization: `Bearer ${root}` });
    let r = await adm('POST', '/v1/authz/roles', { name: 'art', permissions: [{ actions: ['read', 'write', 'manage', 'operate'], collections: 'Art*' }] });
    assert.equal(r.status, 201, r.text);
    const k = (await adm('POST', '/v1/authz/keys', { name: 'art', roles: ['art'] })).json.key;
    const art = (m, p, b) => srv.req(m, p, b, { authorization: `Bearer ${k}` });
    for (const c of ['Article', 'Art2', 'Victim'])
      assert.equal((await adm('POST', '/v1/collections', { name: c, vectors: { default: { dim: 2 } } })).status, 200);
    for (let i = 0; i < 30; i++) await adm('POST', '/v1/collections/Article/objects', { vector: [i, 1], properties: {} });
    assert.equal((await adm('POST', '/v1/collections/Article/snapshots?wait=true', { name: 's1' })).json.status, 'COMMITTED');
    // a restore into a collection the key may not touch: its job is not the key's to read or cancel
    r = await adm('POST', '/v1/collections/Article/snapshots/s1/restore', { target: 'Restored' });
    assert.equal(r.status, 202, r.text);
    const rid = r.json.id || r.json.jobId;
    assert.ok(rid, r.text);
    assert.equal((await art('GET', `/v1/jobs/${rid}`)).status, 403);
    assert.equal((await art('POST', `/v1/jobs/${rid}/cancel`)).status, 403);
    assert.ok(!(await art('GET', '/v1/jobs?kind=restore')).json.jobs.some((j) => j.id === rid));
    assert.equal((await adm('GET', `/v1/jobs/${rid}`)).status, 200);
    // an export of two collections the key may read is the key's to see
    r = await art('POST', '/v1/export/filesystem', { id: 'two', include: ['Article', 'Art2'] });
    assert.equal(r.status, 200, r.text);
    const mine = (await art('GET', '/v1/jobs?kind=export')).json.jobs;
    assert.equal(mine.length, 1, JSON.stringify(mine));
    assert.equal((await art('GET', `/v1/jobs/${mine[0].id}`)).status, 200);
    let ej;
    for (let i = 0; i < 100; i++) {
      ej = (await art('GET', `/v1/jobs/${mine[0].id}`)).json;
      if (ej.state !== 'RUNNING' && ej.state !== 'PENDING') break;
      await sleep(50);
    }
    assert.equal(ej.state, 'SUCCEEDED', JSON.stringify(ej));
    assert.equal(ej.result.objectsExported, 30, JSON.stringify(ej)); // the job says what it exported
    assert.ok(ej.result.bytesWritten > 0, JSON.stringify(ej));
    // two Authorization headers: refused, whichever comes first
    const { connect } = await import('node:net');
    const rawStatus = (head) => new Promise((res, rej) => {
      const u = new URL(srv.url);
      const sock = connect(Number(u.port), u.hostname, () => sock.write(head));
      let got = '';
      sock.on('data', (d) => { got += d; });
      sock.on('end', () => res(Number(got.split(' ')[1])));
      sock.on('error', rej);
    });
    for (const order of [[root, k], [k, root]]) {
      const st = await rawStatus(`GET /v1/authz/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${order[0]}\r\n` +
        `Authorization: Bearer ${order[1]}\r\nConnection: close\r\n\r\n`);
      assert.equal(st, 400, 'two Authorization headers');
    }
    assert.equal(await rawStatus(`GET /v1/authz/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\nConnection: close\r\n\r\n`), 200);
    // an error naming a non-ASCII glob is valid JSON
    const res = await fetch(`${srv.url}/v1/authz/roles`, { method: 'POST', headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'u', permissions: [{ actions: ['read'], collections: 'Ä*' }] }) });
    assert.equal(res.status, 422);
    const raw = new Uint8Array(await res.arrayBuffer());
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw); // throws on invalid UTF-8
    assert.ok(JSON.parse(text).error[0].message, text);
    // the audit record of an operation that starts or names a job carries its id
    const snap = await art('POST', '/v1/collections/Article/snapshots', { name: 's2' });
    assert.equal(snap.status, 202, snap.text);
    const sjob = (await art('GET', '/v1/jobs?kind=snapshot')).json.jobs.find((x) => x.target === 's2');
    assert.ok(sjob, 'the snapshot job');
    await srv.stop();
    await sleep(200);
    const recs = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const find = (m, route) => recs.findLast((x) => x.method === m && x.route === route);
    assert.equal(find('POST', '/v1/collections/{}/snapshots').jobId, sjob.id);
    assert.equal(find('POST', '/v1/export/{}').jobId, mine[0].id);
    assert.equal(find('POST', '/v1/jobs/{}/cancel').jobId, rid);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('a key revoked while its batch body streams stops the batch; what was written stays', async () => {
  const srv = await startServer({ args: ['--auth', 'apikey'], env: { SHARDVAULT_AUTH_FAIL_DELAY_MS: '0' } });
  try {
    const root = readFileSync(path.join(srv.dataDir, 'root.key'), 'utf8').trim();
    const adm = (m, p, b) => srv.req(m, p, b, { authorization: `Bearer ${root}` });
    assert.equal((await adm('POST', '/v1/collections', { name: 'R', vectors: { default: { dim: 2 } } })).status, 200);
    const k = (await adm('POST', '/v1/authz/keys', { name: 'w', roles: ['writer'] })).json;
    const http = await import('node:http');
    const u = new URL(srv.url);
    const done = new Promise((res, rej) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/v1/batch/objects',
        headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } }, (r) => {
        let t = '';
        r.on('data', (d) => { t += d; });
        r.on('end', () => res({ status: r.statusCode, text: t }));
      });
      req.on('error', rej);
      let i = 0;
      const tick = setInterval(() => {
        // each line a whole object; 3000 objects per chunk so groups are written as they come
        const lines = [];
        for (let j = 0; j < 1500; j++, i++) lines.push(JSON.stringify({ collection: 'R', vector: [i, 1], properties: { n: i } }));
        req.write(lines.join('\n') + '\n');
        if (i >= 1500 * 12) { clearInterval(tick); req.end(); }
      }, 100);
    });
    await sleep(450);
    assert.equal((await adm('DELETE', `/v1/authz/keys/${k.id}`)).status, 204);
    const r = await done;
    assert.equal(r.status, 403, r.text.slice(0, 300));
    assert.match(r.text, /revoked or expired while the body was sent/);
    const shards = (await adm('GET', '/v1/collections/R/shards')).json.shards;
    const n = shards.reduce((a, s) => a + s.objects, 0);
    assert.ok(n < 1500 * 12, `everything was written (${n})`);
    const m = r.text.match(/the first (\d+) objects of the body were written/);
    if (m) assert.equal(Number(m[1]), n);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
