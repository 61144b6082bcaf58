#!/usr/bin/env bash
# Makes Node.js and npm available (the machine image has Node 20; Debian's packages otherwise).
set -euo pipefail
if ! command -v npm >/dev/null 2>&1; then
	echo "ensure-node: installing nodejs and npm from Debian" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
