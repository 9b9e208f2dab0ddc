#!/bin/sh
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT) of the corral
# Raspberry Pi images. It runs on every `make`, after the packages, the
# target-finalize hooks and the rootfs overlays, before the root file
# system image is made, with the target directory as $1.
set -eu

target=${1:?usage: post-build.sh TARGET_DIR}

die() {
	echo "post-build.sh: $*" >&2
	exit 1
}

# Mount points: the root file system is read-only (squashfs), so they
# must exist in the image. corral mounts the data partition on /data and,
# with [storage] var = true, binds /data/var over /var. The init-less
# skeleton (BR2_INIT_CORRAL selects skeleton-init-none) has no /var.
mkdir -p "$target/data" "$target/var"

# /sbin/init must be corral's: busybox (kept for the example services)
# installs its own, and corral.mk replaces it from a target-finalize hook.
# Fail here rather than boot busybox init with no inittab.
init=$(readlink "$target/sbin/init" || true)
[ "$init" = /usr/bin/corral ] ||
	die "/sbin/init points to '$init', not /usr/bin/corral (is BR2_INIT_CORRAL set?)"
[ -x "$target/usr/bin/corral" ] || die "/usr/bin/corral is missing"

# Whatever a package installed in /var is hidden once /data/var is bound
# over it.
if [ -n "$(ls -A "$target/var")" ]; then
	echo "post-build.sh: warning: /var is not empty in the image; with [storage] var = true, /data/var hides:" >&2
	ls -A "$target/var" >&2
fi
