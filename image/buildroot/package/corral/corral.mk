################################################################################
#
# corral
#
################################################################################

# A local package: the sources are this repository (two levels above the
# external tree), rsynced into the build directory on every
# corral-rebuild. CORRAL_VERSION only names the build directory and the
# legal-info entry; the binary reports `git describe --always --dirty` of
# the checkout, as the top-level Makefile does (.git itself is not
# rsynced), and CORRAL_VERSION only when that fails.
CORRAL_VERSION = 0.1.0
CORRAL_SITE = $(BR2_EXTERNAL_CORRAL_PATH)/../..
CORRAL_SITE_METHOD = local
# The Makefile's build/ (host binaries, test binaries) is of no use here.
CORRAL_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/build/

# Vendored modules (vendor/modules.txt; check.sh compares the two lists):
#   github.com/BurntSushi/toml          MIT
#   github.com/coreos/go-systemd/v22    Apache-2.0
#   github.com/google/go-cmp            BSD-3-Clause (tests only, not linked)
#   github.com/google/nftables          Apache-2.0
#   github.com/jsimonetti/rtnetlink/v2  MIT
#   github.com/mattn/go-colorable       MIT
#   github.com/mattn/go-isatty          MIT
#   github.com/mdlayher/netlink         MIT
#   github.com/mdlayher/socket          MIT
#   github.com/munnerz/goautoneg        BSD-3-Clause (tests only, not linked)
#   github.com/prometheus/client_model  Apache-2.0 (tests only, not linked)
#   github.com/prometheus/common        Apache-2.0 (tests only, not linked)
#   github.com/rs/zerolog               MIT
#   golang.org/x/net                    BSD-3-Clause
#   golang.org/x/sync                   BSD-3-Clause
#   golang.org/x/sys                    BSD-3-Clause
#   google.golang.org/protobuf          BSD-3-Clause (tests only, not linked)
# Their license files are not in LICENSE_FILES: vendor/ only exists in the
# build directory after the build step, and legal-info does not build.
CORRAL_LICENSE = \
	Apache-2.0 (corral, go-systemd, nftables), \
	BSD-3-Clause (golang.org/x/net, golang.org/x/sync, golang.org/x/sys), \
	MIT (toml, rtnetlink, netlink, socket, zerolog, go-colorable, go-isatty)
CORRAL_LICENSE_FILES = LICENSE

# Must be set: the default is derived from CORRAL_SITE as
# domain/vendor/software, which is garbage for a local path, and every
# build target is built as $(CORRAL_GOMOD)/<target>.
CORRAL_GOMOD = github.com/corral-init/corral
# init/ is the corral binary (package main); it is built as bin/init and
# installed as /usr/bin/corral.
CORRAL_BUILD_TARGETS = init
# PID 1 must not depend on the dynamic loader or on libc: no cgo, so the
# binary is static even with Buildroot's glibc toolchain (HOST_GO_TARGET_ENV
# sets CGO_ENABLED=1 whenever the toolchain can link cgo; CORRAL_GO_ENV
# comes after it).
CORRAL_GO_ENV = CGO_ENABLED=0
CORRAL_LDFLAGS = -s -w \
	-X main.version=$$(git -C $(CORRAL_SITE) describe --always --dirty 2>/dev/null || echo $(CORRAL_VERSION))

# Go module dependencies. go.mod has require lines, and Buildroot only runs
# `go mod vendor` as a download post-process (support/download/
# go-post-process, CORRAL_DOWNLOAD_POST_PROCESS = go), which the local
# site method never runs: it only rsyncs. The build then runs with
# GOFLAGS=-mod=vendor GOPROXY=off (HOST_GO_COMMON_ENV) and fails with
# "inconsistent vendoring". So vendor here, with the host-go and the same
# environment as go-post-process but a proxy:
# - PRE_BUILD, not POST_RSYNC (host-go is not built yet at rsync time) nor
#   PRE_CONFIGURE (corral-rebuild re-runs rsync and build, not configure,
#   and go.mod may have changed);
# - go.sum pins and verifies every module; GOTOOLCHAIN=local (from
#   HOST_GO_COMMON_ENV) keeps the pinned host-go;
# - the module cache lives in DL_DIR, so the other board's build and every
#   rebuild reuse it and do not download again;
# - a checkout that carries vendor/ itself (`go mod vendor` run in it) is
#   used exactly as it is, and the build never goes to the network.
# CORRAL_GOPROXY can be set on the make command line (e.g. a private proxy).
CORRAL_GOPROXY ?= https://proxy.golang.org,direct
define CORRAL_GO_VENDOR
	if [ -f $(CORRAL_SITE)/vendor/modules.txt ]; then \
		echo "corral: using the vendor/ directory of $(CORRAL_SITE)"; \
		rsync -a --delete $(CORRAL_SITE)/vendor/ $(@D)/vendor/; \
	else \
		cd $(@D) && $(HOST_GO_COMMON_ENV) \
			GOPROXY="$(CORRAL_GOPROXY)" \
			GOMODCACHE=$(CORRAL_DL_DIR)/go-mod \
			$(GO_BIN) mod vendor -modcacherw; \
	fi
endef
CORRAL_PRE_BUILD_HOOKS += CORRAL_GO_VENDOR

ifeq ($(BR2_PACKAGE_CORRAL_EXAMPLES),y)
CORRAL_BUILD_TARGETS += cmd/hello
CORRAL_DATA_DEVICE = $(call qstrip,$(BR2_PACKAGE_CORRAL_DATA_DEVICE))
CORRAL_DATA_FSTYPE = $(call qstrip,$(BR2_PACKAGE_CORRAL_DATA_FSTYPE))
# The example configuration comes from the source tree (etc-examples/),
# never from a copy in the external tree.
define CORRAL_INSTALL_EXAMPLES
	$(INSTALL) -D -m 0755 $(@D)/bin/hello \
		$(TARGET_DIR)/usr/libexec/corral/hello
	$(CORRAL_PKGDIR)/install-config.sh $(@D)/etc-examples \
		$(TARGET_DIR)/etc/corral \
		'$(CORRAL_DATA_DEVICE)' '$(CORRAL_DATA_FSTYPE)' \
		$(if $(BR2_PACKAGE_CORRAL_VAR_ON_DATA),true,false)
endef
# The web example runs `busybox httpd`, which Buildroot's default busybox
# configuration (package/busybox/busybox.config) leaves out.
define CORRAL_BUSYBOX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_HTTPD)
endef
endif

define CORRAL_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/bin/init $(TARGET_DIR)/usr/bin/corral
	$(CORRAL_INSTALL_EXAMPLES)
endef

ifeq ($(BR2_INIT_CORRAL),y)
# Busybox (kept for the example services) installs /sbin/init -> busybox,
# with install-noclobber, and the per-package target directories are
# merged in alphabetical order, so an install-time link would lose or win
# by accident. Target-finalize hooks run after every package is in
# $(TARGET_DIR) (and before the overlays and post-build scripts). The link
# is absolute so that it stays right if /sbin is a link to usr/sbin
# (BR2_ROOTFS_MERGED_USR).
define CORRAL_INSTALL_SBIN_INIT
	ln -sf /usr/bin/corral $(TARGET_DIR)/sbin/init
endef
CORRAL_TARGET_FINALIZE_HOOKS += CORRAL_INSTALL_SBIN_INIT
endif

# Kernel options corral cannot run without. KCONFIG_ENABLE_OPT leaves an
# option that is already =m alone, so only bool options are listed here
# (they can only become =y); the tristate ones a board needs built in
# (veth, bridge, squashfs, ...) belong in its kernel config fragment
# (board/rpi/linux.fragment).
define CORRAL_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_CGROUPS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NAMESPACES)
	$(call KCONFIG_ENABLE_OPT,CONFIG_UTS_NS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_IPC_NS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_PID_NS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_NET_NS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_DEVTMPFS)
endef

# Building with O= inside this checkout would rsync the output directory
# into its own build directory on every rebuild (and legal-info would
# archive it): refuse it early.
ifeq ($(BR2_PACKAGE_CORRAL),y)
ifneq ($(filter $(realpath $(CORRAL_SITE))/%,$(BASE_DIR)/),)
$(error corral: the output directory $(BASE_DIR) is inside the corral checkout $(realpath $(CORRAL_SITE)); use O= outside of it)
endif
endif

$(eval $(golang-package))
