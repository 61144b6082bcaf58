#!/usr/bin/env bash
# Installs the Debian packages tests use besides PostgreSQL and Docker: Caddy (previews), cloud-init (its
# `cloud-init schema` validates the agent's cloud-config), Chromium (browser tests, driven by
# playwright-core; never downloaded at test time) and systemd's analyzer for the agent unit.
set -euo pipefail
updated=false
install() { # install [--no-install-recommends] PACKAGE...
	if ! $updated; then
		apt-get update -qq
		updated=true
	fi
	echo "ensure-debian-tools: installing ${*: -1}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v cloud-init >/dev/null 2>&1 || install --no-install-recommends cloud-init
command -v systemd-analyze >/dev/null 2>&1 || install --no-install-recommends systemd
# Chromium with its recommended fonts, so pages and screenshots render text.
command -v chromium >/dev/null 2>&1 || install chromium
# install.sh checks: shellcheck (POSIX sh, no bashisms); sudo (the dashboard's install command
# runs the installer with it); qemu-user-static runs the arm64 agent build.
command -v shellcheck >/dev/null 2>&1 || install --no-install-recommends shellcheck
command -v sudo >/dev/null 2>&1 || install --no-install-recommends sudo
command -v qemu-aarch64-static >/dev/null 2>&1 || install --no-install-recommends qemu-user-static
# Caddy: the reverse proxy pull request previews route through (agent/caddy tests start their own
# `caddy run` with a temporary config on loopback ports; the package's system service is not used).
# Bookworm ships 2.6.2, whose on-demand TLS check is `on_demand_tls.ask`.
command -v caddy >/dev/null 2>&1 || install --no-install-recommends caddy
