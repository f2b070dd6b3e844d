// duckdb_copy.mjs SRC.parquet OUT.parquet — loads SRC into an in-memory
// table (not timed), then times COPY … TO OUT (FORMAT parquet, COMPRESSION
// zstd). Prints one JSON line: seconds, bytes, peak RSS and RSS before COPY
// (the table itself is in memory, so the peak includes it).
import fs from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const [src, out] = process.argv.slice(2);
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
await con.run(`CREATE TABLE t AS SELECT * FROM read_parquet('${src}')`);
const rows = Number((await con.runAndReadAll('SELECT count(*) FROM t')).getRows()[0][0]);
const rssBefore = process.memoryUsage().rss;
const t0 = process.hrtime.bigint();
await con.run(`COPY t TO '${out}' (FORMAT parquet, COMPRESSION zstd)`);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ rows, seconds, bytes: fs.statSync(out).size,
  peak_rss: process.resourceUsage().maxRSS * 1024, rss_before_copy: rssBefore }));
