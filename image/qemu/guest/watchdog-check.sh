#!/bin/sh
# watchdog-check.sh SERVICE SECONDS: the watchdog-check service of the
# watchdog-healthy boot (busybox sh, host network, corral's state directory
# bound in). It waits for SERVICE, the critical one, to be running, keeps
# the machine up SECONDS more, which are several hardware watchdog
# timeouts (had corral stopped petting, softdog would reset the board
# meanwhile), checks SERVICE is still running and never restarted, and
# asks corral to power off, which disarms the watchdog. Every line it
# prints starts with "WATCHDOG-CHECK:"; the last before the power-off is
# "WATCHDOG-CHECK: PASS" or "WATCHDOG-CHECK: FAIL: <what>". Without
# corral.test= on the kernel command line (an interactive boot) the
# machine stays up.

SOCK=/run/corral-host/corral.sock
svc=${1:?usage: watchdog-check.sh SERVICE SECONDS}
hold=${2:?usage: watchdog-check.sh SERVICE SECONDS}
budget=60   # seconds to wait for SERVICE

machine=$(sed -n 's/.*corral\.test=\([^ ]*\).*/\1/p' /proc/cmdline)

say() { echo "WATCHDOG-CHECK: $*"; }

c() { cmd=$1; shift; /usr/bin/corral "$cmd" --socket "$SOCK" "$@"; }

# field KEY: a top-level field of `corral status --json SERVICE`.
field() {
	c status --json "$svc" 2>/dev/null | sed -n "s/^  \"$1\": \"*\([^\",]*\)\"*,*\$/\1/p"
}

fail=""
i=0
until [ "$(field state)" = running ]; do
	if [ "$i" -ge "$budget" ]; then
		fail="$svc not running after ${budget}s"
		break
	fi
	sleep 1
	i=$((i + 1))
done
if [ -z "$fail" ]; then
	r0=$(field restarts)
	say "$svc running (restarts ${r0:-?}); holding the machine up for ${hold}s"
	sleep "$hold"
	state=$(field state)
	r1=$(field restarts)
	say "after ${hold}s: $svc $state, restarts ${r1:-?}"
	if [ "$state" != running ]; then
		fail="$svc is $state"
	elif [ "${r1:-x}" != "${r0:-y}" ]; then
		fail="$svc restarted (${r0:-?} -> ${r1:-?})"
	fi
fi

if [ -z "$fail" ]; then
	say "PASS"
else
	say "FAIL: $fail"
fi
if [ -z "$machine" ]; then
	say "interactive boot: leaving the machine running (corral poweroff, or ctrl-a x in qemu)"
	exit 0
fi
say "shutdown: corral poweroff"
c poweroff || say "FAIL corral poweroff was refused"
[ -z "$fail" ]
