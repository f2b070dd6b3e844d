#!/usr/bin/env bash
# bench/import/run.sh [BUILD_DIR] [--objects N] [--clients C] [--batch B] [--client curl|node]
# Builds nothing; uses BUILD_DIR/shardvault (default build). Results: bench/out/import.json.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/import/bench.mjs "$@"
