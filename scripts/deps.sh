#!/usr/bin/env bash
# Installs what shardvault needs on Debian bookworm. Uses sudo only when not root.
#   scripts/deps.sh          Debian packages to build and run
#   scripts/deps.sh --test   plus test tools (awscli, etcd, npm packages)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

build_pkgs=(build-essential cmake pkg-config git librocksdb-dev libmicrohttpd-dev libjansson-dev
  libcurl4-openssl-dev libzstd-dev libsnappy-dev liblz4-dev zlib1g-dev libxxhash-dev libssl-dev libcmocka-dev libgnutls28-dev)
test_pkgs=(nodejs npm awscli valgrind time curl openssl chromium etcd-server etcd-client)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian; a working node on PATH is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || tmp+=("$p"); done
  missing=("${tmp[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: installing npm packages (test tools)"
    npm install --no-audit --no-fund --loglevel=error
  fi
fi
