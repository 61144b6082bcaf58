#!/bin/sh
# Installs or upgrades the Stagely agent from the control plane that served this script.
#
#   export STAGELY_TOKEN=stgb_...; curl -fsSL https://stagely.example.com/install.sh | sudo --preserve-env=STAGELY_TOKEN sh
#
# Steps, in this order, so a refused download changes nothing on the machine:
#   1. detect the architecture (amd64, arm64),
#   2. download the agent and SHA256SUMS from the server and verify the checksum,
#   3. install Docker and the compose v2 plugin from the distribution's packages if missing,
#      and stop unless `docker info` answers,
#   4. install the binary (atomically: a running agent keeps its old file), write
#      /etc/stagely/config.json (0600, root) and the systemd unit, and (re)start the agent.
# Running it again upgrades in place; without a token it keeps the existing config.json, and
# so it does with the bootstrap token the agent already traded for its own token. A server URL
# other than config.json's takes a new token (the credential is that server's).
# Flags:
#   --token TOKEN  the agent's bootstrap token from the dashboard (written only to config.json);
#                  STAGELY_TOKEN in the environment is the same, and keeps it off command lines
#   --url URL      the control plane's URL (default: the server this script came from)
#   --root DIR     install under DIR instead of / (image builds, tests); systemd is not used
#   --start        without systemd, start the agent in the background (log in /var/log/stagely-agent.log)
#   --previews     also install Caddy (the distribution's caddy package, its service enabled, its
#                  admin API on 127.0.0.1:2019), which routes pull request previews; not with --root
# Environment: STAGELY_INSTALL_ROOT is the same as --root.
set -eu

# The server writes its public URL here when it serves the script.
STAGELY_URL=@STAGELY_URL@

say() { printf 'stagely-install: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# The token from the environment stays out of every command line (ps shows those to every
# user). It is unset at once: no program this script runs inherits it.
token="${STAGELY_TOKEN:-}"
unset STAGELY_TOKEN
url="$STAGELY_URL"
root="${STAGELY_INSTALL_ROOT:-}"
start=false
previews=false
while [ $# -gt 0 ]; do
	case "$1" in
	--token) [ $# -ge 2 ] || die "--token needs a value"; token="$2"; shift 2 ;;
	--token=*) token="${1#*=}"; shift ;;
	--url) [ $# -ge 2 ] || die "--url needs a value"; url="$2"; shift 2 ;;
	--url=*) url="${1#*=}"; shift ;;
	--root) [ $# -ge 2 ] || die "--root needs a value"; root="$2"; shift 2 ;;
	--root=*) root="${1#*=}"; shift ;;
	--start) start=true; shift ;;
	--previews) previews=true; shift ;;
	-h | --help) sed -n '2,24p' "$0" 2>/dev/null || true; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

# Tokens are stgb_<id>_<base64url> (bootstrap) or stg_<id>_<base64url>; refusing anything else keeps config.json valid JSON without
# a JSON encoder in sh.
case "$token" in
*[!A-Za-z0-9_.-]*) die "the token holds characters a Stagely token never has: copy it again from the dashboard" ;;
esac
case "$url" in
http://* | https://*) ;;
*) die "server URL '$url' must start with http:// or https://" ;;
esac
case "$url" in
*[!A-Za-z0-9:/._~%-]*) die "server URL '$url' holds characters this installer does not accept" ;;
esac
url="${url%/}"
root="${root%/}"
if [ -n "$root" ]; then
	case "$root" in
	/*) ;;
	*) die "--root must be an absolute path" ;;
	esac
elif [ "$(id -u)" -ne 0 ]; then
	die "run as root (… | sudo --preserve-env=STAGELY_TOKEN sh): the agent drives the Docker socket and writes /etc/stagely"
fi
if $previews && [ -n "$root" ]; then
	die "--previews installs and starts the caddy package on this machine, so it does not go with --root"
fi

bin_path="$root/usr/local/bin/stagely-agent"
config_dir="$root/etc/stagely"
config_path="$config_dir/config.json"
unit_path="$root/etc/systemd/system/stagely-agent.service"
data_dir="$root/var/lib/stagely"
log_path="$root/var/log/stagely-agent.log"
pid_path="$root/run/stagely-agent.pid"
# Seconds an agent started with --start gets to stop on SIGTERM: its shutdown grace (2 minutes,
# a running deploy finishes first) and more.
stop_grace=200

if [ -z "$token" ] && [ ! -s "$config_path" ]; then
	die "no token (STAGELY_TOKEN or --token) given and no $config_path to keep: copy the command from the dashboard's agent page"
fi

detect_arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64 | armv8*) echo arm64 ;;
	*) die "architecture $(uname -m) has no Stagely agent build (there are linux/amd64 and linux/arm64)" ;;
	esac
}

fetch() { # fetch URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1" || die "download $1 failed"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1" || die "download $1 failed"
	else
		die "neither curl nor wget is installed"
	fi
}

sha256() { # sha256 FILE
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	else
		die "neither sha256sum nor shasum is installed: the download cannot be verified"
	fi
}

# download_agent ARCH DIR leaves a verified DIR/stagely-agent or stops.
download_agent() {
	name="stagely-agent-linux-$1"
	fetch "$url/agent/download/SHA256SUMS" "$2/SHA256SUMS"
	want=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$2/SHA256SUMS")
	[ -n "$want" ] || die "the server's SHA256SUMS lists no $name"
	fetch "$url/agent/download/linux/$1" "$2/stagely-agent"
	got=$(sha256 "$2/stagely-agent")
	if [ "$got" != "$want" ]; then
		die "checksum mismatch for $name: SHA256SUMS says $want, the download is $got; nothing was installed"
	fi
	chmod 0755 "$2/stagely-agent"
	say "downloaded $name ($got), checksum verified"
}

os_family() {
	id="" id_like=""
	if [ -r /etc/os-release ]; then
		# shellcheck disable=SC1091
		id=$(. /etc/os-release && echo "${ID:-}") id_like=$(. /etc/os-release && echo "${ID_LIKE:-}")
	fi
	case " $id $id_like " in
	*" debian "* | *" ubuntu "*) echo debian ;;
	*" fedora "* | *" rhel "* | *" centos "*) echo fedora ;;
	*) echo "${id:-unknown}" ;;
	esac
}

manual_docker() {
	die "$1. Install Docker Engine and the compose v2 plugin by hand (https://docs.docker.com/engine/install/), check that \`docker info\` and \`docker compose version\` work, then run this installer again"
}

install_docker() {
	family=$(os_family)
	case "$family" in
	debian)
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq || die "apt-get update failed"
		if ! command -v docker >/dev/null 2>&1; then
			say "installing docker.io from the distribution"
			apt-get install -y -qq docker.io >/dev/null || manual_docker "apt-get install docker.io failed"
		fi
		if ! docker compose version >/dev/null 2>&1; then
			# Ubuntu: docker-compose-v2; Docker's own repository: docker-compose-plugin;
			# Debian 13+: docker-compose is compose v2 and installs the CLI plugin.
			for pkg in docker-compose-v2 docker-compose-plugin docker-compose; do
				say "trying $pkg for the compose v2 plugin"
				apt-get install -y -qq "$pkg" >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 && break
			done
		fi
		;;
	fedora)
		if ! command -v docker >/dev/null 2>&1; then
			say "installing moby-engine (or docker) from the distribution"
			dnf install -y moby-engine >/dev/null || dnf install -y docker >/dev/null ||
				manual_docker "dnf could not install moby-engine or docker"
		fi
		if ! docker compose version >/dev/null 2>&1; then
			for pkg in docker-compose docker-compose-plugin; do
				say "trying $pkg for the compose v2 plugin"
				dnf install -y "$pkg" >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 && break
			done
		fi
		;;
	*) manual_docker "this installer installs Docker on Debian, Ubuntu and the Fedora/RHEL family, not on '$family'" ;;
	esac
	if systemd_running; then
		systemctl enable --now docker >/dev/null 2>&1 || say "systemctl enable --now docker failed"
	fi
}

ensure_docker() {
	if ! command -v docker >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
		install_docker
	fi
	command -v docker >/dev/null 2>&1 || manual_docker "the docker command is still missing"
	docker compose version >/dev/null 2>&1 ||
		manual_docker "the compose v2 plugin (docker compose) is still missing"
	if ! docker info >/dev/null 2>&1 && systemd_running; then
		systemctl start docker >/dev/null 2>&1 || true
	fi
	docker info >/dev/null 2>&1 ||
		die "\`docker info\` fails: the Docker engine is not running or not reachable at its socket; start it (systemctl start docker) and run this installer again"
	say "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), compose $(docker compose version --short 2>/dev/null)"
}

# ensure_caddy installs Caddy for pull request previews: the distribution's package (Debian 12
# ships 2.6), its service enabled. The agent configures it through its admin API, which Caddy
# serves on localhost:2019 unless its config says otherwise; the agent's STAGELY_CADDY_ADMIN
# defaults to http://127.0.0.1:2019 (docs/agent-deploy.md, "Previews").
ensure_caddy() {
	if ! command -v caddy >/dev/null 2>&1; then
		case "$(os_family)" in
		debian)
			say "installing caddy from the distribution, for previews"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy >/dev/null 2>&1 ||
				{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy >/dev/null; } ||
				die "apt-get install caddy failed: install Caddy by hand (https://caddyserver.com/docs/install) and run this installer again"
			;;
		fedora)
			say "installing caddy from the distribution, for previews"
			dnf install -y caddy >/dev/null || die "dnf install caddy failed: install Caddy by hand (https://caddyserver.com/docs/install) and run this installer again"
			;;
		*) die "--previews installs Caddy on Debian, Ubuntu and the Fedora/RHEL family, not on '$(os_family)': install it by hand (https://caddyserver.com/docs/install), leave its admin API on localhost:2019, and run this installer again without --previews" ;;
		esac
	fi
	if systemd_running; then
		systemctl enable --now caddy >/dev/null 2>&1 || say "systemctl enable --now caddy failed: start Caddy yourself"
	else
		say "systemd is not running: start Caddy yourself (caddy start --config /etc/caddy/Caddyfile), with its admin API on localhost:2019"
	fi
	say "caddy $(caddy version 2>/dev/null | cut -d' ' -f1) for previews: the agent routes them through its admin API at http://127.0.0.1:2019"
}

# systemd_running is true when systemd is PID 1 of this machine and the install targets it.
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# already_exchanged is true when config.json says the agent traded this very bootstrap token
# (it keeps the token's SHA-256): running the same command again to upgrade must not replace
# the agent's own token with a bootstrap token that works only once.
already_exchanged() {
	case "$token" in stgb_*) ;; *) return 1 ;; esac
	[ -s "$config_path" ] || return 1
	sum=$(printf '%s' "$token" | sha256 /dev/stdin)
	grep -q "\"bootstrap_sha256\":\"$sum\"" "$config_path"
}

# config_url prints the server URL config.json names, without a trailing slash ("" if none).
config_url() {
	sed -n 's/.*"server_url"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$config_path" | head -n 1 | sed 's#/*$##'
}

# plan_config decides, before anything changes, what becomes of config.json: config_plan is
# "write" for a token the agent has not traded, "keep" otherwise. The agent's credential
# works only with the server that issued it, so keeping config.json with another server's
# URL is refused: a new server takes a new token.
plan_config() {
	if [ -n "$token" ] && ! already_exchanged; then
		config_plan="write"
		return
	fi
	old_url=$(config_url)
	if [ -n "$old_url" ] && [ "$old_url" != "$url" ]; then
		die "$config_path is for the server $old_url, and $url is another one, where the agent's credential does not work: run this installer with a new token from $url (create the agent there, or rotate its token). If $url is the same Stagely server at a new address, change server_url in $config_path and restart the agent instead"
	fi
	config_plan="keep"
}

write_config() {
	mkdir -p "$config_dir"
	chmod 0700 "$config_dir"
	tmp="$config_dir/.config.json.$$"
	(
		umask 077
		printf '{"server_url":"%s","token":"%s"}\n' "$url" "$token" >"$tmp"
	)
	[ "$(id -u)" -ne 0 ] || chown 0:0 "$tmp"
	chmod 0600 "$tmp"
	mv -f "$tmp" "$config_path"
	say "wrote $config_path (0600)"
}

write_unit() {
	mkdir -p "${unit_path%/*}"
	cat >"$unit_path.new" <<'STAGELY_UNIT'
@STAGELY_UNIT@
STAGELY_UNIT
	chmod 0644 "$unit_path.new"
	mv -f "$unit_path.new" "$unit_path"
}

# running PID is true while PID runs; an exited process nobody has reaped yet (a zombie) is
# not running, though kill -0 still finds it.
running() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$state" ] && [ "$state" != Z ]
}

# stop_background stops an agent an earlier --start left running, waiting out its shutdown
# grace (a running deploy finishes first). One that outlasts it is killed: two agents would
# take the same jobs.
stop_background() {
	[ -s "$pid_path" ] || return 0
	pid=$(cat "$pid_path")
	if running "$pid" && grep -q stagely-agent "/proc/$pid/cmdline" 2>/dev/null; then
		say "stopping the running agent (pid $pid) to upgrade it"
		kill -TERM "$pid"
		wait_stopped "$pid" "$stop_grace"
		if running "$pid"; then
			say "the agent (pid $pid) did not stop within ${stop_grace}s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
			wait_stopped "$pid" 10
		fi
		if running "$pid"; then
			die "the agent (pid $pid) still runs after SIGKILL; stop it, then run this installer again"
		fi
	fi
	rm -f "$pid_path"
}

# wait_stopped PID SECONDS waits up to SECONDS for PID to end.
wait_stopped() {
	i=0
	while running "$1" && [ "$i" -lt "$2" ]; do
		sleep 1
		i=$((i + 1))
	done
}

start_agent() {
	run_cmd="STAGELY_DATA_DIR=$data_dir $bin_path --config $config_path"
	if systemd_running; then
		systemctl daemon-reload
		systemctl enable stagely-agent >/dev/null 2>&1
		systemctl restart stagely-agent
		say "the agent runs as the systemd service stagely-agent (journalctl -u stagely-agent -f)"
		return
	fi
	if ! $start; then
		if [ -n "$root" ]; then
			say "installed under $root; systemd is not used for another root"
		else
			say "systemd is not running on this machine, so the unit was installed but not started"
		fi
		say "start the agent with: $run_cmd"
		say "or run this installer again with --start to start it in the background"
		return
	fi
	stop_background
	mkdir -p "${log_path%/*}" "${pid_path%/*}"
	STAGELY_DATA_DIR="$data_dir" nohup "$bin_path" --config "$config_path" </dev/null >>"$log_path" 2>&1 &
	echo $! >"$pid_path"
	say "systemd is not running: started the agent in the background (pid $!, log $log_path)"
}

main() {
	plan_config
	arch=$(detect_arch)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	download_agent "$arch" "$work"
	ensure_docker
	if $previews; then
		ensure_caddy
	fi
	mkdir -p "${bin_path%/*}" "$data_dir"
	chmod 0700 "$data_dir"
	# Same directory, then rename: an agent running the old file keeps it until it restarts.
	cp "$work/stagely-agent" "$bin_path.new"
	# On disk before the rename: a crash then leaves the old binary or the whole new one.
	sync
	mv -f "$bin_path.new" "$bin_path"
	say "installed $bin_path ($("$bin_path" --version))"
	if [ "$config_plan" = write ]; then
		write_config
	elif [ -n "$token" ]; then
		say "kept $config_path: the agent traded this bootstrap token for its own token already"
	else
		say "kept $config_path"
	fi
	write_unit
	start_agent
}

main
