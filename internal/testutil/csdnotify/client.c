/* A service written against libsystemd's sd_notify(3): it runs unchanged
 * under corral. Built by the integration tests when libsystemd-dev is
 * installed. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static void term(int sig) { (void)sig; sd_notify(0, "STOPPING=1"); _exit(0); }

int main(void) {
	signal(SIGTERM, term); /* PID 1 of its namespace: no handler, no SIGTERM */
	uint64_t usec = 0;
	int wd = sd_watchdog_enabled(0, &usec);
	printf("c-client: pid %d, watchdog %d (%llu us)\n", (int)getpid(), wd, (unsigned long long)usec);
	fflush(stdout);
	int r = sd_notify(0, "READY=1\nSTATUS=c client ready");
	printf("c-client: sd_notify returned %d\n", r);
	fflush(stdout);
	for (int i = 0; ; i++) {
		usleep(100000);
		if (wd > 0)
			sd_notify(0, "WATCHDOG=1");
		if (i == 5) {
			r = sd_notify_barrier(0, 5000000);
			printf("c-client: sd_notify_barrier returned %d\n", r);
			fflush(stdout);
		}
	}
}
