// Helpers for the parquet interop tests: random schemas and rows, the
// parquet_gen tool, three independent readers, and a canonical form so
// every value can be compared exactly with what was written.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeAtExit } from './reap.mjs';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetReadObjects, parquetMetadata } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import * as parquetWasm from 'parquet-wasm';

export function genTool() {
  const dir = process.env.SV_BUILD_DIR;
  if (!dir) throw new Error('SV_BUILD_DIR is not set: point it at a build directory with tests/parquet_gen');
  const p = path.join(dir, 'tests', 'parquet_gen');
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: build the parquet module (target parquet_gen)`);
  return p;
}

export function tmpDir(tag) {
  return removeAtExit(fs.mkdtempSync(path.join(os.tmpdir(), `sv-parquet-${tag}-`)));
}

// Writes spec ({options, schema, rows}) as a .parquet with parquet_gen.
export function writeParquet(dir, name, spec) {
  const json = path.join(dir, `${name}.json`);
  const out = path.join(dir, `${name}.parquet`);
  fs.writeFileSync(json, JSON.stringify(spec));
  execFileSync(genTool(), [json, out], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

// Runs parquet_gen expecting a refusal; returns its stderr.
export function writeParquetFails(dir, name, spec) {
  const json = path.join(dir, `${name}.json`);
  fs.writeFileSync(json, JSON.stringify(spec));
  try {
    execFileSync(genTool(), [json, path.join(dir, `${name}.parquet`)], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    return String(e.stderr);
  }
  throw new Error('parquet_gen accepted input it should have refused');
}

// ---- random data ----------------------------------------------------------

export function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n);
  next.pick = (a) => a[next.int(a.length)];
  return next;
}

export const LEAF_TYPES = ['boolean', 'int32', 'int64', 'float', 'double', 'string', 'json', 'uuid',
  'timestamp', 'bytes', 'fixed'];
const FIXED_WIDTH = ['boolean', 'int32', 'int64', 'float', 'double', 'timestamp'];
const LIST2_TYPES = ['int32', 'int64', 'float', 'double'];

function leaf(r, name, type) {
  const f = { name, type, optional: r() < 0.6 };
  if (type === 'fixed') f.len = 1 + r.int(20);
  if (['string', 'bytes', 'int32', 'int64', 'double', 'fixed', 'uuid'].includes(type) && r() < 0.4) f.dict = true;
  return f;
}

// A random field: leaf, list (of leaf, or of list of numbers) or group.
export function randomField(r, name, depth = 0) {
  const k = r();
  if (k < 0.55 || depth > 1) return leaf(r, name, r.pick(LEAF_TYPES));
  if (k < 0.75) return { name, optional: r() < 0.6, element: leaf(r, 'element', r.pick(LEAF_TYPES)) };
  if (k < 0.85) {
    return { name, optional: r() < 0.6,
      element: { name: 'element', optional: r() < 0.5, element: { ...leaf(r, 'element', r.pick(LIST2_TYPES)), optional: false } } };
  }
  const children = [];
  const n = 1 + r.int(4);
  for (let i = 0; i < n; i++) children.push(randomField(r, `${name}_${i}`, depth + 1));
  return { name, optional: r() < 0.6, children };
}

export function randomSchema(r, nfields) {
  const s = [];
  for (let i = 0; i < nfields; i++) s.push(randomField(r, `c${i}`));
  return s;
}

const CHARS = ['a', 'b', 'Z', ' ', '0', 'é', 'ß', '中', '文', '😀', '\u{10FFFF}', '"', '\\', '\n', 'ÿ'];
export function randomString(r, max = 40) {
  let n = r.int(max + 1);
  if (r() < 0.1) n = 0;
  let s = '';
  for (let i = 0; i < n; i++) s += r.pick(CHARS);
  return s;
}

function hex(r, n) {
  let s = '';
  for (let i = 0; i < n; i++) s += r.int(256).toString(16).padStart(2, '0');
  return s;
}

function uuid(r) {
  const h = hex(r, 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function randomFloat(r) {
  const k = r();
  if (k < 0.05) return 0;
  if (k < 0.1) return Math.fround(3.4e38 * (r() < 0.5 ? -1 : 1));
  if (k < 0.15) return Math.fround(1.4e-45);
  return Math.fround((r() * 2 - 1) * 10 ** (r.int(20) - 10));
}

export function randomLeafValue(r, f, opts = {}) {
  switch (f.type) {
    case 'boolean': return r() < 0.5;
    case 'int32': return r.int(2 ** 32) - 2 ** 31;
    case 'int64': return String(BigInt.asIntN(64, (BigInt(r.int(2 ** 32)) << 32n) | BigInt(r.int(2 ** 32))) >> BigInt(r.int(60)));
    case 'timestamp': return String(r.int(4102444800000) - (r() < 0.1 ? 2 * 10 ** 12 : 0));
    case 'float': return randomFloat(r);
    case 'double': return r() < 0.05 ? 0 : (r() * 2 - 1) * 10 ** (r.int(40) - 20);
    case 'string': return opts.longStrings && r() < 0.2 ? randomString(r, 5).repeat(20000) : randomString(r);
    case 'json': return JSON.stringify({ k: randomString(r, 8), n: r.int(1000), a: [r() < 0.5, null, r.int(9)] });
    case 'uuid': return uuid(r);
    case 'bytes': return hex(r, r.int(30));
    case 'fixed': return hex(r, f.len);
    default: throw new Error(`unknown type ${f.type}`);
  }
}

export function randomValue(r, f, opts = {}) {
  if (f.optional && r() < (opts.nullRate ?? 0.15)) return null;
  if (f.children) {
    const o = {};
    for (const c of f.children) o[c.name] = randomValue(r, c, opts);
    return o;
  }
  if (f.element) {
    const n = f.len ?? (r() < 0.15 ? 0 : r.int(opts.maxList ?? 6));
    const a = [];
    for (let i = 0; i < n; i++) a.push(randomValue(r, f.element, opts));
    return a;
  }
  return randomLeafValue(r, f, opts);
}

export function randomRows(r, schema, n, opts = {}) {
  const rows = [];
  for (let i = 0; i < n; i++) {
    const o = {};
    for (const f of schema) o[f.name] = randomValue(r, f, opts);
    rows.push(o);
  }
  return rows;
}

// ---- canonical form -------------------------------------------------------

const toHex = (u8) => Buffer.from(u8).toString('hex');
const isBytes = (v) => v instanceof Uint8Array;

function canonLeaf(f, v) {
  switch (f.type) {
    case 'boolean': return Boolean(v);
    case 'int32': return Number(v);
    case 'int64': return String(BigInt(v));
    case 'timestamp':
      if (v instanceof Date) return String(v.getTime());
      if (typeof v === 'object' && v !== null && 'micros' in v) return String(BigInt(v.micros) / 1000n);
      return String(BigInt(v));
    case 'float': case 'double': return Number(v);
    case 'string': return isBytes(v) ? Buffer.from(v).toString('utf8') : String(v);
    case 'json': return typeof v === 'string' ? JSON.stringify(JSON.parse(v))
      : isBytes(v) ? JSON.stringify(JSON.parse(Buffer.from(v).toString('utf8'))) : JSON.stringify(v);
    case 'uuid': {
      if (isBytes(v)) {
        const h = toHex(v);
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      }
      return String(v).toLowerCase();
    }
    case 'bytes': case 'fixed': return isBytes(v) ? toHex(v) : String(v).toLowerCase();
    default: throw new Error(`unknown type ${f.type}`);
  }
}

export function canon(f, v) {
  if (v === null || v === undefined) return null;
  if (f.children) {
    const o = {};
    for (const c of f.children) o[c.name] = canon(c, v[c.name]);
    return o;
  }
  if (f.element) return Array.from(v, (x) => canon(f.element, x));
  return canonLeaf(f, v);
}

export function canonRows(schema, rows) {
  return rows.map((row) => {
    const o = {};
    for (const f of schema) o[f.name] = canon(f, row[f.name]);
    return o;
  });
}

// ---- readers --------------------------------------------------------------

let duck;
export async function duckdb() {
  if (!duck) duck = await (await DuckDBInstance.create(':memory:')).connect();
  return duck;
}

export async function readDuckDB(file) {
  const con = await duckdb();
  const r = await con.runAndReadAll(`SELECT * FROM read_parquet('${file.replaceAll("'", "''")}')`);
  return r.getRowObjectsJS();
}

function arrayBufferOf(buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

export async function readHyparquet(file) {
  return parquetReadObjects({ file: arrayBufferOf(fs.readFileSync(file)), compressors, utf8: false });
}

// parquet-wasm is Arrow's Rust reader; with no Arrow JS library here, its
// table is written back out by Arrow's Rust writer and that file is read
// with hyparquet. A value Arrow decoded wrongly stays wrong in the copy.
export async function readArrow(file) {
  const table = parquetWasm.readParquet(new Uint8Array(fs.readFileSync(file)));
  const copy = parquetWasm.writeParquet(table);
  return parquetReadObjects({ file: arrayBufferOf(copy), compressors, utf8: false });
}

export function hyparquetMetadata(file) {
  return parquetMetadata(arrayBufferOf(fs.readFileSync(file)));
}

export const READERS = { duckdb: readDuckDB, hyparquet: readHyparquet, arrow: readArrow };

// Page headers of every column chunk, decoded with hyparquet's own Thrift
// reader (an implementation independent of ours): [{column, pages: [{type,
// uncompressed, compressed, num_values}]}] per row group.
export async function pageHeaders(file) {
  const thriftUrl = new URL('./thrift.js', import.meta.resolve('hyparquet'));
  const { deserializeTCompactProtocol } = await import(thriftUrl);
  const buf = fs.readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const meta = hyparquetMetadata(file);
  return meta.row_groups.map((rg) => rg.columns.map((c) => {
    const md = c.meta_data;
    let offset = Number(md.dictionary_page_offset ?? md.data_page_offset);
    const end = offset + Number(md.total_compressed_size);
    const pages = [];
    while (offset < end) {
      const reader = { view, offset };
      const h = deserializeTCompactProtocol(reader);
      pages.push({ type: h.field_1, uncompressed: h.field_2, compressed: h.field_3,
        num_values: h.field_5?.field_1 ?? h.field_7?.field_1 });
      offset = reader.offset + h.field_3;
    }
    return { column: md.path_in_schema.join('.'), num_values: Number(md.num_values), pages };
  }));
}
