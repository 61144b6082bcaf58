#!/usr/bin/env bash
# Installs the Debian packages tests use besides PostgreSQL and Docker: cloud-init (its
# `cloud-init schema` validates the agent's cloud-config), Chromium (browser tests, driven by
# playwright-core; never downloaded at test time) and systemd's analyzer for the agent unit.
set -euo pipefail
missing=()
command -v cloud-init >/dev/null 2>&1 || missing+=(cloud-init)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
	echo "ensure-debian-tools: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
