#!/usr/bin/env bash
# bench/snapshot/run.sh [BUILD_DIR] [--sizes 100000,1000000,4000000] [--shards N] [--dim D]
# Builds nothing; uses BUILD_DIR/shardvault (default build). Writes bench/out/snapshot.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"; shift || true
SHARDVAULT_BIN="$PWD/$build/shardvault" node bench/snapshot/bench.mjs "$@"
