package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// This file builds the Go programs of the image: corral, hello and the test
// payload, and the root integration test binaries, all static for arm64,
// plus a corral for the host that checks the guest's configuration.

// integrationPkgs are the packages whose root integration tests the
// selftest boot runs inside the guest.
var integrationPkgs = []string{"./init", "./container", "./net"}

// goBinaries is where the build put the Go programs.
type goBinaries struct {
	Corral, Hello, Payload string
	Tests                  []string // <pkg>.test, one per integrationPkgs
	HostCorral             string
}

// version is what corral reports: the Makefile's VERSION.
func repoVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// buildGo runs the three go builds in parallel; the go build cache makes
// repeated builds fast.
func buildGo(ctx context.Context, root, out string, log *stepLog) (*goBinaries, error) {
	arm := filepath.Join(out, "arm64")
	host := filepath.Join(out, "host")
	for _, d := range []string{arm, host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ver := repoVersion(root)
	b := &goBinaries{
		Corral:     filepath.Join(arm, "init"),
		Hello:      filepath.Join(arm, "hello"),
		Payload:    filepath.Join(arm, "corral-payload"),
		HostCorral: filepath.Join(host, "corral"),
	}
	for _, p := range integrationPkgs {
		b.Tests = append(b.Tests, filepath.Join(arm, filepath.Base(p)+".test"))
	}
	arm64 := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}
	jobs := []struct {
		what string
		env  []string
		args []string
	}{
		{"corral, hello, corral-payload for arm64", arm64, []string{"build", "-trimpath",
			"-ldflags", "-s -w -X main.version=" + ver, "-o", arm + "/", "./init", "./cmd/hello", "./cmd/corral-payload"}},
		{"root integration tests for arm64 (" + strings.Join(integrationPkgs, " ") + ")", arm64, append([]string{"test", "-c", "-trimpath",
			"-tags", "integration", "-ldflags", "-s -w", "-o", arm + "/"}, integrationPkgs...)},
		{"corral for the host (corral check)", []string{"CGO_ENABLED=0"}, []string{"build", "-trimpath",
			"-ldflags", "-X main.version=" + ver, "-o", b.HostCorral, "./init"}},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", j.args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), j.env...)
			if o, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go %s: %w\n%s", strings.Join(j.args, " "), err, tail(string(o), 30))
				return
			}
			log.step(t, "go: built %s", j.what)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range append([]string{b.Corral, b.Hello, b.Payload, b.HostCorral}, b.Tests...) {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("go build did not produce %s: %w", f, err)
		}
	}
	return b, nil
}
