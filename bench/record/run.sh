#!/bin/sh
# bench/record/run.sh [BUILD_DIR] [bench_record options: --objects N --rounds R --dim D]
# Parse+validate+encode objects/s of the record fast path next to jansson on
# the same generated objects, plus the listing path and the splitter. Prints a
# table and writes bench/out/record.json.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)  # default: the repository's build/
cd "$repo"
[ $# -gt 0 ] && shift
cmake --build "$build" --target bench_record -j2 >/dev/null
mkdir -p bench/out
exec "$build/bench_record" --out bench/out/record.json "$@"
