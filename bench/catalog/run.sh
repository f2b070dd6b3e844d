#!/bin/sh
# bench/catalog/run.sh [BUILD_DIR] [--ops N --threads T]
# Catalog put/get/CAS ops/s and scan keys/s on the embedded driver and the
# etcd driver, beside a bare libcurl loop sending the same requests to etcd's
# gateway, against one local etcd started by the bench. Prints a table and
# writes bench/out/catalog.json.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)  # default: the repository's build/
cd "$repo"
[ $# -gt 0 ] && shift
cmake --build "$build" --target bench_catalog -j2 >/dev/null
mkdir -p bench/out
exec "$build/bench_catalog" --out bench/out/catalog.json "$@"
