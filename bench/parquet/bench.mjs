// Runs shardvault's parquet writer and DuckDB's COPY on the same rows for
// each N and prints a table; JSON goes to bench/out/parquet.json.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const build = path.resolve(process.argv[2] ?? new URL('../../build', import.meta.url).pathname);
const ns = (process.argv[3] ?? '100000,400000').split(',').map(Number);
const outDir = path.join(here, '..', 'out');
const work = path.join(outDir, 'parquet-work');
fs.mkdirSync(work, { recursive: true });

const results = [];
for (const n of ns) {
  const svFile = path.join(work, `sv_${n}.parquet`);
  const duckFile = path.join(work, `duckdb_${n}.parquet`);
  const sv = JSON.parse(execFileSync(path.join(build, 'parquet_bench'), [String(n), svFile]));
  const dk = JSON.parse(execFileSync(process.execPath, [path.join(here, 'duckdb_copy.mjs'), svFile, duckFile],
    { cwd: path.join(here, '..', '..') }));
  for (const [who, r] of [['shardvault', sv], ['duckdb', dk]]) {
    results.push({ n, writer: who, rows_per_s: r.rows / r.seconds, mb_per_s: r.bytes / 1e6 / r.seconds,
      file_bytes: r.bytes, peak_rss: r.peak_rss, rss_before_copy: r.rss_before_copy ?? null, seconds: r.seconds });
  }
  fs.rmSync(svFile); fs.rmSync(duckFile);
}

const mb = (x) => (x / 1048576).toFixed(0);
console.log('writer      N        rows/s    MB/s   file MiB  peak RSS MiB');
for (const r of results) {
  console.log(`${r.writer.padEnd(11)} ${String(r.n).padEnd(8)} ${r.rows_per_s.toFixed(0).padStart(8)} ${r.mb_per_s.toFixed(1).padStart(7)}`
    + ` ${mb(r.file_bytes).padStart(9)} ${mb(r.peak_rss).padStart(12)}`
    + (r.rss_before_copy ? `  (table alone: ${mb(r.rss_before_copy)})` : ''));
}
const ratios = ns.map((n) => {
  const s = results.find((r) => r.n === n && r.writer === 'shardvault');
  const d = results.find((r) => r.n === n && r.writer === 'duckdb');
  return { n, rows_per_s_ratio: s.rows_per_s / d.rows_per_s, file_size_ratio: s.file_bytes / d.file_bytes,
    peak_rss_ratio: s.peak_rss / d.peak_rss };
});
for (const r of ratios) {
  console.log(`N=${r.n}: shardvault/duckdb rows/s ${r.rows_per_s_ratio.toFixed(2)}x, file size ${r.file_size_ratio.toFixed(3)}x, peak RSS ${r.peak_rss_ratio.toFixed(3)}x`);
}
fs.writeFileSync(path.join(outDir, 'parquet.json'), JSON.stringify({ results, ratios }, null, 2));
