package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	builtDir  string
	buildErr  error
)

// Binaries returns paths to a static corral and corral-payload. The
// Makefile builds them once and passes CORRAL_BIN and CORRAL_PAYLOAD;
// without those they are built here, into a directory that lives as long
// as the test binary (containers see it: their root is the host's, read-only).
func Binaries(t testing.TB) (corral, payload string) {
	t.Helper()
	if c, p := os.Getenv("CORRAL_BIN"), os.Getenv("CORRAL_PAYLOAD"); c != "" && p != "" {
		return c, p
	}
	buildOnce.Do(func() {
		builtDir, buildErr = os.MkdirTemp("", "corral-test-bin-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"corral", "github.com/corral-init/corral/init"},
			{"corral-payload", "github.com/corral-init/corral/cmd/corral-payload"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(builtDir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg: b.pkg, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build test binaries: %v", buildErr)
	}
	return filepath.Join(builtDir, "corral"), filepath.Join(builtDir, "corral-payload")
}

// Main runs a package's tests (call it from TestMain) and then removes the
// binaries Binaries built, so that a run without CORRAL_BIN leaves no
// directory behind in /tmp.
func Main(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }
