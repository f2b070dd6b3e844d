// API keys in a cluster (docs/security.md "Clusters"): nodes on one etcd
// share keys and roles. A key made on one node works on every node; a role
// change, a rotation and a revocation made on one node take effect on the
// others within about a second; the root key file is shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, tempDir } from './lib/server.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { until } from './lib/maintenance.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const as = (srv, key, method, p, body) => srv.req(method, p, body, key ? { authorization: `Bearer ${key}` } : {});

test('a cluster shares its API keys: made on one node, usable on all; role changes, rotations and revocations reach every node', async () => {
  const etcd = await startEtcd();
  const dir = tempDir('sv-authc-');
  const rootFile = path.join(dir, 'root.key');
  const root = `sv_root_${'r'.repeat(8)}0123456789abcdef0123456789abcdef`;
  writeFileSync(rootFile, `${root}\n`, { mode: 0o600 });
  const env = { SHARDVAULT_CLUSTER_SECRET: 'auth-cluster-secret-0123456789abcdef', SHARDVAULT_ROOT_KEY_FILE: rootFile,
    SHARDVAULT_AUTH_FAIL_DELAY_MS: '0' };
  const prefix = `/ac${Date.now()}/`;
  const args = (n) => ['--auth', 'apikey', '--catalog', `etcd://${etcd.endpoint}${prefix}`, '--node-ttl', '2s', '--node-name', n];
  const a = await startServer({ env, args: args('a') });
  const b = await startServer({ env, args: args('b') });
  try {
    for (const n of [a, b]) assert.equal((await as(n, root, 'GET', '/v1/authz/me')).status, 200, 'the shared root key');
    // made on a, used on b
    let r = await as(a, root, 'POST', '/v1/authz/keys', { name: 'k1', roles: ['reader'] });
    assert.equal(r.status, 201, r.text);
    const k1 = r.json;
    const me = await until('k1 on b', async () => {
      const x = await as(b, k1.key, 'GET', '/v1/authz/me');
      return x.status === 200 ? x.json : null;
    });
    assert.equal(me.keyId, k1.id);
    assert.deepEqual(me.roles, ['reader']);
    assert.equal((await as(b, k1.key, 'POST', '/v1/collections', { name: 'X', vectors: { default: { dim: 2 } } })).status, 403,
      'a reader on b cannot write');
    // a custom role made on b, given on a
    r = await as(b, root, 'POST', '/v1/authz/roles', { name: 'art', permissions: [{ actions: ['read', 'write', 'manage'], collections: 'Art*' }] });
    assert.equal(r.status, 201, r.text);
    await until('role art on a', async () => (await as(a, root, 'PUT', `/v1/authz/keys/${k1.id}`, { roles: ['art'] })).status === 200);
    await until('k1 as art on b', async () => {
      const x = await as(b, k1.key, 'GET', '/v1/authz/me');
      return x.status === 200 && x.json.roles[0] === 'art';
    });
    r = await as(b, k1.key, 'POST', '/v1/collections', { name: 'Art1', vectors: { default: { dim: 2 } } });
    assert.equal(r.status, 200, r.text);
    // rotated on b: the new secret works on a, the old one stops (no grace)
    r = await as(b, root, 'POST', `/v1/authz/keys/${k1.id}/rotate`, {});
    assert.equal(r.status, 200, r.text);
    const rotated = r.json.key;
    assert.notEqual(rotated, k1.key);
    await until('the rotated secret on a', async () => (await as(a, rotated, 'GET', '/v1/authz/me')).status === 200);
    assert.equal((await as(a, k1.key, 'GET', '/v1/authz/me')).status, 401, 'the old secret is refused on a');
    // revoked on a: refused on b, and stays revoked (a node's last-use write never brings it back)
    for (let i = 0; i < 5; i++) assert.equal((await as(b, rotated, 'GET', '/v1/authz/me')).status, 200);
    assert.equal((await as(a, root, 'DELETE', `/v1/authz/keys/${k1.id}`)).status, 204);
    await until('the revoked key refused on b', async () => (await as(b, rotated, 'GET', '/v1/authz/me')).status === 401);
    await sleep(1500);
    for (const n of [a, b]) {
      assert.equal((await as(n, rotated, 'GET', '/v1/authz/me')).status, 401);
      const list = (await as(n, root, 'GET', '/v1/authz/keys')).json.keys;
      assert.ok(!list.some((k) => k.id === k1.id), JSON.stringify(list));
    }
  } finally {
    for (const n of [a, b]) { await n.stop(); n.cleanup(); }
    await etcd.cleanup();
  }
});
