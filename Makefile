# Weft — the two commands a newcomer needs:
#   make demo   build both binaries and run a whole mesh on this machine
#   make test   run every test (with -race), installing what the tests need
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/weftmesh/weft/cli.Version=$(VERSION) -X github.com/weftmesh/weft/proxy.Version=$(VERSION)
DEMO_ARGS ?=

.PHONY: all build demo test test-unit test-e2e deps vet fmt clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/weft ./cmd/weft-proxy
	@echo "built $(BIN)/weft and $(BIN)/weft-proxy"

demo: build
	$(BIN)/weft demo $(DEMO_ARGS)

# Everything the tests need is installed by scripts/test-deps.sh (idempotent).
deps:
	./scripts/test-deps.sh

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	./scripts/check-proxy-imports.sh

test: deps vet
	$(GO) test -race -count=1 -timeout 15m ./...

test-unit:
	$(GO) test -race -count=1 -short ./...

test-e2e:
	$(GO) test -race -count=1 -v ./e2e/...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

# Benchmark Weft against nginx, HAProxy and no proxy (root, ~15 min; never part of
# `make test`): writes bench/results/latest.json and docs/performance.md. See bench/run.sh.
.PHONY: bench
bench:
	./bench/run.sh
