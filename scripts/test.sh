#!/usr/bin/env bash
# Installs dependencies, builds (release and ASan+UBSan), and runs the whole suite:
# C unit tests (ctest) in both builds, then the black-box tests (node --test) against
# the real binaries. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/deps.sh --test

# The suite's etcds, servers and S3 write to $TMPDIR (one etcd preallocates 62 MB of WAL): say so
# plainly when the disk is nearly full, before an etcd fails to start halfway through.
tmp_free_mb=$(df -Pm "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $4 }')
echo "== ${TMPDIR:-/tmp} has ${tmp_free_mb} MB free"
if [ "${tmp_free_mb:-0}" -lt 2048 ]; then
  echo "test.sh: warning: ${TMPDIR:-/tmp} has only ${tmp_free_mb} MB free; the suite wants about 2 GB there (free some space or set TMPDIR)" >&2
fi

echo "== build (release)"
scripts/build.sh release
echo "== build (asan+ubsan)"
scripts/build.sh asan

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests (release)"
(cd build && ctest --output-on-failure --timeout 900 -j2)
echo "== unit tests (asan+ubsan)"
(cd build-asan && ctest --output-on-failure --timeout 900 -j2)

# Each test file's process ends once its tests have (--test-force-exit; tests/blackbox/lib/reap.mjs
# then kills what it left running), a test that hangs fails after 10 minutes, and a whole run is
# stopped after 40: a stuck test fails the suite instead of holding CI until its own limit.
node_test() { timeout --kill-after=30 2400 node --test --test-force-exit --test-timeout=600000 --test-concurrency=2 "$@"; }

shopt -s nullglob
node_tests=(tests/blackbox/*.test.mjs)
if [ ${#node_tests[@]} -gt 0 ]; then
  echo "== black-box tests (release binary)"
  SV_BUILD_DIR="$PWD/build" SHARDVAULT_BIN="$PWD/build/shardvault" node_test "${node_tests[@]}"
  # The API, crash, CLI, input and jobs tests again against the sanitized server: every
  # request path runs under ASan + UBSan (halt_on_error makes a finding fatal).
  asan_tests=(tests/blackbox/store_api.test.mjs tests/blackbox/store_crash.test.mjs tests/blackbox/store_cli.test.mjs
    tests/blackbox/server_input.test.mjs tests/blackbox/jobs_api.test.mjs tests/blackbox/auth_matrix.test.mjs
    tests/blackbox/auth_ops.test.mjs tests/blackbox/auth_cluster.test.mjs tests/blackbox/tls.test.mjs tests/blackbox/registry_offload.test.mjs
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
    SV_BUILD_DIR="$PWD/build-asan" SHARDVAULT_BIN="$PWD/build-asan/shardvault" SHARDVAULT_SANITIZED=1 node_test "${asan_tests[@]}"
  fi
fi
echo "== suite finished in $(( $(date +%s) - start ))s"
