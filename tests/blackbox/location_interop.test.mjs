// The location interface run end to end through build/tests/location_tool:
// the same suite against s3rver (s3://) and a directory (file://), plus awscli
// interoperability (objects written by shardvault read by awscli and back).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startS3, startFaultProxy } from './lib/s3.mjs';
import { runTool, toolPath, pattern, runAws } from './lib/location.mjs';

function suite(name, setup) {
  describe(name, () => {
    let ctx;
    before(async () => { ctx = await setup(); });
    after(async () => { await ctx.stop(); });
    // Leading "--name value" pairs are tool options and go before the URL.
    const t = (args, opts = {}) => {
      let i = 0;
      while (i < args.length && args[i].startsWith('--')) i += 2;
      return runTool([...(ctx.flags ?? []), ...args.slice(0, i), ctx.url, ...args.slice(i)], { env: ctx.env, ...opts });
    };

    test('put, get, ranged get, head', async () => {
      const data = pattern(100000, 3);
      let r = await t(['put', 'dir/obj.bin', '-'], { input: data });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['get', 'dir/obj.bin']);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.equals(data));
      r = await t(['get', 'dir/obj.bin', '1000', '2345']);
      assert.ok(r.stdout.equals(data.subarray(1000, 3345)));
      r = await t(['get', 'dir/obj.bin', '99990', '-1']);
      assert.ok(r.stdout.equals(data.subarray(99990)));
      r = await t(['get', 'dir/obj.bin', '100001', '-1']);
      assert.equal(r.code, 'invalid input', r.stderr);
      r = await t(['head', 'dir/obj.bin']);
      const info = JSON.parse(r.stdout);
      assert.equal(info.size, 100000);
      assert.ok(info.etag.length > 0);
      assert.ok(Math.abs(info.mtime_ms - Date.now()) < 120000);
      r = await t(['head', 'dir/missing']);
      assert.equal(r.code, 'not found');
      assert.match(r.stderr, /head dir\/missing at (s3|file):\/\//);
      r = await t(['get', 'dir/missing']);
      assert.equal(r.code, 'not found');
    });

    test('empty object and keys that need encoding', async () => {
      let r = await t(['put', 'empty', '-'], { input: Buffer.alloc(0) });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['head', 'empty']);
      assert.equal(JSON.parse(r.stdout).size, 0);
      r = await t(['get', 'empty']);
      assert.equal(r.stdout.length, 0);
      const key = 'odd/a b+c=d&e%f~ü!.txt';
      r = await t(['put', key, '-'], { input: Buffer.from('odd') });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['get', key]);
      assert.equal(r.stdout.toString(), 'odd');
      r = await t(['list', 'odd/']);
      assert.equal(r.stdout.toString().split('\t')[0], key);
    });

    test('keys are validated before touching the store', async () => {
      for (const bad of ['../x', 'a//b', '/abs', 'a/./b', 'a/', 'x\ny']) {
        const r = await t(['put', bad, '-'], { input: Buffer.from('x') });
        assert.equal(r.code, 'invalid input', `${JSON.stringify(bad)}: ${r.stderr}`);
      }
    });

    test('multipart streaming writer (s3: parts in parallel)', async () => {
      const data = pattern(3 * 1024 * 1024 + 777, 9);
      // On s3:// go through a counting proxy to see the parts and their parallelism.
      const proxy = ctx.scheme === 's3' ? await startFaultProxy({ target: ctx.direct.AWS_ENDPOINT_URL, delayMs: 30, verifySecret: 'S3RVER' }) : null;
      const flags = ['--part-size', '512Ki', '--threshold', '512Ki', '--concurrency', '3'];
      if (proxy) flags.push('--endpoint', proxy.endpoint);
      let r = await t([...flags, 'put', 'mp/big', '-'], { input: data });
      if (proxy) await proxy.stop();
      assert.equal(r.status, 0, r.stderr);
      r = await t(['get', 'mp/big']);
      assert.ok(r.stdout.equals(data), 'multipart object reads back identical');
      if (proxy) {
        const parts = proxy.stats.log.filter((l) => /^PUT .*partNumber=\d+&uploadId=/.test(l));
        assert.equal(parts.length, 7, proxy.stats.log.join('\n'));
        assert.ok(proxy.stats.log.some((l) => /^POST .*\?uploads=$/.test(l)));
        assert.ok(proxy.stats.log.some((l) => /^POST .*\?uploadId=/.test(l)));
        assert.ok(proxy.stats.maxInFlight >= 2, `parts overlap (max in flight ${proxy.stats.maxInFlight})`);
        assert.ok(proxy.stats.maxInFlight <= 3, `at most --concurrency parts (max in flight ${proxy.stats.maxInFlight})`);
      }
    });

    test('an aborted writer leaves nothing under the key (single and multipart)', async () => {
      let r = await t(['put-abort', 'ab/small', '-'], { input: Buffer.from('x') });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['--part-size', '256Ki', '--threshold', '256Ki', 'put-abort', 'ab/multi', '-'],
        { input: pattern(1024 * 1024, 21) });
      assert.equal(r.status, 0, r.stderr);
      for (const k of ['ab/small', 'ab/multi']) assert.equal((await t(['head', k])).code, 'not found');
      assert.equal((await t(['list', 'ab/'])).stdout.length, 0);
    });

    test('streaming writer memory stays bounded by parts in flight', async () => {
      const total = 48 * 1024 * 1024;
      const r = await t(['--part-size', '1Mi', '--threshold', '1Mi', '--concurrency', '2', 'put', 'rss/obj', '-'], {
        // A sanitized build's quarantine would keep freed parts resident.
        env: { ...ctx.env, LOCATION_TOOL_RSS: '1', ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? ''}:quarantine_size_mb=1` },
        onSpawn: (child) => {
          const chunk = pattern(1024 * 1024, 31);
          let sent = 0;
          const pump = () => {
            while (sent < total) {
              sent += chunk.length;
              if (!child.stdin.write(chunk)) return child.stdin.once('drain', pump);
            }
            child.stdin.end();
          };
          pump();
        },
      });
      assert.equal(r.status, 0, r.stderr);
      const rss = Number(/peak_rss_bytes=(\d+)/.exec(r.stderr)[1]);
      assert.ok(rss < 28 * 1024 * 1024, `peak RSS ${rss} bytes for a ${total}-byte upload`);
      assert.equal(JSON.parse((await t(['head', 'rss/obj'])).stdout).size, total);
    });

    test('list: prefix, delimiter, pagination, start-after', async () => {
      const keys = ['l/a/1', 'l/a/2', 'l/b', 'l/c/d/e', 'l/c/f', 'lz'];
      for (const k of keys) assert.equal((await t(['put', k, '-'], { input: Buffer.from(k) })).status, 0);
      const lines = (r) => r.stdout.toString().trim().split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
      let r = await t(['--page', '2', 'list', 'l/']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(lines(r), keys.slice(0, 5));
      r = await t(['--page', '2', 'list', 'l/', '--delim', '/']);
      assert.deepEqual(lines(r), ['l/a/', 'l/b', 'l/c/']);
      r = await t(['list', 'l/c/', '--delim', '/']);
      assert.deepEqual(lines(r), ['l/c/d/', 'l/c/f']);
      r = await t(['--page', '1', 'list', 'l', '--start-after', 'l/b']);
      assert.deepEqual(lines(r), ['l/c/d/e', 'l/c/f', 'lz']);
      r = await t(['list', 'l/', '--delim', '/', '--start-after', 'l/c/d/e']);
      assert.deepEqual(lines(r), ['l/c/'], 'a prefix holding keys after start-after is listed');
      r = await t(['list', 'l/', '--delim', '/', '--start-after', 'l/c/f']);
      assert.deepEqual(lines(r), []);
      r = await t(['list', 'nothing/here/']);
      assert.equal(r.status, 0);
      assert.equal(r.stdout.length, 0);
    });

    test('copy, delete, delete-many in batches', async () => {
      let r = await t(['put', 'cp/src', '-'], { input: Buffer.from('copy me') });
      r = await t(['copy', 'cp/src', 'cp/dst']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal((await t(['get', 'cp/dst'])).stdout.toString(), 'copy me');
      r = await t(['copy', 'cp/none', 'cp/dst2']);
      assert.equal(r.code, 'not found', r.stderr);
      assert.equal((await t(['delete', 'cp/src'])).status, 0);
      assert.equal((await t(['delete', 'cp/src'])).status, 0, 'deleting an absent key succeeds');
      assert.equal((await t(['head', 'cp/src'])).code, 'not found');
      // 1100 keys: two DeleteObjects batches on s3://
      r = await t(['bench-put', 'many', '1100', '10', '8']);
      assert.equal(r.status, 0, r.stderr);
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(8, '0')}`);
      r = await t(['list', 'many/']);
      assert.equal(r.stdout.toString().trim().split('\n').length, 1100);
      r = await t(['delete-many', '-'], { input: Buffer.from(keys.join('\n')) });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['list', 'many/']);
      assert.equal(r.stdout.length, 0);
    });

    test('put-file and get-file', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'sv-loc-pf-'));
      try {
        const src = path.join(dir, 'shard.sst');
        const data = pattern(200000, 5);
        writeFileSync(src, data);
        let r = await t(['put-file', 'blobs/ab/abcdef', src]);
        assert.equal(r.status, 0, r.stderr);
        if (ctx.scheme === 'file' && ctx.sameFs) assert.equal(statSync(src).nlink, 2, 'hard-linked');
        const out = path.join(dir, 'out.sst');
        r = await t(['get-file', 'blobs/ab/abcdef', out]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(readFileSync(out).equals(data));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('create-if-absent', async () => {
      if (ctx.scheme === 'file') {
        assert.equal((await t(['create', 'once', '-'], { input: Buffer.from('1') })).status, 0);
        const r = await t(['create', 'once', '-'], { input: Buffer.from('2') });
        assert.equal(r.code, 'already exists', r.stderr);
        assert.equal((await t(['get', 'once'])).stdout.toString(), '1');
        return;
      }
      // s3rver ignores If-None-Match: the automatic probe notices and refuses clearly.
      let r = await t(['create', 'once', '-'], { input: Buffer.from('1') });
      assert.equal(r.code, 'unsupported', r.stderr);
      assert.match(r.stderr, /ignores If-None-Match/);
      assert.match(r.stderr, /SHARDVAULT_S3_CONDITIONAL_WRITES=best-effort/);
      assert.equal((await t(['head', 'once'])).code, 'not found', 'nothing written when refused');
      r = await t(['--cond', 'off', 'create', 'once', '-'], { input: Buffer.from('1') });
      assert.equal(r.code, 'unsupported');
      // documented best effort: HEAD then PUT
      r = await t(['--cond', 'best-effort', 'create', 'once', '-'], { input: Buffer.from('1') });
      assert.equal(r.status, 0, r.stderr);
      r = await t(['--cond', 'best-effort', 'create', 'once', '-'], { input: Buffer.from('2') });
      assert.equal(r.code, 'already exists');
      assert.equal((await t(['get', 'once'])).stdout.toString(), '1');
    });
  });
}

// Requests go through a proxy that verifies every SigV4 signature as S3
// would (s3rver itself does not), so signing bugs fail here.
suite('s3:// against s3rver (signatures verified)', async () => {
  const s3 = await startS3();
  await s3.createBucket('suite');
  const proxy = await startFaultProxy({ target: s3.endpoint, verifySecret: 'S3RVER' });
  return {
    scheme: 's3', url: 's3://suite/some/prefix', env: { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint },
    direct: s3.env, proxy,
    stop: async () => {
      await proxy.stop();
      await s3.stop();
      assert.deepEqual(proxy.stats.sigFailures, [], 'every request carried a valid SigV4 signature');
      assert.ok(proxy.stats.sigChecked > 0, 'requests went through the verifying proxy');
    },
  };
});

suite('file://', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sv-loc-file-'));
  return { scheme: 'file', url: `file://${dir}/loc`, env: {}, sameFs: true, flags: ['--no-fsync'],
    stop: async () => rmSync(dir, { recursive: true, force: true }) };
});

describe('awscli interoperability', () => {
  let s3;
  let dir;
  before(async () => {
    s3 = await startS3();
    await s3.createBucket('interop');
    dir = mkdtempSync(path.join(os.tmpdir(), 'sv-loc-aws-'));
  });
  after(async () => {
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('objects written by shardvault are listed and downloaded by awscli', async () => {
    const small = pattern(1234, 1);
    const big = pattern(2 * 1024 * 1024 + 5, 2);
    let r = await runTool(['s3://interop/sv', 'put', 'x/small.bin', '-'], { env: s3.env, input: small });
    assert.equal(r.status, 0, r.stderr);
    r = await runTool(['--part-size', '256Ki', '--threshold', '256Ki', 's3://interop/sv', 'put', 'x/big.bin', '-'],
      { env: s3.env, input: big });
    assert.equal(r.status, 0, r.stderr);
    const ls = await runAws(s3, ['s3', 'ls', '--recursive', 's3://interop/sv/']);
    assert.match(ls, /\s1234 sv\/x\/small\.bin/);
    assert.match(ls, new RegExp(`\\s${big.length} sv/x/big\\.bin`));
    await runAws(s3, ['s3', 'cp', 's3://interop/sv/x/big.bin', path.join(dir, 'big.bin')]);
    await runAws(s3, ['s3', 'cp', 's3://interop/sv/x/small.bin', path.join(dir, 'small.bin')]);
    assert.ok(readFileSync(path.join(dir, 'big.bin')).equals(big));
    assert.ok(readFileSync(path.join(dir, 'small.bin')).equals(small));
  });

  test('objects uploaded by awscli (multipart too) are read by shardvault', async () => {
    const data = pattern(9 * 1024 * 1024 + 3, 4); // above awscli's 8 MiB multipart threshold
    writeFileSync(path.join(dir, 'up.bin'), data);
    await runAws(s3, ['s3', 'cp', path.join(dir, 'up.bin'), 's3://interop/aws/up.bin']);
    let r = await runTool(['s3://interop/aws', 'head', 'up.bin'], { env: s3.env });
    assert.equal(JSON.parse(r.stdout).size, data.length);
    r = await runTool(['s3://interop/aws', 'get', 'up.bin'], { env: s3.env });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.equals(data));
    r = await runTool(['s3://interop', 'list', 'aws/'], { env: s3.env });
    assert.equal(r.stdout.toString().split('\t')[0], 'aws/up.bin');
  });
});

test('location_tool exists', () => {
  assert.ok(statSync(toolPath()).isFile());
});
