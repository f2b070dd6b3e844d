#!/usr/bin/env bash
# bench/cluster/snapshot.sh [BUILD_DIR] [--snapshots N] [--objects N]: cluster-wide snapshot write stall beside
# a one-node snapshot's; builds nothing, uses BUILD_DIR/shardvault.
set -euo pipefail
# BUILD_DIR is taken relative to where you run this (default: the repository's build/).
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/cluster/snapshot.mjs "$@"
