#!/bin/sh
# bench/parquet/run.sh [BUILD_DIR] [N1,N2,...] — builds parquet_bench in the
# build dir and compares it with DuckDB's COPY … TO parquet on the same rows.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)  # default: the repository's build/
ns=${2:-100000,400000}
cmake --build "$build" --target parquet_bench -j2 >/dev/null
mkdir -p "$here/../out"
exec node "$here/bench.mjs" "$build" "$ns"
