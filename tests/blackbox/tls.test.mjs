// HTTPS: serve --tls-cert/--tls-key/--tls-client-ca, TLS versions, the CLI's
// --cacert, client certificates and the certificate reload on SIGHUP.
// Certificates are made with the openssl command line in a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { BIN, startServer, tempDir } from './lib/server.mjs';

let dir;
const f = (name) => path.join(dir, name);
const read = (name) => readFileSync(f(name));

function openssl(...args) {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
}

function newKey(name) {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

function makeCA(name) {
  newKey(name);
  writeFileSync(f(`${name}.ext`), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-signkey', `${name}.key`, '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

// A leaf certificate for `name` issued by `ca`; kind is 'server' (SAN
// 127.0.0.1) or 'client'. A fresh key unless keyName names an existing one.
function issue(name, ca, kind, serial, keyName = name) {
  if (keyName === name) newKey(name);
  const ext = kind === 'server'
    ? 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n'
    : 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  writeFileSync(f(`${name}.ext`), ext);
  openssl('req', '-new', '-key', `${keyName}.key`, '-subj', `/CN=${kind === 'server' ? '127.0.0.1' : name}`, '-out', `${name}.csr`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(serial),
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

before(() => {
  dir = tempDir('sv-tls-');
  makeCA('ca');           // issues the server certificates
  makeCA('clientca');     // issues the accepted client certificates
  makeCA('otherca');      // issues a client certificate nobody trusts
  issue('server', 'ca', 'server', 1001);
  issue('server2', 'ca', 'server', 1002);
  issue('client', 'clientca', 'client', 2001);
  issue('stranger', 'otherca', 'client', 3001);
  newKey('unrelated');
});

after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const run = (args, env = {}) => spawnSync(BIN, args, { encoding: 'utf8', timeout: 30000, env: { ...process.env, ...env } });
const tlsArgs = (cert = 'server') => ['--tls-cert', f(`${cert}.pem`), '--tls-key', f(`${cert}.key`)];

// One request over a fresh connection; resolves { status, json, text } or
// rejects with the connection's error.
function req(url, p, { method = 'GET', body, ca = read('ca.pem'), cert, key, maxVersion, minVersion } = {}) {
  const u = new URL(url + p);
  return new Promise((resolve, reject) => {
    const r = https.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, ca, cert, key,
      minVersion, maxVersion, agent: false, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, json, text });
      });
    });
    r.on('error', reject);
    r.end(body ? JSON.stringify(body) : undefined);
  });
}

// The certificate a new connection is served.
function peerCert(url) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: read('ca.pem') }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c);
    });
    s.on('error', reject);
  });
}

function curl(...args) {
  return spawnSync('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' });
}

test('serve --help lists the TLS flags and their environment variables', () => {
  const r = run(['serve', '--help']);
  assert.equal(r.status, 0);
  for (const s of ['--tls-cert', 'SHARDVAULT_TLS_CERT', '--tls-key', 'SHARDVAULT_TLS_KEY', '--tls-client-ca', 'SHARDVAULT_TLS_CLIENT_CA']) {
    assert.ok(r.stdout.includes(s), `serve --help mentions ${s}`);
  }
  const top = run(['--help']);
  assert.match(top.stdout, /--cacert FILE/);
  assert.match(top.stdout, /SHARDVAULT_CACERT/);
});

test('half or broken TLS settings stop the start with a message naming the flag', () => {
  const data = tempDir('sv-tls-data-');
  const serve = (args, env) => run(['serve', '--listen', '127.0.0.1:0', '--data-dir', data, ...args], { SHARDVAULT_LOG_LEVEL: 'error', ...env });
  try {
    let r = serve(['--tls-cert', f('server.pem')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--tls-key .*is missing/);
    r = serve(['--tls-key', f('server.key')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--tls-cert .*is missing/);
    r = serve([], { SHARDVAULT_TLS_CERT: f('server.pem') });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--tls-key .*SHARDVAULT_TLS_KEY.* is missing/);
    r = serve(['--tls-client-ca', f('clientca.pem')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /tls-client-ca.*need HTTPS/);

    r = serve(['--tls-cert', f('nope.pem'), '--tls-key', f('server.key')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-cert: cannot open .*nope\.pem/);
    r = serve(['--tls-cert', f('server.pem'), '--tls-key', f('nope.key')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-key: cannot open .*nope\.key/);
    r = serve(['--tls-cert', f('server.key'), '--tls-key', f('server.key')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-cert: .*no usable PEM certificate/);
    r = serve(['--tls-cert', f('server.pem'), '--tls-key', f('server.pem')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-key: .*no usable .*private key/);
    r = serve(['--tls-cert', f('server.pem'), '--tls-key', f('unrelated.key')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-key: the key in .*unrelated\.key does not match the certificate/);
    r = serve([...tlsArgs(), '--tls-client-ca', f('nope-ca.pem')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--tls-client-ca: cannot open .*nope-ca\.pem/);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('HTTPS with TLS 1.2 and 1.3 only; plain HTTP gets no API answer', async () => {
  const srv = await startServer({ args: tlsArgs() });
  try {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(srv.stdout, /curl -X POST https:\/\//);
    let r = curl('--cacert', f('ca.pem'), `${srv.url}/v1/meta`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, 'shardvault');
    r = curl('--cacert', f('ca.pem'), '--tlsv1.2', '--tls-max', '1.2', '-w', '%{http_code}', '-o', '/dev/null', `${srv.url}/v1/meta`);
    assert.equal(r.stdout, '200', r.stderr);
    r = curl('--cacert', f('ca.pem'), '--tlsv1.3', '-w', '%{http_code}', '-o', '/dev/null', `${srv.url}/v1/meta`);
    assert.equal(r.stdout, '200', r.stderr);
    // TLS 1.1 (the client allows it: security level 0) is refused.
    const old = ['--cacert', f('ca.pem'), '--tlsv1.1', '--tls-max', '1.1', '--ciphers', 'DEFAULT@SECLEVEL=0'];
    r = curl(...old, `${srv.url}/v1/meta`);
    assert.notEqual(r.status, 0, 'a TLS 1.1 handshake must fail');
    assert.ok(!r.stdout.includes('shardvault'), r.stdout);
    // Control: the same client does speak TLS 1.1 to a server that offers it.
    const s11 = spawn('openssl', ['s_server', '-accept', '127.0.0.1:0', '-cert', f('server.pem'), '-key', f('server.key'),
      '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-www'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise((resolve, reject) => {
        let out = '';
        const t = setTimeout(() => reject(new Error(`openssl s_server did not start: ${out}`)), 10000);
        s11.stdout.on('data', (d) => {
          out += d;
          const m = out.match(/ACCEPT\s+127\.0\.0\.1:(\d+)/) || out.match(/ACCEPT/) && out.match(/:(\d+)/);
          if (m) { clearTimeout(t); resolve(m[1]); }
        });
      });
      const c = curl(...old, '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${port}/`);
      assert.equal(c.stdout, '200', `control TLS 1.1 request: ${c.stderr}`);
    } finally {
      s11.kill();
    }

    // Plain HTTP to the HTTPS port: no API answer.
    const plain = await new Promise((resolve) => {
      const u = new URL(srv.url);
      const r2 = http.get({ host: u.hostname, port: u.port, path: '/v1/meta', agent: false, timeout: 5000 }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      r2.on('timeout', () => { r2.destroy(new Error('timeout')); });
      r2.on('error', (e) => resolve({ error: e }));
    });
    assert.ok(plain.error || !plain.text.includes('shardvault'), `plain HTTP got an API answer: ${JSON.stringify(plain)}`);

    // The API itself works over HTTPS (a write and a read).
    const created = await req(srv.url, '/v1/collections', { method: 'POST', body: { name: 'Tls', vectors: { default: { dim: 2 } } } });
    assert.ok(created.status < 300, created.text);
    const got = await req(srv.url, '/v1/collections/Tls');
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.name, 'Tls');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('the CLI talks HTTPS with --cacert or SHARDVAULT_CACERT and fails without the CA', async () => {
  const srv = await startServer({ args: tlsArgs() });
  try {
    let r = run(['--url', srv.url, '--cacert', f('ca.pem'), 'meta']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).name, 'shardvault');
    r = run(['collections', 'create', JSON.stringify({ name: 'Cli', vectors: { default: { dim: 2 } } })],
      { SHARDVAULT_URL: srv.url, SHARDVAULT_CACERT: f('ca.pem') });
    assert.equal(r.status, 0, r.stderr);
    r = run(['--url', srv.url, '--cacert', f('ca.pem'), 'collections', 'list']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"Cli"/);

    // No CA: the system's CAs do not know this one.
    r = run(['--url', srv.url, 'meta'], { SHARDVAULT_CACERT: '' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot verify the TLS certificate .*--cacert/);
    // The wrong CA.
    r = run(['--url', srv.url, '--cacert', f('otherca.pem'), 'meta']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot verify the TLS certificate/);
    // The flag wins over the environment.
    r = run(['--url', srv.url, '--cacert', f('ca.pem'), 'meta'], { SHARDVAULT_CACERT: f('otherca.pem') });
    assert.equal(r.status, 0, r.stderr);
    // A CA file that does not exist.
    r = run(['--url', srv.url, '--cacert', f('missing.pem'), 'meta']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--cacert/);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('--tls-client-ca: only clients with a certificate from that CA get answers (403 otherwise)', async () => {
  const srv = await startServer({ args: [...tlsArgs(), '--tls-client-ca', f('clientca.pem')] });
  try {
    const none = await req(srv.url, '/v1/meta');
    assert.equal(none.status, 403, none.text);
    assert.match(none.json.error[0].message, /client certificate is required/);

    const stranger = await req(srv.url, '/v1/meta', { cert: read('stranger.pem'), key: read('stranger.key') });
    assert.equal(stranger.status, 403, stranger.text);
    assert.match(stranger.json.error[0].message, /client certificate is not accepted/);

    // A server certificate is not a client certificate, even from a known CA
    // (and the server's CA is not the client CA).
    const serverCert = await req(srv.url, '/v1/meta', { cert: read('server.pem'), key: read('server.key') });
    assert.equal(serverCert.status, 403, serverCert.text);

    const good = await req(srv.url, '/v1/meta', { cert: read('client.pem'), key: read('client.key') });
    assert.equal(good.status, 200, good.text);
    assert.equal(good.json.name, 'shardvault');
    // Writes too, and over TLS 1.2 as well as 1.3.
    const created = await req(srv.url, '/v1/collections', { method: 'POST', cert: read('client.pem'), key: read('client.key'),
      maxVersion: 'TLSv1.2', body: { name: 'Mtls', vectors: { default: { dim: 2 } } } });
    assert.ok(created.status < 300, created.text);
    const refused = await req(srv.url, '/v1/collections', { method: 'POST', maxVersion: 'TLSv1.2',
      cert: read('stranger.pem'), key: read('stranger.key'), body: { name: 'Nope', vectors: { default: { dim: 2 } } } });
    assert.equal(refused.status, 403, refused.text);
    const list = await req(srv.url, '/v1/collections/Nope', { cert: read('client.pem'), key: read('client.key') });
    assert.equal(list.status, 404, 'the refused write did not happen');

    // curl with the good client certificate.
    const c = curl('--cacert', f('ca.pem'), '--cert', f('client.pem'), '--key', f('client.key'), `${srv.url}/v1/meta`);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(JSON.parse(c.stdout).name, 'shardvault');
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('SIGHUP reloads the certificate on the same port; a failed reload keeps the old one', async () => {
  copyFileSync(f('server.pem'), f('live.pem'));
  copyFileSync(f('server.key'), f('live.key'));
  const srv = await startServer({ args: ['--tls-cert', f('live.pem'), '--tls-key', f('live.key')], env: { SHARDVAULT_LOG_LEVEL: 'info' } });
  const waitLog = async (re, from) => {
    for (let i = 0; i < 100; i++) {
      if (re.test(srv.stderr.slice(from))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`no log line ${re} after SIGHUP; stderr:\n${srv.stderr}`);
  };
  try {
    const first = await peerCert(srv.url);
    assert.equal(parseInt(first.serialNumber, 16), 1001);

    copyFileSync(f('server2.pem'), f('live.pem'));
    copyFileSync(f('server2.key'), f('live.key'));
    let mark = srv.stderr.length;
    srv.proc.kill('SIGHUP');
    await waitLog(/TLS certificate reloaded/, mark);
    const second = await peerCert(srv.url);
    assert.equal(parseInt(second.serialNumber, 16), 1002, 'a new connection sees the new certificate');
    assert.notEqual(second.fingerprint256, first.fingerprint256);
    const meta = await req(srv.url, '/v1/meta');
    assert.equal(meta.status, 200, 'still serving on the same port');

    // A broken key: the reload fails, the server keeps the current certificate.
    writeFileSync(f('live.key'), 'not a key\n');
    mark = srv.stderr.length;
    srv.proc.kill('SIGHUP');
    await waitLog(/TLS reload failed.*--tls-key/, mark);
    const third = await peerCert(srv.url);
    assert.equal(parseInt(third.serialNumber, 16), 1002);
    // A key that belongs to another certificate is refused the same way.
    copyFileSync(f('server.key'), f('live.key'));
    mark = srv.stderr.length;
    srv.proc.kill('SIGHUP');
    await waitLog(/TLS reload failed.*does not match/, mark);
    assert.equal(parseInt((await peerCert(srv.url)).serialNumber, 16), 1002);
    assert.equal((await req(srv.url, '/v1/meta')).status, 200);

    // SIGTERM still stops it cleanly after the SIGHUPs.
    const { code } = await srv.stop();
    assert.equal(code, 0);
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
