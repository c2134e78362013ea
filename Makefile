# noderuntime: the two commands a new machine needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 15s
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/noderuntime/noderuntime/internal/buildinfo.Version=$(VERSION)

.PHONY: run test test-deps test-long lint bench build fuzz

## run: the service with an in-process Engage simulator and a demo authorization
# Built, then run: `go run` exits 1 after an interrupt even when the program it ran
# exits 0, so Ctrl-C would end `make run` with a make error.
RUN_BIN ?= bin/noderuntime
run:
	$(GO) build -o $(RUN_BIN) ./cmd/noderuntime
	exec $(RUN_BIN) dev

## test: every test, integration included, race detector on (needs Postgres; see README)
# The deadline tests run once more without the race detector and alone on the machine:
# there a timed-out execution is held to the promise of its deadline plus 100 ms
# (internal/e2e/race_test.go says why a race build gets more).
DEADLINE_TESTS = TestEngageFaultsUnderFiftyConcurrentExecutions|TestASlowTokenEndpointCostsAnExecutionNoMoreThanItsDeadline
test: test-deps
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -timeout 5m -run '$(DEADLINE_TESTS)' ./internal/e2e
	cd deploy && $(GO) test -count=1 -timeout 5m ./...

## test-deps: the Debian packages the tests use (chromium, promtool), installed when missing
test-deps:
	@.ci/install-test-deps

## test-long: soak, multi-replica and fuzz runs, each bounded in count or time
test-long:
	$(GO) test -race -count=1 -tags long -run 'Long' -timeout 30m ./...
	.ci/test-fuzz-one
	$(MAKE) fuzz

## fuzz: every Fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    GO=$(GO) .ci/fuzz-one $$pkg $$target $(FUZZTIME); \
	  done; \
	done

## lint: gofmt, go vet and staticcheck (pinned)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd deploy && $(GO) vet ./...

## bench: the load benchmark against the simulator, then the Go micro-benchmarks
bench:
	$(GO) run ./cmd/nrbench -soak 60s
	$(GO) test -run '^$$' -bench . -benchmem ./...

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/noderuntime ./cmd/noderuntime
