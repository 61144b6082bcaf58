#!/usr/bin/env bash
# Installs the Go tools `make test` runs besides the go command itself.
set -euo pipefail
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
bin="$(go env GOPATH)/bin"
if ! "$bin/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
	echo "ensure-tools: installing staticcheck $STATICCHECK_VERSION" >&2
	(cd / && GOWORK=off GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION")
fi
