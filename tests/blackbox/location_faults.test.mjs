// Fault tests for the s3:// driver: a store killed mid multipart upload, a
// proxy injecting 500/503/resets/truncated bodies/200-with-<Error>, a slow
// server and a server that never answers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startS3, startFaultProxy, startBlackhole } from './lib/s3.mjs';
import { runTool, pattern, runAws } from './lib/location.mjs';

const FAST_RETRY = ['--retries', '3', '--retry-base-ms', '20', '--connect-timeout-ms', '1000'];

test('store killed mid multipart upload: clear error after retries, no object under the key', async () => {
  let s3 = await startS3();
  const dir = s3.dir;
  let s3b;
  try {
    await s3.createBucket('kill');
    const chunk = pattern(1024 * 1024, 7);
    const started = Date.now();
    const r = await runTool(['--part-size', '256Ki', '--threshold', '256Ki', '--concurrency', '2', ...FAST_RETRY,
      's3://kill/p', 'put', 'mp/obj', '-'], {
      env: s3.env,
      onSpawn: (child) => {
        child.stdin.write(chunk);
        // Let some parts land, then kill the store while the upload is open.
        setTimeout(async () => {
          await s3.kill();
          child.stdin.write(chunk, () => child.stdin.end(chunk));
        }, 700);
      },
    });
    assert.notEqual(r.status, 0);
    assert.equal(r.code, 'i/o error', r.stderr);
    assert.match(r.stderr, /write mp\/obj/);
    assert.match(r.stderr, /after 4 attempts/);
    assert.match(r.stderr, /connect|Connection|curl error/i);
    assert.ok(Date.now() - started < 20000, 'fails within its retry budget');
    // Same data directory, new server: the key must not exist.
    s3b = await startS3({ dir });
    const h = await runTool(['s3://kill/p', 'head', 'mp/obj'], { env: s3b.env });
    assert.equal(h.code, 'not found', h.stderr);
    const ls = await runAws(s3b, ['s3', 'ls', '--recursive', 's3://kill/']);
    assert.doesNotMatch(ls, /mp\/obj/);
  } finally {
    await s3.stop();
    if (s3b) await s3b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('through a fault-injecting proxy', () => {
  let s3;
  before(async () => {
    s3 = await startS3();
    await s3.createBucket('faults');
  });
  after(async () => { await s3.stop(); });

  test('500s, 503 SlowDown and resets: uploads complete correctly through retries', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint, failRate: 0.15, slowDownRate: 0.05, resetRate: 0.1, seed: 42 });
    try {
      const data = pattern(4 * 1024 * 1024 + 99, 11);
      const flags = ['--endpoint', proxy.endpoint, '--part-size', '256Ki', '--threshold', '256Ki', '--concurrency', '4',
        '--retries', '10', '--retry-base-ms', '10'];
      let r = await runTool([...flags, 's3://faults', 'put', 'big', '-'], { env: s3.env, input: data });
      assert.equal(r.status, 0, r.stderr);
      r = await runTool([...flags, 's3://faults', 'bench-put', 'small', '60', '1000', '4'], { env: s3.env });
      assert.equal(r.status, 0, r.stderr);
      r = await runTool([...flags, '--page', '7', 's3://faults', 'list', 'small/'], { env: s3.env });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.toString().trim().split('\n').length, 60);
      assert.ok(proxy.stats.failed + proxy.stats.reset + proxy.stats.slowdown >= 5, JSON.stringify(proxy.stats.failed));
      // Read back directly from the store, not through the proxy.
      r = await runTool(['s3://faults', 'get', 'big'], { env: s3.env });
      assert.ok(r.stdout.equals(data), 'object intact');
    } finally {
      await proxy.stop();
    }
  });

  test('truncated downloads resume from the last byte delivered', async () => {
    const data = pattern(3 * 1024 * 1024, 12);
    let r = await runTool(['s3://faults', 'put', 'resume', '-'], { env: s3.env, input: data });
    assert.equal(r.status, 0, r.stderr);
    const proxy = await startFaultProxy({ target: s3.endpoint, truncateRate: 0.6, seed: 3 });
    try {
      r = await runTool(['--endpoint', proxy.endpoint, '--retries', '10', '--retry-base-ms', '10', 's3://faults', 'get', 'resume'],
        { env: s3.env });
      assert.equal(r.status, 0, r.stderr);
      assert.ok(proxy.stats.truncated >= 1, 'a transfer was cut');
      assert.ok(r.stdout.equals(data), 'every byte exactly once');
      assert.ok(proxy.stats.log.filter((l) => l.startsWith('GET')).length >= 2);
    } finally {
      await proxy.stop();
    }
  });

  test('CompleteMultipartUpload answering 200 with <Error> is retried', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint, completeErrors: 2 });
    try {
      const data = pattern(1024 * 1024, 13);
      const r = await runTool(['--endpoint', proxy.endpoint, '--part-size', '256Ki', '--threshold', '256Ki',
        '--retries', '4', '--retry-base-ms', '10', 's3://faults', 'put', 'complete', '-'], { env: s3.env, input: data });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(proxy.stats.completeErrors, 2);
      const g = await runTool(['s3://faults', 'get', 'complete'], { env: s3.env });
      assert.ok(g.stdout.equals(data));
    } finally {
      await proxy.stop();
    }
  });

  test('an <Error> in a 200 Complete that persists fails the upload with the store code', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint, completeErrors: 100 });
    try {
      const r = await runTool(['--endpoint', proxy.endpoint, '--part-size', '256Ki', '--threshold', '256Ki',
        '--retries', '2', '--retry-base-ms', '10', 's3://faults', 'put', 'never', '-'],
      { env: s3.env, input: pattern(600 * 1024, 14) });
      assert.equal(r.code, 'i/o error', r.stderr);
      assert.match(r.stderr, /HTTP 200 with error InternalError: injected error in a 200 response \(after 3 attempts\)/);
      const h = await runTool(['s3://faults', 'head', 'never'], { env: s3.env });
      assert.equal(h.code, 'not found');
    } finally {
      await proxy.stop();
    }
  });

  test('connection pool: many small requests reuse a few connections', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint });
    try {
      const r = await runTool(['--endpoint', proxy.endpoint, 's3://faults', 'bench-put', 'pool', '200', '100', '4'],
        { env: s3.env });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(proxy.stats.requests, 200);
      assert.ok(proxy.stats.connections <= 8, `${proxy.stats.connections} TCP connections for 200 requests`);
    } finally {
      await proxy.stop();
    }
  });

  test('4xx answers are not retried', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint });
    try {
      const r = await runTool(['--endpoint', proxy.endpoint, '--retries', '5', 's3://faults', 'get', 'no/such/key'],
        { env: s3.env });
      assert.equal(r.code, 'not found', r.stderr);
      assert.match(r.stderr, /NoSuchKey/);
      assert.equal(proxy.stats.requests, 1);
      const b = await runTool(['--endpoint', proxy.endpoint, 's3://no-such-bucket', 'put', 'k', '-'],
        { env: s3.env, input: Buffer.from('x') });
      assert.equal(b.code, 'not found', b.stderr);
      assert.match(b.stderr, /NoSuchBucket/);
    } finally {
      await proxy.stop();
    }
  });

  test('a wrong secret is refused as denied, without retries', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint, verifySecret: 'S3RVER' });
    try {
      const r = await runTool(['--endpoint', proxy.endpoint, 's3://faults', 'put', 'k', '-'],
        { env: { ...s3.env, AWS_SECRET_ACCESS_KEY: 'wrong' }, input: Buffer.from('x') });
      assert.equal(r.code, 'denied', r.stderr);
      assert.match(r.stderr, /SignatureDoesNotMatch/);
      assert.equal(proxy.stats.requests, 1);
      const ok = await runTool(['--endpoint', proxy.endpoint, 's3://faults', 'put', 'k', '-'],
        { env: s3.env, input: Buffer.from('x') });
      assert.equal(ok.status, 0, ok.stderr);
    } finally {
      await proxy.stop();
    }
  });

  test('a slow server hits the request timeout', async () => {
    const proxy = await startFaultProxy({ target: s3.endpoint, delayMs: 3000 });
    try {
      const started = Date.now();
      const r = await runTool(['--endpoint', proxy.endpoint, '--timeout-ms', '400', '--retries', '1', '--retry-base-ms', '10',
        's3://faults', 'head', 'x'], { env: s3.env });
      assert.equal(r.code, 'timed out', r.stderr);
      assert.match(r.stderr, /timed out/i);
      assert.ok(Date.now() - started < 2500, 'gave up before the server answered');
    } finally {
      await proxy.stop();
    }
  });
});

test('a server that never answers hits the stall timeout', async () => {
  const hole = await startBlackhole();
  try {
    const started = Date.now();
    const r = await runTool(['--endpoint', hole.endpoint, '--stall-ms', '1000', '--retries', '0',
      's3://bucket', 'get', 'k'], { env: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } });
    assert.equal(r.code, 'timed out', r.stderr);
    assert.ok(Date.now() - started < 5000);
  } finally {
    await hole.stop();
  }
});
