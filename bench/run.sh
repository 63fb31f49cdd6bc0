#!/usr/bin/env bash
# make bench: Weft's data plane and control plane measured side by side with
# nginx, HAProxy and no proxy (see docs/performance.md). Needs root (network
# namespaces). Installs what it needs (idempotent), builds every binary into
# a temporary directory, runs bench/cmd/weftbench and writes
# bench/results/latest.{json,md} and the generated section of
# docs/performance.md.
#
# Environment (defaults): BENCH_DURATION (30s) per fixed-load run,
# BENCH_MAX_DURATION (half of it) per max-throughput run, BENCH_REPS (3),
# BENCH_WARMUP (2s), BENCH_PATHS (all: direct,weft,nginx,haproxy,weft_tcp,
# direct_max,weft_max,nginx_max), BENCH_CP_CLIENTS (1000,10000),
# BENCH_CP_CHANGES (3), BENCH_SKIP_DATAPLANE, BENCH_SKIP_CP, BENCH_PROFILE
# (1: also profile the Weft pair; default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "make bench needs root: it creates network namespaces and pins processes to CPUs" >&2
  exit 2
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "make bench needs at least 2 CPUs (load generator and app on one, the proxies on another)" >&2
  exit 2
fi

GO=${GO:-go}
FORTIO_VERSION=1.68.2
fortio=$($GO env GOPATH)/bin/fortio
if ! "$fortio" version 2>/dev/null | grep -q "^$FORTIO_VERSION"; then
  echo "installing fortio $FORTIO_VERSION"
  GOFLAGS= $GO install "fortio.org/fortio@v$FORTIO_VERSION"
fi
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
for tool in ip taskset; do command -v $tool >/dev/null || missing+=(iproute2 util-linux); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; }
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)

bin=$(mktemp -d /tmp/weftbench-bin.XXXXXX)
cleanup() {
  rm -rf "$bin"
  # weftbench removes its namespaces itself; this covers a kill -9.
  for ns in weftbench-c weftbench-s; do
    [ -e /var/run/netns/$ns ] && ip netns del $ns 2>/dev/null || true
  done
}
trap cleanup EXIT
echo "building weft, weft-proxy and the bench tools into $bin"
if ! $GO build -trimpath -o "$bin/" ./cmd/weft ./cmd/weft-proxy ./bench/cmd/benchapp ./bench/cmd/weft-proxy-prof ./bench/cmd/weftbench; then
  echo "build failed: make bench measures the working tree, which must compile" >&2
  exit 1
fi
prof=()
if [ "${BENCH_PROFILE:-1}" = 1 ]; then prof=(--weft-proxy-prof "$bin/weft-proxy-prof"); fi
"$bin/weftbench" --weft "$bin/weft" --weft-proxy "$bin/weft-proxy" --app "$bin/benchapp" \
  --fortio "$fortio" --nginx "$nginx" --haproxy "$haproxy" "${prof[@]}" \
  --results bench/results --doc docs/performance.md
