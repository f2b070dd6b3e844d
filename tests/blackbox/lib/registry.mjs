// Helpers for the registry black-box tests: multi-tenant collections,
// loading and listing one tenant, tenant status changes.
import assert from 'node:assert/strict';
import { rng, uuidFrom, vec } from './server.mjs';

export const DIM = 8;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const until = async (what, fn, timeoutMs = 30000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
};

export async function mtCollection(srv, name, extra = {}) {
  const r = await srv.req('POST', '/v1/collections', {
    name, multiTenancy: true, vectors: { default: { dim: DIM } },
    properties: [{ name: 'n', type: 'int' }, { name: 's', type: 'text' }], ...extra,
  });
  assert.equal(r.status, 200, r.text);
}

export async function addTenants(srv, coll, names) {
  const r = await srv.req('POST', `/v1/collections/${coll}/tenants`, { tenants: names.map((name) => ({ name })) });
  assert.equal(r.status, 200, r.text);
}

// n objects into one tenant; returns Map id -> object.
export async function loadTenant(srv, coll, tenant, n, seed) {
  const rand = rng(seed);
  const objs = new Map();
  const lines = [];
  for (let i = 0; i < n; i++) {
    const o = { id: uuidFrom(rand), vector: vec(rand, DIM), properties: { n: i, s: `ü-${tenant}-${i}` } };
    objs.set(o.id, o);
    lines.push(JSON.stringify({ collection: coll, tenant, ...o }));
  }
  for (let i = 0; i < lines.length; i += 2000) {
    const r = await srv.req('POST', '/v1/batch/objects', lines.slice(i, i + 2000).join('\n'), { 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.failed, 0, r.text.slice(0, 300));
  }
  return objs;
}

export async function listTenant(srv, coll, tenant) {
  const out = new Map();
  let after = null;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/${coll}/objects?tenant=${tenant}&limit=5000${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    for (const o of r.json.objects) out.set(o.id, o);
    if (!r.json.next) return out;
    after = r.json.next;
  }
}

export function sameObjects(got, want) {
  assert.equal(got.size, want.size);
  for (const [id, o] of want) {
    const g = got.get(id);
    assert.ok(g, `object ${id} missing`);
    assert.deepEqual(g.properties, o.properties);
    assert.deepEqual(g.vector.map(Math.fround), o.vector.map(Math.fround));
  }
}

export async function tenantStatus(srv, coll, tenant) {
  const r = await srv.req('GET', `/v1/collections/${coll}/tenants`);
  assert.equal(r.status, 200, r.text);
  return r.json.tenants.find((t) => t.name === tenant)?.status;
}

export async function setStatus(srv, coll, tenant, status, wait = true) {
  const r = await srv.req('PUT', `/v1/collections/${coll}/tenants${wait ? '?wait=true' : ''}`, { tenants: [{ name: tenant, status }] });
  assert.equal(r.status, 200, r.text);
  return r.json.tenants[0].status;
}

// The newest job of a kind, once finished.
