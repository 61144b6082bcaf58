#!/usr/bin/env bash
# Installs Caddy, the reverse proxy pull request previews route through, from the distribution
# (Debian bookworm ships 2.6.2). Idempotent. The demo and the tests start their own `caddy run`
# on loopback ports; the package's system service is not used.
set -euo pipefail
command -v caddy >/dev/null 2>&1 && exit 0
echo "ensure-caddy: installing caddy" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy >/dev/null
