# The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
GO      ?= go
BIN     := bin/mlsidecar
PKGS     = $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: all build run test vet unit e2e differential os-fetch fuzz fuzz-short bench-proxy bench-batch bench-ingest clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/mlsidecar

# A local OpenSearch node on :9200 and mlsidecar on :9201; Ctrl-C stops both.
run: build
	bash deploy/local/run.sh

# go vet, the unit tests with the race detector, every fuzz target briefly,
# the e2e suite against the real binary and a real OpenSearch node, then the
# differential tier against genuine ML Commons.
test: vet unit fuzz-short e2e differential

vet:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "not gofmt-ed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags bench ./e2e

# The OpenSearch test node's jars (Maven, Java 17): indexstore's tests and
# the e2e suite run against a real node.
os-fetch:
	bash e2e/opensearch/node.sh fetch

unit: os-fetch
	$(GO) test -race -count=1 $(PKGS)

# The e2e suite needs the client libraries and the S3 server installed once:
# bash e2e/testdata/clients/install.sh && bash e2e/s3server/install.sh
E2E_PKGS = $(shell $(GO) list ./e2e/... | grep -v /e2e/differential)
e2e: build os-fetch
	MLSIDECAR_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m -v $(E2E_PKGS) 2>&1 | grep -v '^=== \(RUN\|PAUSE\|CONT\)'; exit $${PIPESTATUS[0]}

# The same requests to genuine ML Commons 2.19.6 (WITH_ML=1 node) and to
# mlsidecar, compared; its own target, so its two nodes never share the
# machine with the e2e suite's.
differential: build os-fetch
	MLSIDECAR_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -v ./e2e/differential/ 2>&1 | grep -v '^=== \(RUN\|PAUSE\|CONT\)'; exit $${PIPESTATUS[0]}

# Every fuzz target of every package for FUZZTIME each; `make test` runs them
# briefly, `make fuzz FUZZTIME=5m` hunts.
FUZZTIME ?= 30s
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for pkg in $(PKGS); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) >$$log 2>&1 || \
	      { grep -v '^fuzz: elapsed' $$log | tail -n 40; exit 1; }; \
	  done; \
	done

# A count, not a duration: with -fuzztime=<duration> Go's coordinator can
# report its own timeout as a failure ("context deadline exceeded") when the
# deadline fires while it is stopping; a count ends the run without a timer.
fuzz-short:
	$(MAKE) --no-print-directory fuzz FUZZTIME=4000x

# Proxy overhead: wrk against the node directly, through mlsidecar and through
# nginx (apt-get install -y wrk nginx); prints ratios. Not part of `make test`.
bench-proxy: build
	MLSIDECAR_BIN=$(CURDIR)/$(BIN) bash e2e/bench/proxy.sh

# Batch predict: submission overhead and one poll cycle over BENCH_BATCH_TASKS
# (default 10000) open tasks, against the OpenAI double and a real node;
# prints ratios to the double alone. Not part of `make test`.
bench-batch: build os-fetch
	MLSIDECAR_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -count=1 -timeout 60m -v -run 'TestBenchBatch|TestBatchTwoReplicasShareAndTakeOver' ./e2e/

# Batch ingestion: BENCH_INGEST_LINES (default 1000000) output lines of a
# 384-dimension embedding job into a fresh index through _batch_ingestion,
# from an OpenAI file, from S3 and with the working replica killed halfway,
# each next to opensearch-go's BulkIndexer writing the same documents straight
# to the node; prints docs/s, ratios to it and mlsidecar's peak RSS, asserts
# only one document per line. Needs the S3 server (bash e2e/s3server/install.sh)
# and about 20 KB of disk per line. Not part of `make test`.
bench-ingest: build os-fetch
	MLSIDECAR_BIN=$(CURDIR)/$(BIN) $(GO) test -tags bench -count=1 -timeout 240m -v -run 'TestBenchIngest' ./e2e/bench/ingest/

clean:
	rm -rf bin e2e/opensearch/target .run
