#!/usr/bin/env bash
# bench/snapshot/run.sh [BUILD_DIR] [--sizes 100000,1000000,4000000] [--shards N] [--dim D]
# Builds nothing; uses BUILD_DIR/shardvault (default build). Writes bench/out/snapshot.json.
set -euo pipefail
# BUILD_DIR is taken relative to where you run this (default: the repository's build/).
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/snapshot/bench.mjs "$@"
