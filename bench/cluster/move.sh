#!/usr/bin/env bash
# bench/cluster/move.sh [BUILD_DIR] [--mib N]: a shard move (default 150 MB; --mib 1024 for 1 GB) beside
# `aws s3 cp --recursive` of its files; builds nothing, uses BUILD_DIR/shardvault.
set -euo pipefail
# BUILD_DIR is taken relative to where you run this (default: the repository's build/).
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then build="$(cd "$1" && pwd)"; shift; else build="$repo/build"; fi
cd "$repo"
SHARDVAULT_BIN="$build/shardvault" node bench/cluster/move.mjs "$@"
