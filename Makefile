# corral: a PID-1 supervisor for appliance images.
#
#   make demo       run the example appliance in fresh namespaces (root)
#   make test       unit tests, config checks, root integration tests
#   make build      static binaries into build/bin
#   make lint       gofmt, go vet
#   make qemu-test  corral as PID 1 of an emulated Raspberry Pi 3 and arm64 virt
#   make qemu       boot the test image on this terminal (ctrl-a x quits)
#   make bench      corral next to crun, runc, s6, runit: bench/results.md

GO      ?= go
BUILD   := build
BIN     := $(BUILD)/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOFLAGS_STATIC := CGO_ENABLED=0
LDFLAGS := -s -w -X main.version=$(VERSION)
# Packages with root integration tests (-tags integration).
ROOT_TEST_PKGS := ./init ./container ./net ./internal/testutil

QEMUFLAGS ?=

.PHONY: bench all build demo test test-unit test-root test-buildroot check-examples lint clean qemu qemu-test qemu-image

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/corral ./init
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/corral-payload ./cmd/corral-payload
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/hello ./cmd/hello

demo: build
	./scripts/demo.sh

test: lint test-unit check-examples test-buildroot test-root

test-unit:
	$(GO) test -count=1 ./...

check-examples: build
	$(BIN)/corral check etc-examples

# The Buildroot external tree, checked without Buildroot: shellcheck,
# genimage layouts, the installed config, an arm64 build the way Buildroot
# builds it (vendored, GOPROXY=off, GOTOOLCHAIN=local).
test-buildroot:
	./image/buildroot/check.sh

# Root integration tests: each package's test binary is built once with
# go test -c and run as root (they skip, loudly, without root).
test-root: build
	@if [ "$$(id -u)" != 0 ]; then echo "*** not root: the integration tests need root; run: sudo make test-root" >&2; exit 1; fi
	@mkdir -p $(BUILD)/tests
	@set -e; for p in $(ROOT_TEST_PKGS); do \
		name=$$(echo $$p | tr -c 'a-z0-9\n' _); \
		$(GO) test -c -tags integration -o $(BUILD)/tests/$$name.test $$p; \
		echo "== integration: $$p"; \
		(cd $$p && CORRAL_BIN=$(CURDIR)/$(BIN)/corral CORRAL_PAYLOAD=$(CURDIR)/$(BIN)/corral-payload \
			$(CURDIR)/$(BUILD)/tests/$$name.test -test.timeout 10m -test.count=1 $(TESTFLAGS)); \
	done

# The ARM boot test (image/qemu): Debian's arm64 kernel and busybox, our
# static arm64 binaries, booted under qemu on -M virt and -M raspi3b.
qemu-image:
	$(GO) run ./image/qemu build

qemu-test:
	$(GO) run ./image/qemu test $(QEMUFLAGS)

qemu:
	$(GO) run ./image/qemu run $(QEMUFLAGS)

# Benchmarks (root): one table of medians and same-run ratios, written to
# bench/results.md. BENCH_QUICK=1 for fewer rounds, BENCH_ONLY=restart,idle
# for some. A private mount namespace, because crun refuses this host's
# hybrid cgroup layout unless cgroup2's mount is out of its sight.
bench: build
	@mkdir -p $(BUILD)/tests
	$(GO) test -c -tags integration -o $(BUILD)/tests/net_bench.test ./net
	$(GO) test -c -tags bench -o $(BUILD)/tests/bench.test ./bench
	cd bench && unshare --mount --propagation private env CORRAL_BIN=$(CURDIR)/$(BIN)/corral \
		CORRAL_PAYLOAD=$(CURDIR)/$(BIN)/corral-payload BENCH_NET_TEST=$(CURDIR)/$(BUILD)/tests/net_bench.test \
		BENCH_OUT=$(CURDIR)/bench/results.md $(CURDIR)/$(BUILD)/tests/bench.test -test.run TestBench -test.v -test.timeout 20m

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	@if command -v shellcheck >/dev/null; then \
		shellcheck scripts/*.sh .ci/run && shellcheck -s sh image/qemu/guest/selftest image/qemu/guest/tmpfs-root image/qemu/guest/qemu-check.sh image/qemu/guest/watchdog-check.sh image/qemu/guest/bootloop-check.sh; \
	else echo "*** shellcheck not installed: shell scripts not checked" >&2; fi

clean:
	rm -rf $(BUILD)
