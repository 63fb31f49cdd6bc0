#!/usr/bin/env bash
# Installs what `make test` needs, idempotently (never inside a test):
#   - the Go modules;
#   - Prometheus (Debian's package), which e2e/observability_test.go runs
#     itself (/usr/bin/prometheus with a temporary config and storage, on a
#     free loopback port). The system service is neither started nor needed.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download

if [ ! -x /usr/bin/prometheus ]; then
	sudo=""
	if [ "$(id -u)" != 0 ]; then
		sudo="sudo"
	fi
	# Do not start the packaged service (policy-rc.d 101: "action forbidden");
	# the tests start their own Prometheus.
	policy=/usr/sbin/policy-rc.d
	created_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod +x "$policy"
		created_policy=1
	fi
	trap '[ -n "$created_policy" ] && $sudo rm -f "$policy"' EXIT
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	# A system without policy-rc.d support (systemd) may have started it.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
		$sudo systemctl stop prometheus || true
		$sudo systemctl disable prometheus >/dev/null 2>&1 || true
	fi
fi
/usr/bin/prometheus --version 2>&1 | head -1
