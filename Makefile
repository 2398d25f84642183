# coffer's tasks. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):/usr/lib/postgresql/15/bin:$(PATH)

VERSITYGW_VERSION := v1.8.0
STATICCHECK_VERSION := v0.8.2

.PHONY: build demo test tools lint bench bench-quick clean man

build:
	$(GO) build -o $(BIN)/coffer ./cmd/coffer

# Runs the main job end to end on embedded defaults: keys and a local
# repository under .coffer-demo/, the demo Airflow deployment from testdata.
demo: build
	$(BIN)/coffer demo --dir $(CURDIR)/.coffer-demo

# Installs what the tests need that a fresh machine lacks, checks the code
# (lint), then runs every test.
# The man page is made from the command definitions; TestManPage checks
# that the committed one is current.
man:
	$(GO) run ./cmd/coffer man > doc/coffer.1

test: tools lint
	$(GO) test -race -count=1 -timeout 20m ./...
	# The race detector slows chunking tenfold, so the round trips use a
	# 20 MB big file under -race; this run proves the 200 MB one.
	$(GO) test -count=1 -timeout 10m -run 'E2ERoundTrip' ./internal/e2e/

tools: $(BIN)/versitygw
	@./scripts/install-packages.sh

$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

lint: $(BIN)/staticcheck
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Benchmarks beside the baselines (doc/performance.md): tables in
# bench-out/results*.md, bench-out/results.json and bench-out/ratios.svg.
# The data sets are generated once and cached under bench-out/.
bench: tools build
	./scripts/bench-all.sh

# The same at CI size, in under 3 minutes.
bench-quick: tools build
	./scripts/bench-all.sh -quick

clean:
	rm -rf $(BIN) .coffer-demo
