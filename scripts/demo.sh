#!/usr/bin/env bash
# The corral demo: the example appliance in etc-examples/ run by corral as
# PID 1 of fresh pid, mount, network, uts and ipc namespaces. Nothing on
# the host changes: the bridge, veths and cgroups live in namespaces and a
# cgroup subtree that end with the demo. Run it as root: `make demo`.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/build/bin"
cfg="$top/etc-examples"
say() { printf '\n\033[1;36m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (namespaces, cgroups): sudo make demo"
for t in unshare nsenter mount; do
	command -v "$t" >/dev/null || die "needs $t (util-linux)"
done
if ! [ -x /bin/busybox ]; then
	say "installing busybox-static (the example services use busybox httpd, sh, wget)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
if ! [ -x "$bin/corral" ] || ! [ -x "$bin/hello" ]; then die "build first: make build"; fi
"$bin/corral" check "$cfg" >/dev/null || { "$bin/corral" check "$cfg"; die "etc-examples does not pass corral check"; }

# The example services expect their binaries at /usr/libexec/corral, as on
# the appliance image. Inside the demo's private mount namespace a tmpfs
# over /usr/libexec holds a bind of build/bin there; the host never sees it.
say "starting corral as PID 1 of new namespaces, with $cfg"
# --kill-child: if unshare dies, corral (and with it the whole pid
# namespace) dies too; nothing of the demo can outlive it.
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
unshare --pid --net --mount --uts --ipc --fork --kill-child -- /bin/sh -c '
	mount -t tmpfs -o mode=0755,size=1m corral-demo /usr/libexec &&
	mkdir /usr/libexec/corral &&
	mount --bind "$1" /usr/libexec/corral &&
	exec env container=corral-demo "$1/corral" --config "$2" --log-format console --cgroup-prefix corral-demo
' demo "$bin" "$cfg" &
ushare=$!
pid=""
# On any exit: ask corral to shut down (unshare itself ignores SIGTERM),
# give it time to stop its services, then make sure.
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
	for _ in $(seq 300); do kill -0 "$ushare" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$ushare" 2>/dev/null || true
	wait "$ushare" 2>/dev/null || true
}
trap cleanup EXIT

# corral is unshare's child: PID 1 inside, an ordinary pid out here.
for _ in $(seq 100); do
	pid=$(pgrep -P "$ushare" | head -n1 || true)
	[ -n "$pid" ] && [ -S "/proc/$pid/root/run/corral/corral.sock" ] && break
	sleep 0.1
done
[ -n "${pid:-}" ] || die "corral did not come up"
export CORRAL_SOCKET="/proc/$pid/root/run/corral/corral.sock"
corral() { "$bin/corral" "$@"; }
state() { corral status | awk -v s="$1" '$1 == s { print $2 }'; }
wait_state() { # service state seconds
	for _ in $(seq $(($3 * 10))); do
		[ "$(state "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	echo "demo: $1 did not reach $2 in $3s" >&2
	return 1
}

wait_state web running 20
wait_state check "done" 20 || true
say "corral status (hello is running only after READY=1; web required it)"
corral status

say "fetching the web page across the veth, from the supervisor's network namespace"
nsenter --net="/proc/$pid/ns/net" /bin/busybox wget -q -O - http://10.88.0.10/
hello=$(corral status | awk '$1 == "hello" { print $6 }')
say "and the Go notify service's page at http://$hello:8080/"
nsenter --net="/proc/$pid/ns/net" /bin/busybox wget -q -O - "http://$hello:8080/"

say "watching for 15 s: flaky crashes and backs off (0.5s, 1s, 2s, ...), hog is held at 32M and OOM-killed"
sleep 15
corral status

say "flaky's recent transitions"
corral status flaky

say "shutting down (corral poweroff): services stop in reverse dependency order"
corral poweroff
wait "$ushare" || true
trap - EXIT
say "demo finished: namespaces, bridge, veths and cgroups are gone with it"
