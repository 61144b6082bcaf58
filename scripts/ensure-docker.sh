#!/usr/bin/env bash
# Makes a Docker engine and the compose v2 plugin available on this machine (DESIGN.md §8):
# installs docker.io and busybox-static from Debian, starts dockerd in the background when no
# engine answers, and builds the compose plugin from its Go module when it is missing.
set -euo pipefail

COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
log() { printf 'ensure-docker: %s\n' "$*" >&2; }

apt_install() {
	if [ ! -f /var/lib/apt/lists/lock ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock | head -1)" ]; then
		apt-get update -qq
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || {
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	}
}

if ! command -v dockerd >/dev/null 2>&1; then
	log "installing docker.io"
	apt_install docker.io
fi
if [ ! -x /bin/busybox ] || ! /bin/busybox --list 2>/dev/null | grep -qx wget; then
	log "installing busybox-static (for test images built without a registry)"
	apt_install busybox-static
fi

if ! docker info >/dev/null 2>&1; then
	log "starting dockerd"
	mkdir -p /var/log
	nohup dockerd >/var/log/stagely-dockerd.log 2>&1 &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 0.5
	done
	docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/stagely-dockerd.log"; tail -20 /var/log/stagely-dockerd.log >&2; exit 1; }
fi

plugin="$HOME/.docker/cli-plugins/docker-compose"
# The plugin is built once per machine and user, stamped with its version, and every clone and
# run reuses it. Ours is rebuilt when COMPOSE_VERSION changes, and so is one built without -X
# (it reports "dev", which the agent would pass on to users); a compose v2 from elsewhere (the
# distribution's, Docker's packages) that works is kept.
have=$(docker compose version --short 2>/dev/null || true)
if [ -z "$have" ] || [ "$have" = dev ] || { [ -x "$plugin" ] && [ "${have#v}" != "${COMPOSE_VERSION#v}" ]; }; then
	log "building the compose plugin $COMPOSE_VERSION from its Go module (about 3 minutes)"
	work=$(mktemp -d)
	(
		cd "$work"
		go mod init composebuild >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION" >/dev/null 2>&1
		mkdir -p "$(dirname "$plugin")"
		# Build beside the plugin and rename, so a compose run in progress never sees half a file.
		GOFLAGS=-mod=mod go build -trimpath \
			-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${COMPOSE_VERSION}" \
			-o "$plugin.new" github.com/docker/compose/v2/cmd
		mv -f "$plugin.new" "$plugin"
	)
	rm -rf "$work"
fi
docker compose version >/dev/null
log "ready: $(docker version --format '{{.Server.Version}}') / $(docker compose version --short)"
