#!/usr/bin/env bash
# Installs dependencies, builds, and starts shardvault on embedded defaults in the foreground.
# Extra arguments go to `shardvault serve` (see build/shardvault serve --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
exec build/shardvault serve "$@"
