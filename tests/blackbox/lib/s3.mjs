// Shared S3 helpers for black-box tests and benchmarks.
//
//   const s3 = await startS3();          // s3rver in a child process on 127.0.0.1:<free port>
//   await s3.createBucket('b');          // its own temp directory, removed by stop()
//   s3.endpoint                          // "http://127.0.0.1:<port>"
//   s3.env                               // AWS_* variables for awscli / shardvault
//   await s3.kill();                     // SIGKILL (fault tests); stop() also cleans up
//   await s3.stop();
//
//   const p = await startFaultProxy({ target: s3.endpoint, failRate: 0.2, resetRate: 0.1, delayMs: 0 });
//   p.endpoint, p.stats, await p.stop()
//
// s3rver runs in a child process (this same file, started with --child) so a
// test can kill it mid-transfer and so its CPU does not stall the test runner.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import { removeAtExit } from './reap.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');

export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

async function runChild(dir) {
  const require = createRequire(path.join(repoRoot, 'package.json'));
  const S3rver = require('s3rver');
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true });
  const addr = await server.run();
  process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

export async function startS3({ dir } = {}) {
  const s3rverPath = path.join(repoRoot, 'node_modules', 's3rver');
  if (!existsSync(s3rverPath)) {
    throw new Error(`s3rver is not installed at ${s3rverPath}: run npm ci in ${repoRoot}`);
  }
  const ownDir = !dir;
  dir = dir ?? removeAtExit(mkdtempSync(path.join(os.tmpdir(), 'sv-s3rver-')));
  const child = spawn(process.execPath, [
    // s3rver encrypts continuation tokens with DES, which OpenSSL 3 only has in
    // its legacy provider: without this flag every truncated listing is a 500.
    '--openssl-legacy-provider', fileURLToPath(import.meta.url), '--child', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start in 15 s: ${stderr}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)).port);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${stderr}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  let exited = false;
  const exitP = new Promise((r) => child.on('exit', () => { exited = true; r(); }));
  const s3 = {
    endpoint,
    port,
    dir,
    env: { ...S3_CREDENTIALS, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: endpoint },
    async createBucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: 'PUT' });
      if (res.status !== 200) throw new Error(`create bucket ${name}: HTTP ${res.status} ${await res.text()}`);
      return name;
    },
    async kill() {
      if (!exited) child.kill('SIGKILL');
      await exitP;
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitP;
      clearTimeout(t);
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return s3;
}

// AWS Signature V4 as S3 checks it (s3rver does not): rebuilds the canonical
// request from what arrived (path and query decoded and re-encoded strictly,
// pairs sorted), checks x-amz-content-sha256 against the body, and compares
// signatures. Returns null when valid, else a reason.
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
export function checkSigV4(req, body, secret) {
  const auth = req.headers.authorization;
  if (!auth) return 'no Authorization header';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return `malformed Authorization: ${auth}`;
  const [, , date, region, signedHeaders, signature] = m;
  const sha = req.headers['x-amz-content-sha256'];
  if (!sha) return 'x-amz-content-sha256 missing';
  const bodyHash = crypto.createHash('sha256').update(body).digest('hex');
  if (sha !== bodyHash && sha !== 'UNSIGNED-PAYLOAD') return `x-amz-content-sha256 ${sha} != sha256(body) ${bodyHash}`;
  const [rawPath, rawQuery = ''] = req.url.split(/\?(.*)/s);
  const canonPath = rawPath.split('/').map((seg) => enc(decodeURIComponent(seg))).join('/');
  const pairs = rawQuery === '' ? [] : rawQuery.split('&').map((kv) => {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    const v = i < 0 ? '' : kv.slice(i + 1);
    return [enc(decodeURIComponent(k)), enc(decodeURIComponent(v))];
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const canonQuery = pairs.map(([k, v]) => `${k}=${v}`).join('&');
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-content-sha256')) return `SignedHeaders lacks host or x-amz-content-sha256: ${signedHeaders}`;
  const canonHeaders = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const creq = [req.method, canonPath, canonQuery, canonHeaders, signedHeaders, sha].join('\n');
  const amzDate = req.headers['x-amz-date'];
  const scope = `${date}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', amzDate, scope, crypto.createHash('sha256').update(creq).digest('hex')].join('\n');
  const h = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
  const key = h(h(h(h('AWS4' + secret, date), region), 's3'), 'aws4_request');
  const want = crypto.createHmac('sha256', key).update(sts).digest('hex');
  return want === signature ? null : `signature mismatch; canonical request was:\n${creq}`;
}

// An HTTP proxy in front of an S3 endpoint that injects faults: for a fraction
// of requests it answers 500 (failRate), 503 SlowDown (slowDownRate) or resets
// the connection (resetRate); delayMs holds every response back.
// `onlyMethods` (e.g. ['PUT','POST']) limits faults to those methods.
// truncateRate cuts a GET response off after half its body; completeErrors
// answers that many CompleteMultipartUpload requests with 200 + <Error>.
export async function startFaultProxy({ target, failRate = 0, resetRate = 0, slowDownRate = 0, delayMs = 0,
  truncateRate = 0, completeErrors = 0, onlyMethods = null, seed = 1, verifySecret = null } = {}) {
  const t = new URL(target);
  let s = seed >>> 0 || 1;
  const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
  // log: "METHOD /path?query" per request; maxInFlight: most requests open at once.
  const stats = { requests: 0, failed: 0, reset: 0, slowdown: 0, passed: 0, truncated: 0, completeErrors: 0,
    log: [], inFlight: 0, maxInFlight: 0, connections: 0, sigChecked: 0, sigFailures: [] };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    stats.requests++;
    stats.log.push(`${req.method} ${req.url}`);
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    res.on('close', () => { stats.inFlight--; });
    const eligible = !onlyMethods || onlyMethods.includes(req.method);
    const r = eligible ? rnd() : 1;
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (verifySecret) {
        const why = checkSigV4(req, Buffer.concat(chunks), verifySecret);
        stats.sigChecked++;
        if (why) {
          stats.sigFailures.push(`${req.method} ${req.url}: ${why}`);
          res.writeHead(403, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code>' +
            '<Message>The request signature we calculated does not match the signature you provided.</Message></Error>');
          return;
        }
      }
      const go = () => {
        if (r < resetRate) {
          stats.reset++;
          req.socket.destroy();
          return;
        }
        if (r < resetRate + failRate) {
          stats.failed++;
          res.writeHead(500, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>' +
            '<Message>injected fault</Message></Error>');
          return;
        }
        if (r < resetRate + failRate + slowDownRate) {
          stats.slowdown++;
          res.writeHead(503, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>' +
            '<Message>injected slow down</Message></Error>');
          return;
        }
        if (req.method === 'POST' && /[?&]uploadId=/.test(req.url) && stats.completeErrors < completeErrors) {
          stats.completeErrors++;
          res.writeHead(200, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?>\n\n<Error><Code>InternalError</Code>' +
            '<Message>injected error in a 200 response</Message></Error>');
          return;
        }
        const truncate = req.method === 'GET' && rnd() < truncateRate;
        stats.passed++;
        const up = http.request({
          host: t.hostname, port: t.port, method: req.method, path: req.url,
          headers: { ...req.headers, host: t.host },
        }, (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          const len = Number(ur.headers['content-length'] ?? 0);
          if (!truncate || ur.statusCode >= 300 || len < 2) {
            ur.pipe(res);
            return;
          }
          stats.truncated++;
          let sent = 0;
          ur.on('data', (c) => {
            if (sent >= len / 2) return;
            const part = c.subarray(0, Math.max(0, Math.min(c.length, Math.ceil(len / 2) - sent)));
            sent += part.length;
            res.write(part);
            if (sent >= len / 2) res.once('drain', () => {}), setTimeout(() => req.socket.destroy(), 20);
          });
        });
        up.on('error', () => req.socket.destroy());
        up.end(Buffer.concat(chunks));
      };
      if (delayMs > 0) setTimeout(go, delayMs); else go();
    });
  });
  server.on('connection', (sock) => { stats.connections++; sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    async stop() {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

// A TCP server that accepts connections and never answers (timeout tests).
export async function startBlackhole() {
  const sockets = new Set();
  const server = net.createServer((sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    async stop() {
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

if (process.argv[2] === '--child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await runChild(process.argv[3]);
}
