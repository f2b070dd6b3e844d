#!/usr/bin/env bash
# bench/auth/run.sh [BUILD_DIR] [--objects N] [--gets N] [--rounds R]
# Ingest objects/s and GET p50/p99 with --auth off beside --auth apikey, same
# binary, same data, alternating rounds. Writes bench/out/auth.json.
set -euo pipefail
# BUILD_DIR is taken relative to where you run this (default: the repository's build/).
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/auth/bench.mjs "$@"
