// Package testutil holds helpers shared by the project's tests: skipping
// unless root, fresh network namespaces, and friends.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root (effective uid 0):
// namespaces, links and cgroups need it.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: needs root (euid %d); build with go test -c and run the binary as root", os.Geteuid())
	}
}
