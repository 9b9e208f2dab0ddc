//go:build integration

package container_test

import (
	"testing"

	"github.com/corral-init/corral/container"
)

// BenchmarkStartTrue: one container start to exec, and its exit, for
// /bin/true with the standard namespaces and memory+pids limits (network
// none: no veth here; the net package measures that part).
func BenchmarkStartTrue(b *testing.B) {
	e := newEnv(b)
	spec := container.Spec{Name: "bench", Args: []string{"/bin/true"}, Limits: container.Limits{MemoryMax: 64 << 20, PidsMax: 64}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		exited := make(chan container.Exit, 1)
		p, err := e.rt.Start(container.StartOptions{Spec: spec, OnExit: func(x container.Exit) { exited <- x }})
		if err != nil {
			b.Fatal(err)
		}
		<-exited
		p.Cleanup()
	}
}
