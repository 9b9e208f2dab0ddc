#!/bin/sh
# qemu-check.sh: the qemu-check service (busybox sh, inside a container of
# the guest). It watches the example appliance through corral's API until
# everything the boot test looks for has happened, then kills hello's main
# process, waits for it to be back, and shuts the machine down. Every line
# it prints starts with "QEMU-CHECK:"; the last before the shutdown is
# "QEMU-CHECK: PASS" or "QEMU-CHECK: FAIL: <what>".
#
# The machine is named by corral.test= on the kernel command line: virt and
# virt-* power off; raspi3b* reboots (the Pi 3 has no power-off; qemu
# -no-reboot exits instead); without it (an interactive boot) the machine
# stays up.

SOCK=/run/corral-host/corral.sock
BUDGET=${QEMU_CHECK_BUDGET:-150}   # seconds for everything before the shutdown

machine=$(sed -n 's/.*corral\.test=\([^ ]*\).*/\1/p' /proc/cmdline)
fails=""
waited=0

say() { echo "QEMU-CHECK: $*"; }

# c CMD ARGS...: the corral CLI against the supervisor's socket.
c() { cmd=$1; shift; /usr/bin/corral "$cmd" --socket "$SOCK" "$@"; }

# field SERVICE KEY: a top-level field of `corral status --json SERVICE`
# (indented by two spaces; the history entries are deeper).
field() {
	c status --json "$1" 2>/dev/null | sed -n "s/^  \"$2\": \"*\([^\",]*\)\"*,*\$/\1/p"
}

state_is() { [ "$(field "$1" state)" = "$2" ]; }
restarts_over() { r=$(field "$1" restarts); [ "${r:-0}" -gt "$2" ]; }
oom_killed() { c status --json hog 2>/dev/null | grep -q oom-killed; }
forkbomb_said() { c logs -n 1000 forkbomb 2>/dev/null | grep -q 'payload: forked'; }
# web's published port, from the appliance itself: the bridge's address is
# one of the appliance's, and 8080 there is DNATed to web's port 80.
# (Debian's static busybox wget crashes with -T: timeout bounds it.)
forwarded() { /bin/busybox timeout 5 /bin/busybox wget -q -O - http://10.88.0.1:8080/ 2>/dev/null | grep -q 'Hello from corral'; }
api_up() { c status >/dev/null 2>&1; }
back_running() { restarts_over hello "$1" && state_is hello running; }

# wait_for WHAT COMMAND...: poll once a second, within the overall budget.
wait_for() {
	what=$1; shift
	i=0
	until "$@"; do
		if [ "$waited" -ge "$BUDGET" ]; then
			say "FAIL $what (still not after ${waited}s)"
			fails="$fails, $what"
			return 1
		fi
		sleep 1
		i=$((i + 1))
		waited=$((waited + 1))
	done
	say "ok $what (after ${i}s more)"
}

say "start: machine ${machine:-interactive}, kernel $(uname -r), $(nproc) CPUs, memory $(awk '/^MemTotal|^MemAvailable/ { printf "%s %d MiB ", $1, $2 / 1024 }' /proc/meminfo)"
wait_for "API answers" api_up
wait_for "hello running" state_is hello running
wait_for "web running" state_is web running
wait_for "check done" state_is check "done"
wait_for "web through its port forward (10.88.0.1:8080)" forwarded
wait_for "hog oom-killed" oom_killed
wait_for "flaky restarted" restarts_over flaky 0
if wait_for "forkbomb reported" forkbomb_said; then
	say "forkbomb: $(c logs -n 1000 forkbomb | grep -o 'payload: forked.*' | head -n 1)"
fi

# Killing the main process of a restart = "always" service: it must come
# back, with one more restart.
r0=$(field hello restarts)
if c kill hello KILL; then
	say "sent SIGKILL to hello's main process (restarts ${r0:-?})"
	if wait_for "hello back to running after the kill" back_running "${r0:-0}"; then
		say "kill ok: hello restarts ${r0} -> $(field hello restarts)"
	fi
else
	say "FAIL corral kill hello KILL was refused"
	fails="$fails, kill"
fi

c status | while IFS= read -r line; do say "  $line"; done

if [ -z "$fails" ]; then
	say "PASS"
else
	say "FAIL: ${fails#, }"
fi

case "$machine" in
"")
	say "interactive boot: leaving the machine running (corral poweroff, or ctrl-a x in qemu)"
	exit 0
	;;
raspi3b*) action=reboot ;;
*) action=poweroff ;;
esac
say "shutdown: corral $action"
c "$action" || say "FAIL corral $action was refused"
[ -z "$fails" ]
