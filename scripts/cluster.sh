#!/usr/bin/env bash
# Starts a local 3-node shardvault cluster: one etcd (Debian's etcd-server),
# one s3rver (the shared location, bucket "shardvault") and nodes n1, n2, n3,
# all on 127.0.0.1, and prints their URLs. Ctrl-C (or SIGTERM) stops
# everything. Data lives under $SV_CLUSTER_DIR (default ./cluster-data) and is
# kept between runs; delete the directory to start afresh.
#
#   scripts/cluster.sh                    # ports 8081-8083, etcd 23790, s3rver 4569
#   SV_CLUSTER_PORT=9001 scripts/cluster.sh
#
# The node-to-node secret (SHARDVAULT_CLUSTER_SECRET) is generated once into
# $SV_CLUSTER_DIR/cluster.secret (mode 0600) unless set in the environment;
# it is passed to the nodes through their environment, never a command line.
# etcd and s3rver run in their own process group, so a Ctrl-C reaches the
# nodes only; they leave first, then etcd and s3rver are stopped.
# Extra arguments go to every `shardvault serve`. See docs/cluster.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${SV_CLUSTER_DIR:-$root/cluster-data}
base=${SV_CLUSTER_PORT:-8081}
etcd_port=${SV_CLUSTER_ETCD_PORT:-23790}
s3_port=${SV_CLUSTER_S3_PORT:-4569}
bin=${SHARDVAULT_BIN:-$root/build/shardvault}

command -v etcd >/dev/null || { echo "cluster.sh: etcd not found: install etcd-server (scripts/deps.sh --test)" >&2; exit 1; }
[ -d node_modules/s3rver ] || { echo "cluster.sh: s3rver not found: run npm ci" >&2; exit 1; }
[ -x "$bin" ] || scripts/build.sh release
mkdir -p "$dir"
umask 077
if [ -z "${SHARDVAULT_CLUSTER_SECRET:-}" ]; then
  [ -s "$dir/cluster.secret" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/cluster.secret"
  SHARDVAULT_CLUSTER_SECRET=$(cat "$dir/cluster.secret")
fi
export SHARDVAULT_CLUSTER_SECRET

pids=() nodes=()
stop() {
  trap - INT TERM EXIT
  # nodes first, waited for (they revoke their leases: a clean leave), then etcd and s3rver
  for p in "${nodes[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${nodes[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

setsid etcd --name sv --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "sv=http://127.0.0.1:$((etcd_port + 1))" --log-level warn >"$dir/etcd.log" 2>&1 &
pids+=($!)
mkdir -p "$dir/s3"
setsid node --openssl-legacy-provider -e "
const S3rver = require('$root/node_modules/s3rver');
new S3rver({ port: $s3_port, address: '127.0.0.1', directory: '$dir/s3', silent: true,
             configureBuckets: [{ name: 'shardvault' }] }).run().then(() => console.log('s3rver up'));
" >"$dir/s3rver.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && grep -q 's3rver up' "$dir/s3rver.log" && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null || { echo "cluster.sh: etcd did not start; see $dir/etcd.log" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port"
# Exports across nodes: every node writes its own shards' files, so all need
# the same storage: the bucket (backend s3), or one directory they share
# (backend filesystem; all three run on this host).
export EXPORT_DEFAULT_BUCKET=${EXPORT_DEFAULT_BUCKET:-shardvault} EXPORT_S3_PATH=${EXPORT_S3_PATH:-exports}
export EXPORT_FILESYSTEM_PATH=${EXPORT_FILESYSTEM_PATH:-$dir/exports}
for i in 1 2 3; do
  port=$((base + i - 1))
  SHARDVAULT_LOG_LEVEL=${SHARDVAULT_LOG_LEVEL:-warn} "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/n$i" \
    --node-name "n$i" --catalog "etcd://127.0.0.1:$etcd_port" --location "s3://shardvault/location" "$@" \
    >"$dir/n$i.log" 2>&1 &
  nodes+=($!)
done
for i in 1 2 3; do
  port=$((base + i - 1))
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/v1/.well-known/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

echo "shardvault cluster (data and logs in $dir):"
echo "  etcd     http://127.0.0.1:$etcd_port"
echo "  s3rver   http://127.0.0.1:$s3_port (bucket shardvault)"
for i in 1 2 3; do echo "  node n$i  http://127.0.0.1:$((base + i - 1))"; done
echo "  try: curl http://127.0.0.1:$base/v1/nodes"
echo "       curl -X POST http://127.0.0.1:$base/v1/export/s3 -d '{\"id\": \"e1\"}'   (an export across the nodes)"
echo "Ctrl-C stops the cluster."
wait -n "${pids[@]}" "${nodes[@]}" || true
echo "cluster.sh: a process exited; stopping the cluster (logs in $dir)" >&2
