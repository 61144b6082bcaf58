# Stagely: `make test` runs every test on a fresh machine; `make demo` runs the push-to-deploy loop.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(shell go env GOPATH)/bin:/usr/local/go/bin:$(PATH)
export STAGELY_TEST_DATABASE_URL ?= postgres://postgres:stagely@127.0.0.1:5432/postgres?sslmode=disable

GO_PACKAGES := ./... ./agent/...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Once: the binaries make build stamps and the version go-test tells the tests must agree.
VERSION := $(VERSION)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: agent-binaries test deps demo-deps npm-deps web-deps web web-test fmt-check vet staticcheck build-check go-test fuzz browser-test build demo clean

# go-test includes the end-to-end tests: the browser test (app/e2e TestBrowser), the demo in
# non-interactive mode (app/cmd/stagely-demo) and the push-to-deploy loop on the real Docker engine.
test: deps web fmt-check vet staticcheck build-check web-test go-test fuzz
	@echo "make test: all checks passed"

# What the tests need: the demo's, plus Go tools, GitHub's REST description, cloud-init,
# Chromium, Caddy, shellcheck, sudo and qemu-user (scripts/ensure-debian-tools.sh says why each).
deps: demo-deps npm-deps
	scripts/ensure-tools.sh
	scripts/ensure-debian-tools.sh

# What the demo needs, and nothing more, so that a first deploy comes quickly on a fresh
# machine: PostgreSQL, the Docker engine and compose plugin (and Node, through make web).
demo-deps:
	scripts/ensure-postgres.sh
	scripts/ensure-docker.sh

npm-deps: web-deps
	cd githubsim/testdata/openapi && npm ci --no-audit --no-fund --loglevel=error

web-deps:
	scripts/ensure-node.sh
	cd web && npm ci --no-audit --no-fund --loglevel=error

# The SPA is embedded into the server binary, so it is built before any Go package compiles.
web: web-deps
	cd web && npm run build

web-test: npm-deps
	cd web && npm test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet: web
	go vet $(GO_PACKAGES)

staticcheck: web
	staticcheck $(GO_PACKAGES)

# The server module must build on its own too (DESIGN.md §1), and so must the agent.
build-check: web
	GOWORK=off go build ./...
	cd agent && GOWORK=off go build ./...

# The tests that run the server and agent as processes (app/e2e, the demo's) take the
# binaries make build made instead of building their own, which is minutes of CPU each
# (apptest.PrebuiltBinaries); `go test` without these variables still builds them itself.
# -parallel 4: the Docker-bound tests (agent/deployer, app/e2e) mostly wait on Docker, health
# checks and hooks, so more of them at once shortens the run on two cores: 615s with the
# default of 2, 419s with 4, on a loaded 2-core machine. -timeout is per package binary and
# only a guard against a hung test: the slowest packages took 15 minutes under heavy load,
# and a deadline they can reach would fail a good change.
go-test: build
	STAGELY_SERVER_BIN=$(CURDIR)/bin/stagely-server STAGELY_AGENT_BIN=$(CURDIR)/bin/stagely-agent STAGELY_BIN_VERSION=$(VERSION) \
		go test -race -count=1 -timeout 40m -parallel 4 $(GO_PACKAGES)

# Every fuzz target runs briefly, one after the other: go test -fuzz takes one target of one
# package per run, and each run builds an instrumented test binary. The seeds alone already
# run with go-test. A failing input is written to the package's testdata/fuzz/<Target>/;
# commit it with the fix, and it stays a regression case. FUZZMINIMIZETIME bounds the time
# spent shrinking each new input, which would otherwise eat a short run.
# Each target runs a count of inputs (about 6 s of them on an idle 2-core machine), not a
# duration: with a duration, Go 1.26's fuzz coordinator can fail a clean run with a bare
# "context deadline exceeded" when a busy worker misses the deadline (golang/go#75804, fixed
# in Go 1.27). FUZZSCALE multiplies every count (FUZZSCALE=10 for a longer run).
FUZZSCALE ?= 1
FUZZMINIMIZETIME ?= 100x
FUZZ_TARGETS := \
	./app/stagelyyaml:FuzzParse:150000 \
	./app/stagelyyaml:FuzzParseComposeServices:200000 \
	./webhook:FuzzDecode:50000 \
	./webhook:FuzzVerify:150000 \
	./agent/protocol:FuzzDecode:200000 \
	./agent/deployer:FuzzExtract:2000 \
	./agent/compose:FuzzParsePS:80000

fuzz:
	@found=$$(grep -rhE --include='*_test.go' --exclude-dir=node_modules '^func Fuzz[A-Za-z0-9_]*\(' . | wc -l); \
	if [ "$$found" -ne $(words $(FUZZ_TARGETS)) ]; then \
		echo "fuzz: the repository has $$found fuzz targets, FUZZ_TARGETS lists $(words $(FUZZ_TARGETS)); list them all"; exit 1; fi
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; count=$$(( $${rest##*:} * $(FUZZSCALE) )); start=$$SECONDS; \
		go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$${count}x -fuzzminimizetime=$(FUZZMINIMIZETIME) -parallel=2 $$pkg || exit 1; \
		echo "fuzz: $$pkg $$name: $$count inputs in $$((SECONDS - start))s"; \
	done

# Only the browser test, for working on the SPA (make test runs it with the other Go tests).
browser-test: web
	cd web && npm run test:browser

# The server embeds the agent it serves at /agent/download/ (docs/agents.md), so the agent is
# cross-compiled into app/agentdist/dist/ first; bin/stagely-agent is built as the agent image
# builds it (app/cmd/stagely-demo's TestDockerfile compares the two commands).
AGENT_DIST := app/agentdist/dist
AGENT_ARCHES := amd64 arm64

agent-binaries:
	rm -f $(AGENT_DIST)/stagely-agent-linux-*
	for arch in $(AGENT_ARCHES); do \
		(cd agent && CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOWORK=off go build -trimpath -ldflags "$(LDFLAGS)" \
			-o ../$(AGENT_DIST)/stagely-agent-linux-$$arch ./cmd/stagely-agent) || exit 1; \
	done
	# The version the binaries carry, for self-update (docs/agents.md): the server embeds it too.
	echo '$(VERSION)' >$(AGENT_DIST)/VERSION

# The demo is built with the server's flags, so that the packages both use compile once.
build: web agent-binaries
	mkdir -p bin
	CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "$(LDFLAGS)" -o bin/stagely-server ./app/cmd/stagely-server
	cd agent && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/stagely-agent ./cmd/stagely-agent
	CGO_ENABLED=0 GOWORK=off go build -trimpath -o bin/stagely-demo ./app/cmd/stagely-demo

# The demo's agent runs on this machine: the server it starts serves only that build, which
# spares a fresh machine a cross-compile on its way to the first deploy.
demo: AGENT_ARCHES := $(shell go env GOARCH)
demo: demo-deps build
	bin/stagely-demo --server-bin bin/stagely-server --agent-bin bin/stagely-agent $(DEMO_FLAGS)

clean:
	rm -rf bin web/dist $(AGENT_DIST)/stagely-agent-* $(AGENT_DIST)/VERSION
