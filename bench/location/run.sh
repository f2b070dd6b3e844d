#!/usr/bin/env bash
# Location benchmark: s3:// upload/download throughput against a local s3rver,
# next to awscli doing the same in the same run, and file:// put next to cp.
#   bench/location/run.sh [BUILD_DIR] [--large-mib N] [--small-count N] [--small-kib N] [--threads N]
# Defaults: 1 GiB large object, 10000 x 64 KiB small objects. Output: a table
# on stdout and bench/out/location.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-$PWD/build}"
[ $# -gt 0 ] && shift
build="$(cd "$build" && pwd)"
cmake --build "$build" --target location_tool -j2 >/dev/null
command -v aws >/dev/null || { echo "awscli (aws) is required for the peer runs" >&2; exit 1; }
SV_BUILD_DIR="$build" node bench/location/bench.mjs "$@"
