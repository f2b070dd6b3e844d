// Helpers for the snapshot black-box tests: loading data, listing a whole
// collection, waiting for jobs, and writers whose history can be checked
// against a restored point in time.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { rng, uuidFrom, vec } from './server.mjs';

export const DIM = 16;

export async function createCollection(srv, name, shards = 4) {
  const r = await srv.req('POST', '/v1/collections', {
    name, shards, vectors: { default: { dim: DIM } },
    properties: [{ name: 'w', type: 'int' }, { name: 'seq', type: 'int' }, { name: 'tag', type: 'text' }],
  });
  assert.equal(r.status, 200, r.text);
}

// Loads n objects in NDJSON batches; returns Map id -> {vector, properties}.
export async function load(srv, collection, n, seed = 1, batch = 2000) {
  const rand = rng(seed);
  const objs = new Map();
  for (let done = 0; done < n;) {
    const lines = [];
    for (let i = 0; i < batch && done < n; i++, done++) {
      const o = { id: uuidFrom(rand), vector: vec(rand, DIM), properties: { w: -1, seq: done, tag: `t${done % 97}` } };
      objs.set(o.id, o);
      lines.push(JSON.stringify({ collection, ...o }));
    }
    const r = await srv.req('POST', '/v1/batch/objects', lines.join('\n'), { 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.failed, 0, r.text.slice(0, 300));
  }
  return objs;
}

// Every object of a collection: Map id -> object.
export async function listAll(srv, collection) {
  const out = new Map();
  let after = null;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/${collection}/objects?limit=10000${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    for (const o of r.json.objects) out.set(o.id, o);
    if (!r.json.next) break;
    after = r.json.next;
  }
  return out;
}

export async function waitJob(srv, id, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await srv.req('GET', `/v1/restore-jobs/${id}`);
    assert.equal(r.status, 200, r.text);
    if (r.json.state === 'COMPLETED' || r.json.state === 'FAILED') return r.json;
    if (Date.now() > deadline) throw new Error(`restore job ${id} still ${r.json.state} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export async function waitSnapshot(srv, collection, name, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await srv.req('GET', `/v1/collections/${collection}/snapshots/${name}`);
    assert.equal(r.status, 200, r.text);
    if (r.json.status !== 'PENDING') return r.json;
    if (Date.now() > deadline) throw new Error(`snapshot ${name} still PENDING after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

// n writers, each overwriting its own pool of ids one PUT at a time, in
// order. Restored state must be, for every writer, exactly the result of a
// prefix of its writes (the point in time), across all shards at once.
export function startWriters(srv, collection, n = 8, pool = 24) {
  let stop = false;
  const writers = Array.from({ length: n }, (_, w) => {
    const rand = rng(7000 + w);
    const ids = Array.from({ length: pool }, () => uuidFrom(rand));
    return { w, ids, log: [], acked: 0, errors: [] };
  });
  const done = Promise.all(writers.map(async (wr) => {
    const rand = rng(9000 + wr.w);
    for (let seq = 0; !stop; seq++) {
      const id = wr.ids[seq % wr.ids.length];
      const body = { vector: vec(rand, DIM), properties: { w: wr.w, seq, tag: `w${wr.w}` } };
      wr.log.push({ id, ...body });
      const r = await srv.req('PUT', `/v1/collections/${collection}/objects/${id}`, body);
      if (r.status !== 200) wr.errors.push(`${r.status} ${r.text}`);
      else wr.acked = seq + 1;
    }
  }));
  return {
    writers,
    acked: () => writers.map((wr) => wr.acked),
    issued: () => writers.map((wr) => wr.log.length),
    async stop() { stop = true; await done; },
  };
}

// Checks restored objects against the static data and the writers' logs.
// ackedBefore[w]: writes acknowledged before the snapshot was requested;
// issuedAfter[w]: writes issued before it was COMMITTED.
export function checkPointInTime(restored, staticObjs, writers, ackedBefore, issuedAfter) {
  for (const [id, o] of staticObjs) {
    const r = restored.get(id);
    assert.ok(r, `static object ${id} missing from the restore`);
    assert.deepEqual(r.vector.map(Math.fround), o.vector, `vector of ${id}`);
    assert.deepEqual(r.properties, o.properties, `properties of ${id}`);
  }
  let writerObjects = 0;
  for (const wr of writers) {
    const mine = [...restored.values()].filter((o) => o.properties.w === wr.w);
    const k = mine.reduce((m, o) => Math.max(m, o.properties.seq), -1);
    assert.ok(k + 1 >= ackedBefore[wr.w], `writer ${wr.w}: restore holds writes up to ${k}, but ${ackedBefore[wr.w]} were acknowledged before the snapshot`);
    assert.ok(k < issuedAfter[wr.w], `writer ${wr.w}: restore holds write ${k}, issued after the snapshot committed`);
    const expect = new Map();
    for (let s = 0; s <= k; s++) expect.set(wr.log[s].id, wr.log[s]);
    assert.equal(mine.length, expect.size, `writer ${wr.w}: ${mine.length} objects restored, ${expect.size} expected at write ${k}`);
    for (const o of mine) {
      const e = expect.get(o.id);
      assert.ok(e, `writer ${wr.w}: unexpected object ${o.id}`);
      assert.equal(o.properties.seq, e.properties.seq, `writer ${wr.w}: object ${o.id} is not at its state of write ${k}`);
      assert.deepEqual(o.vector.map(Math.fround), e.vector);
    }
    writerObjects += mine.length;
  }
  assert.equal(restored.size, staticObjs.size + writerObjects, 'no object beyond the static data and the writers');
}

// Blob ids a snapshot's manifest references (file:// location).
export function manifestBlobs(locDir, collection, name) {
  const m = JSON.parse(readFileSync(path.join(locDir, 'snapshots', collection, name, 'manifest.json'), 'utf8'));
  const set = new Set();
  for (const s of m.shards) for (const f of s.files) set.add(f.blob);
  return { manifest: m, blobs: set };
}

export function blobsOnDisk(locDir) {
  const root = path.join(locDir, 'blobs');
  const out = new Set();
  if (!existsSync(root)) return out;
  for (const d of readdirSync(root)) for (const f of readdirSync(path.join(root, d))) if (!f.startsWith('.')) out.add(f);
  return out;
}
