#!/usr/bin/env bash
# Builds shardvault. scripts/build.sh [release|asan]  (release -> build/, asan -> build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DSV_SANITIZE=ON) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -DSV_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)" -- --no-print-directory
