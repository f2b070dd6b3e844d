#!/usr/bin/env bash
# bench/maintenance/run.sh [BUILD_DIR] [--file-sizes 10000] [--s3-sizes 2000] [--blob-mb 256]
# Builds nothing; uses BUILD_DIR/shardvault (default build). Writes bench/out/maintenance.json.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/maintenance/bench.mjs "$@"
