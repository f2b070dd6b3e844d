// A real single-member etcd (Debian's etcd-server) for black-box tests, on
// free loopback ports with its data in a temp dir; stop() and start() keep
// the ports and the data. A missing etcd binary fails the test.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { removeAtExit } from './reap.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function startEtcd() {
  const dir = removeAtExit(mkdtempSync(path.join(tmpdir(), 'sv-etcd-')));
  let clientPort, peerPort, client, peer;
  const choosePorts = async () => {
    clientPort = await freePort();
    peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    client = `http://127.0.0.1:${clientPort}`;
    peer = `http://127.0.0.1:${peerPort}`;
  };
  await choosePorts();
  let proc = null;
  let exited = null;
  const e = {
    dir, port: clientPort, endpoint: `127.0.0.1:${clientPort}`,
    async start() {
      const log = openSync(path.join(dir, 'etcd.log'), 'a');
      proc = spawn('etcd', ['--name', 't', '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `t=${peer}`,
        '--heartbeat-interval', '10', '--election-timeout', '100',
        '--experimental-watch-progress-notify-interval', '1s', '--log-level', 'warn'],
      { stdio: ['ignore', log, log] });
      exited = new Promise((resolve) => {
        proc.on('exit', (code, signal) => resolve({ code, signal }));
        proc.on('error', (err) => resolve({ error: err }));
      });
      const deadline = Date.now() + 30000;
      for (;;) {
        const st = await Promise.race([exited, sleep(100).then(() => null)]);
        if (st) {
          let tail = '';
          try { tail = readFileSync(path.join(dir, 'etcd.log'), 'utf8').trim().split('\n').slice(-3).join(' | '); } catch { /* no log */ }
          throw new Error(`etcd did not start (${st.error ? `${st.error.message}; install etcd-server (scripts/deps.sh --test)` : `exit ${st.code}`})${tail ? `: ${tail}` : ''}`);
        }
        try {
          const r = await fetch(`${client}/v3/maintenance/status`, { method: 'POST', body: '{}' });
          if (r.status === 200) {
            const h = await fetch(`${client}/health`);
            if (h.status === 200 && (await h.json()).health === 'true') return;
          }
        } catch { /* not yet */ }
        if (Date.now() > deadline) throw new Error(`etcd did not become healthy; see ${dir}/etcd.log`);
      }
    },
    async stop() {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
    ctl(...args) {
      return execFileSync('etcdctl', [`--endpoints=${e.endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } }).toString();
    },
    async cleanup() {
      await e.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // A port taken by another process between the choice and etcd's bind makes
  // it exit at start: try again with other ports (start() and stop() later
  // keep the ports that worked).
  for (let attempt = 0; ; attempt++) {
    try {
      await e.start();
      break;
    } catch (err) {
      if (attempt >= 3 || !/did not start/.test(err.message)) throw err;
      rmSync(path.join(dir, 'data'), { recursive: true, force: true });
      await choosePorts();
      e.port = clientPort;
      e.endpoint = `127.0.0.1:${clientPort}`;
    }
  }
  return e;
}
