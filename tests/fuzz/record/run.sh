#!/bin/sh
# tests/fuzz/record/run.sh [SECONDS_PER_TARGET] [target...]
# Builds the libFuzzer harnesses (clang, ASan + UBSan) into build-fuzz-record/
# and runs each for SECONDS (default 60). Corpora live in
# build-fuzz-record/corpus-<target>, seeded from tests/fuzz/record/corpus/.
# Crashes are written to build-fuzz-record/crash-* and make the script fail.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_parse fuzz_decode fuzz_splitter"}
out=$root/build-fuzz-record
mkdir -p "$out"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=c11"
inc="-I$root/src/record -I$root/src/record/internal -I$root/src/core"
srcs="$root/src/record/schema.c $root/src/record/parse.c $root/src/record/record.c $root/src/record/num.c
      $root/src/record/splitter.c $root/src/record/tables.c $root/src/core/err.c $root/src/core/log.c
      $root/src/core/util.c"
libs="$(pkg-config --libs jansson libxxhash) -lm -lpthread"
for t in $targets; do
    clang $flags $inc -o "$out/$t" "$here/$t.c" $srcs $libs
done
# Seeds: a few valid objects, encodings and bodies made by the seed tool.
clang -g -O1 -D_GNU_SOURCE -std=c11 $inc -o "$out/make_seeds" "$here/make_seeds.c" $srcs $libs
for t in $targets; do
    mkdir -p "$out/corpus-$t"
    "$out/make_seeds" "$t" "$out/corpus-$t"
    echo "== $t for ${secs}s"
    (cd "$out" && "./$t" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 "corpus-$t" 2>&1 | grep -E "^#|stat::|ERROR|SUMMARY|crash|Done" | tail -12)
done
if ls "$out"/crash-* >/dev/null 2>&1; then
    echo "crashes found:"; ls "$out"/crash-*; exit 1
fi
