#!/usr/bin/env bash
# Installs what `make test` needs, idempotently. Today that is only the Go
# modules; later suites add their tools here (never inside a test).
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
