#!/usr/bin/env bash
# The sidecar's import graph is a memory budget paid in every pod: weft-proxy
# must not link control-plane dependencies, grpc or the generated Envoy types.
set -euo pipefail
cd "$(dirname "$0")/.."
heavy=$(go list -deps ./cmd/weft-proxy | grep -E '^(k8s\.io/|sigs\.k8s\.io/|go\.etcd\.io/|github\.com/spf13/|github\.com/open-policy-agent/|google\.golang\.org/grpc|github\.com/envoyproxy/|github\.com/weftmesh/weft/(controlplane|cli|demo))' || true)
if [ -n "$heavy" ]; then
  echo "weft-proxy imports packages it must not (every sidecar pays for them in memory):"
  echo "$heavy"
  exit 1
fi
echo "weft-proxy import graph: $(go list -deps ./cmd/weft-proxy | grep -v '^vendor/' | grep -c '\.') non-std packages, none forbidden"
