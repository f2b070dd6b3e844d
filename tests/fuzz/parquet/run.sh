#!/bin/sh
# tests/fuzz/parquet/run.sh [SECONDS]
# Builds the Parquet reader's libFuzzer harness (clang, ASan + UBSan) into
# build-fuzz-parquet/ and runs it for SECONDS (default 60). The corpus lives
# in build-fuzz-parquet/corpus, seeded with files from the module's writer
# and, when present, small files in $PQ_FUZZ_SEEDS (e.g. DuckDB's and
# Arrow's). Crashes are written to build-fuzz-parquet/crash-* and make the
# script fail.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
secs=${1:-60}
out=$root/build-fuzz-parquet
mkdir -p "$out/corpus"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=c11"
inc="-I$root/src/parquet -I$root/src/parquet/internal -I$root/src/core"
srcs="$root/src/parquet/reader.c $root/src/parquet/reader_meta.c $root/src/core/err.c $root/src/core/log.c $root/src/core/util.c"
wsrcs="$root/src/parquet/writer.c $root/src/parquet/encode.c $root/src/parquet/schema.c"
libs="$(pkg-config --libs libzstd libxxhash) -lsnappy -llz4 -lz -lm -lpthread"
clang $flags $inc -o "$out/fuzz_reader" "$here/fuzz_reader.c" $srcs $libs
clang -g -O1 -D_GNU_SOURCE -std=c11 $inc -o "$out/make_seeds" "$here/make_seeds.c" $srcs $wsrcs $libs
"$out/make_seeds" "$out/corpus"
if [ -n "${PQ_FUZZ_SEEDS:-}" ]; then
    find "$PQ_FUZZ_SEEDS" -name '*.parquet' -size -64k -exec cp {} "$out/corpus/" \;
fi
echo "== fuzz_reader for ${secs}s"
(cd "$out" && ./fuzz_reader -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 corpus 2>&1 | grep -E "^#|stat::|ERROR|SUMMARY|crash|Done" | tail -12)
if ls "$out"/crash-* >/dev/null 2>&1; then
    echo "crashes found:"; ls "$out"/crash-*; exit 1
fi
