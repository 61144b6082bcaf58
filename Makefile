# Stagely: `make test` runs every test on a fresh machine; `make demo` runs the push-to-deploy loop.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(shell go env GOPATH)/bin:/usr/local/go/bin:$(PATH)
export STAGELY_TEST_DATABASE_URL ?= postgres://postgres:stagely@127.0.0.1:5432/postgres?sslmode=disable

GO_PACKAGES := ./... ./agent/...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: test deps npm-deps fmt-check vet staticcheck build-check go-test build demo clean

test: deps fmt-check vet staticcheck build-check go-test
	@echo "make test: all checks passed"

deps: npm-deps
	scripts/ensure-postgres.sh
	scripts/ensure-docker.sh
	scripts/ensure-tools.sh

# GitHub's published REST description, which githubsim's conformance test validates against.
npm-deps:
	scripts/ensure-node.sh
	cd githubsim/testdata/openapi && npm ci --no-audit --no-fund --loglevel=error

fmt-check:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet:
	go vet $(GO_PACKAGES)

staticcheck:
	staticcheck $(GO_PACKAGES)

# The server module must build on its own too (DESIGN.md §1), and so must the agent.
build-check:
	GOWORK=off go build ./...
	cd agent && GOWORK=off go build ./...

go-test:
	go test -race -count=1 -timeout 20m $(GO_PACKAGES)

build:
	mkdir -p bin
	go build -ldflags "-X main.version=$(VERSION)" -o bin/stagely-server ./app/cmd/stagely-server
	cd agent && CGO_ENABLED=0 go build -ldflags "-s -w -X main.version=$(VERSION)" -o ../bin/stagely-agent ./cmd/stagely-agent

demo:
	@echo "make demo: coming with issue [5]; run 'make test' meanwhile"

clean:
	rm -rf bin
