#!/usr/bin/env bash
# bench/ingest/run.sh [BUILD_DIR] [--objects N] ...: builds nothing; uses BUILD_DIR/shardvault.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"; shift || true
SHARDVAULT_BIN="$PWD/$build/shardvault" node bench/ingest/ingest.mjs "$@"
