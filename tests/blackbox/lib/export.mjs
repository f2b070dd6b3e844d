// Shared helpers for the export black-box tests: a collection with every
// property type, object generators, waiting for an export, reading its files
// with DuckDB and comparing rows with the source objects.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { uuidFrom, vec, f32deep } from './server.mjs';

export const EVERYTHING = (name, extra = {}) => ({
  name,
  shards: 3,
  vectors: { default: { dim: 8 }, named: { title: { dim: 4 }, image: { dim: 3 } }, multi: { colbert: { dim: 4 } } },
  properties: [
    { name: 'title', type: 'text' }, { name: 'views', type: 'int' }, { name: 'score', type: 'number' },
    { name: 'published', type: 'boolean' }, { name: 'when', type: 'date' }, { name: 'ref', type: 'uuid' },
    { name: 'tags', type: 'text[]' }, { name: 'counts', type: 'int[]' }, { name: 'weights', type: 'number[]' },
    { name: 'flags', type: 'boolean[]' }, { name: 'dates', type: 'date[]' }, { name: 'refs', type: 'uuid[]' },
    { name: 'meta', type: 'object' },
  ],
  ...extra,
});

const WORDS = ['vector', 'Ünïcödé', '日本語テキスト', 'emoji 🚀🧪', 'quote "x" \\ back', 'tab\tnew\nline', '', 'Ελληνικά', 'ok'];

// One object with a random subset of fields present (some absent, some
// empty arrays, undeclared properties) so nulls and empties are covered.
export function makeObject(rand, collection, i) {
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const maybe = (p) => rand() < p;
  const o = { collection, id: uuidFrom(rand), properties: {} };
  if (maybe(0.9)) o.vector = vec(rand, 8);
  const nv = {};
  if (maybe(0.7)) nv.title = vec(rand, 4);
  if (maybe(0.5)) nv.image = vec(rand, 3);
  if (Object.keys(nv).length) o.namedVectors = nv;
  if (maybe(0.6)) o.multiVectors = { colbert: Array.from({ length: 1 + Math.floor(rand() * 4) }, () => vec(rand, 4)) };
  const p = o.properties;
  if (maybe(0.9)) p.title = `${pick(WORDS)} #${i}`;
  if (maybe(0.8)) p.views = Math.floor((rand() - 0.5) * 2 ** 52);
  if (maybe(0.8)) p.score = (rand() - 0.5) * 1e6;
  if (maybe(0.8)) p.published = rand() < 0.5;
  if (maybe(0.8)) p.when = new Date(Math.floor(rand() * 4e12)).toISOString();
  if (maybe(0.7)) p.ref = uuidFrom(rand);
  if (maybe(0.7)) p.tags = Array.from({ length: Math.floor(rand() * 4) }, () => pick(WORDS));
  if (maybe(0.7)) p.counts = Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor((rand() - 0.5) * 1e9));
  if (maybe(0.7)) p.weights = Array.from({ length: Math.floor(rand() * 4) }, () => rand());
  if (maybe(0.7)) p.flags = Array.from({ length: Math.floor(rand() * 3) }, () => rand() < 0.5);
  if (maybe(0.6)) p.dates = Array.from({ length: Math.floor(rand() * 3) }, () => new Date(Math.floor(rand() * 4e12)).toISOString());
  if (maybe(0.6)) p.refs = Array.from({ length: Math.floor(rand() * 3) }, () => uuidFrom(rand));
  if (maybe(0.6)) p.meta = { a: i, b: [1, 'two', { c: null }], s: pick(WORDS) };
  if (maybe(0.4)) p.extra_note = pick(WORDS);
  if (maybe(0.2)) p.extra_obj = { nested: [i, true] };
  return o;
}

export async function batch(srv, objs) {
  const r = await srv.req('POST', '/v1/batch/objects', objs.map((o) => JSON.stringify(o)).join('\n'),
    { 'content-type': 'application/x-ndjson' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.failed, 0, JSON.stringify(r.json.results.filter((x) => x.error).slice(0, 3)));
  return r.json;
}

// Every stored object of a collection (or tenant) as the API returns it.
export async function listAll(srv, collection, tenant) {
  const out = new Map();
  let after = null;
  for (;;) {
    const q = `limit=5000${after ? `&after=${after}` : ''}${tenant ? `&tenant=${tenant}` : ''}`;
    const r = await srv.req('GET', `/v1/collections/${collection}/objects?${q}`);
    assert.equal(r.status, 200, r.text);
    for (const o of r.json.objects) out.set(o.id, o);
    if (!r.json.next) break;
    after = r.json.next;
  }
  return out;
}

export async function waitExport(srv, backend, id, { timeoutMs = 60000, until = ['SUCCESS', 'FAILED', 'CANCELED'] } = {}) {
  const t0 = Date.now();
  for (;;) {
    const r = await srv.req('GET', `/v1/export/${backend}/${id}`);
    assert.equal(r.status, 200, r.text);
    if (until.includes(r.json.status)) return r.json;
    if (Date.now() - t0 > timeoutMs) throw new Error(`export ${id} still ${r.json.status} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

let duck;
export async function duckdb() {
  if (!duck) duck = await (await DuckDBInstance.create(':memory:')).connect();
  return duck;
}
export async function query(sql) {
  const con = await duckdb();
  return (await con.runAndReadAll(sql)).getRowObjectsJS();
}
const lit = (s) => `'${s.replaceAll("'", "''")}'`;

// Rows of every Parquet file in dir (with the file name).
export async function readExportDir(dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.parquet'));
  if (!files.length) return { files, rows: [] };
  const rows = await query(`SELECT *, filename FROM read_parquet(${lit(path.join(dir, '*.parquet'))}, filename=true, union_by_name=true)`);
  return { files, rows };
}

export async function kvMetadata(file) {
  const rows = await query(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata(${lit(file)})`);
  return Object.fromEntries(rows.map((r) => [r.k, r.v]));
}

const ms = (d) => (d instanceof Date ? d.getTime() : Number(d));
const num = (x) => (typeof x === 'bigint' ? Number(x) : x);

// A typed row against the API's view of the object.
export function checkTypedRow(row, src) {
  const where = `object ${src.id}`;
  assert.equal(row.id, src.id, where);
  assert.equal(ms(row.creation_time), src.creationTime, `${where} creation_time`);
  assert.equal(ms(row.update_time), src.updateTime, `${where} update_time`);
  assert.deepEqual(row.vector ?? null, src.vector ? f32deep(src.vector) : null, `${where} vector`);
  const nv = src.namedVectors ?? {};
  for (const n of ['title', 'image']) {
    assert.deepEqual(row.named_vectors[n] ?? null, nv[n] ? f32deep(nv[n]) : null, `${where} named_vectors.${n}`);
  }
  const mv = src.multiVectors ?? {};
  assert.deepEqual(row.multi_vectors.colbert ?? null, mv.colbert ? f32deep(mv.colbert) : null, `${where} multi_vectors`);
  const p = src.properties ?? {};
  const rp = row.properties;
  const opt = (v, f = (x) => x) => (v === undefined || v === null ? null : f(v));
  assert.equal(rp.title, opt(p.title), `${where} title`);
  assert.equal(opt(rp.views, num), opt(p.views), `${where} views`);
  assert.equal(rp.score, opt(p.score), `${where} score`);
  assert.equal(rp.published, opt(p.published), `${where} published`);
  assert.equal(opt(rp.when, ms), opt(p.when, Date.parse), `${where} when`);
  assert.equal(rp.ref, opt(p.ref), `${where} ref`);
  assert.deepEqual(rp.tags, opt(p.tags), `${where} tags`);
  assert.deepEqual(opt(rp.counts, (a) => a.map(num)), opt(p.counts), `${where} counts`);
  assert.deepEqual(rp.weights, opt(p.weights), `${where} weights`);
  assert.deepEqual(rp.flags, opt(p.flags), `${where} flags`);
  assert.deepEqual(opt(rp.dates, (a) => a.map(ms)), opt(p.dates, (a) => a.map(Date.parse)), `${where} dates`);
  assert.deepEqual(rp.refs, opt(p.refs), `${where} refs`);
  assert.deepEqual(opt(rp.meta, JSON.parse), opt(p.meta), `${where} meta`);
  const declared = new Set(['title', 'views', 'score', 'published', 'when', 'ref', 'tags', 'counts', 'weights', 'flags', 'dates', 'refs', 'meta']);
  const extra = Object.fromEntries(Object.entries(p).filter(([k]) => !declared.has(k)));
  assert.deepEqual(opt(row.properties_json, JSON.parse), Object.keys(extra).length ? extra : null, `${where} properties_json`);
}

const bytesOf = (b) => (b instanceof Uint8Array ? b : b?.bytes instanceof Uint8Array ? b.bytes : b);
const blobJson = (b) => { if (b === null || b === undefined) return null; const s = Buffer.from(bytesOf(b)).toString("utf8"); try { return JSON.parse(s); } catch (e) { throw new Error(`bad JSON blob (${b.constructor.name}, ${b.length}): ${s}`); } };

// A "weaviate" row (Weaviate's own layout) against the API's object.
export function checkWeaviateRow(row, src) {
  const where = `object ${src.id}`;
  assert.equal(row.id, src.id, where);
  assert.equal(num(row.creation_time), src.creationTime, `${where} creation_time`);
  assert.equal(num(row.update_time), src.updateTime, `${where} update_time`);
  if (src.vector) {
    const b = Buffer.from(bytesOf(row.vector));
    assert.equal(b.length, src.vector.length * 4, `${where} vector bytes`);
    const got = Array.from({ length: src.vector.length }, (_, i) => b.readFloatLE(i * 4));
    assert.deepEqual(got, f32deep(src.vector), `${where} vector`);
  } else {
    assert.equal(row.vector, null, `${where} vector`);
  }
  const sortKeys = (o) => (o ? Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))) : null);
  const nv = blobJson(row.named_vectors);
  assert.deepEqual(nv && f32deep(nv), src.namedVectors ? f32deep(sortKeys(src.namedVectors)) : null, `${where} named_vectors`);
  if (nv) assert.deepEqual(Object.keys(nv), Object.keys(nv).sort(), `${where} named_vectors keys sorted`);
  const mv = blobJson(row.multi_vectors);
  assert.deepEqual(mv && f32deep(mv), src.multiVectors ? f32deep(sortKeys(src.multiVectors)) : null, `${where} multi_vectors`);
  assert.deepEqual(blobJson(row.properties), src.properties ?? {}, `${where} properties`);
}
