#!/usr/bin/env bash
# Installs dependencies, builds (release and ASan+UBSan), and runs the whole suite:
# C unit tests (ctest) in both builds, then the black-box tests (node --test) against
# the real binaries. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/deps.sh --test

echo "== build (release)"
scripts/build.sh release
echo "== build (asan+ubsan)"
scripts/build.sh asan

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests (release)"
(cd build && ctest --output-on-failure -j2)
echo "== unit tests (asan+ubsan)"
(cd build-asan && ctest --output-on-failure -j2)

shopt -s nullglob
node_tests=(tests/blackbox/*.test.mjs)
if [ ${#node_tests[@]} -gt 0 ]; then
  echo "== black-box tests (release binary)"
  SV_BUILD_DIR="$PWD/build" SHARDVAULT_BIN="$PWD/build/shardvault" node --test --test-concurrency=2 "${node_tests[@]}"
  # The API, crash, CLI, input and jobs tests again against the sanitized server: every
  # request path runs under ASan + UBSan (halt_on_error makes a finding fatal).
  asan_tests=(tests/blackbox/store_api.test.mjs tests/blackbox/store_crash.test.mjs tests/blackbox/store_cli.test.mjs
    tests/blackbox/server_input.test.mjs tests/blackbox/jobs_api.test.mjs tests/blackbox/auth_matrix.test.mjs
    tests/blackbox/auth_ops.test.mjs tests/blackbox/tls.test.mjs tests/blackbox/registry_offload.test.mjs
    tests/blackbox/registry_mount.test.mjs tests/blackbox/registry_crash.test.mjs tests/blackbox/registry_cli.test.mjs
    tests/blackbox/catalog_etcd.test.mjs tests/blackbox/cluster_nodes.test.mjs
    tests/blackbox/import_roundtrip.test.mjs
    tests/blackbox/import_crash.test.mjs tests/blackbox/import_property.test.mjs tests/blackbox/import_create.test.mjs
    tests/blackbox/import_bulk.test.mjs
    tests/blackbox/maintenance_verify.test.mjs tests/blackbox/maintenance_cli.test.mjs tests/blackbox/registry_rebuild.test.mjs
    tests/blackbox/cluster_forward.test.mjs tests/blackbox/cluster_export.test.mjs tests/blackbox/cluster_move.test.mjs
    tests/blackbox/cluster_snapshot.test.mjs)
  if [ ${#asan_tests[@]} -gt 0 ]; then
    echo "== black-box tests (asan+ubsan binary)"
    SV_BUILD_DIR="$PWD/build-asan" SHARDVAULT_BIN="$PWD/build-asan/shardvault" SHARDVAULT_SANITIZED=1 node --test --test-concurrency=2 "${asan_tests[@]}"
  fi
fi
echo "== suite finished in $(( $(date +%s) - start ))s"
