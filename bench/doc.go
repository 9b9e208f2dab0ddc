// Package bench measures corral next to the tools it replaces, in one run
// on one machine: crun and runc (container start, scale), s6 and runit
// (memory footprint, restart latency). Only same-run ratios mean anything
// on a shared machine, so every comparison is interleaved and reported as
// medians and ratios.
//
// Run it with `make bench` (root; it installs crun, runc, s6, runit and
// busybox-static when missing). It prints one table and writes
// bench/results.md with the machine's description. The benchmarks live in
// bench_test.go behind the "bench" build tag: they are measurements, not
// tests, and never fail on a number.
package bench
