#!/usr/bin/env bash
# bench/export/run.sh [BUILD_DIR] [--objects N[,N2]] [--clients C] [--batch B]
# Builds nothing; uses BUILD_DIR/shardvault (default build). Results: bench/out/export.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"; shift || true
SHARDVAULT_BIN="$PWD/$build/shardvault" node bench/export/bench.mjs "$@"
