#!/bin/sh
# bootloop-check.sh: the bootloop-check service of the watchdog-bootloop
# boot (busybox sh, host network, corral's state directory and the data
# partition's /data/corral bound in). On a normal boot it reports the
# failed-boot counter and critical's failure, and leaves the rest to the
# hardware watchdog, which resets the board. In safe mode (critical held,
# "safe mode" in its waiting reason) it waits for the counter to be reset,
# which says the next boot will start every service again, and powers off
# (not on an interactive boot, without corral.test= on the kernel command
# line). Every line starts with "BOOTLOOP-CHECK:".

SOCK=/run/corral-host/corral.sock
COUNTER=/run/data-corral/failed-boots
budget=30

machine=$(sed -n 's/.*corral\.test=\([^ ]*\).*/\1/p' /proc/cmdline)

say() { echo "BOOTLOOP-CHECK: $*"; }

c() { cmd=$1; shift; /usr/bin/corral "$cmd" --socket "$SOCK" "$@"; }

# field KEY: a top-level field of `corral status --json critical`.
field() {
	c status --json critical 2>/dev/null | sed -n "s/^  \"$1\": \"*\([^\",]*\)\"*,*\$/\1/p"
}

counter() { cat "$COUNTER" 2>/dev/null || echo none; }

poweroff() {
	if [ -z "$machine" ]; then
		say "interactive boot: leaving the machine running"
	else
		say "corral poweroff"
		c poweroff || say "FAIL corral poweroff was refused"
	fi
	exit 0
}

say "the counter file, this boot included: $(counter)"
i=0
while [ "$i" -lt "$budget" ]; do
	state=$(field state)
	waiting=$(field waiting)
	case "$state:$waiting" in
	failed:*)
		say "critical failed ($(field last_exit)); counter $(counter): the watchdog resets the board"
		exit 0
		;;
	stopped:*"safe mode"*)
		say "SAFE MODE: critical held ($waiting)"
		j=0
		while [ "$(counter)" != 0 ] && [ "$j" -lt 10 ]; do
			sleep 1
			j=$((j + 1))
		done
		if [ "$(counter)" = 0 ]; then
			say "PASS: safe mode, the counter is reset to 0: the next boot starts every service"
		else
			say "FAIL: the counter is still $(counter) in safe mode"
		fi
		poweroff
		;;
	esac
	sleep 1
	i=$((i + 1))
done
say "FAIL: critical is still ${state:-?} after ${budget}s"
poweroff
