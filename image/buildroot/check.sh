#!/usr/bin/env bash
# check.sh: checks the Buildroot external tree (image/buildroot/) without
# Buildroot, for `make test`. What it checks:
#
#   1. shellcheck on every shell script of the tree; the scripts Buildroot
#      runs directly are executable
#   2. the kernel fragment, the defconfigs and the board files are well
#      formed and agree with each other (compressor, file systems, device
#      trees, firmware files, data partition label, kernel command line)
#   3. each genimage configuration builds an SD card image from placeholder
#      inputs: the partition table, types, alignment, labels, and the boot
#      partition's files (our config.txt and cmdline.txt)
#   4. the Go code builds for arm64 the way Buildroot builds it: a clean copy
#      of the repository (tracked and untracked, non-ignored files), the
#      package's vendoring step, then `go build` of $(CORRAL_GOMOD)/<target>
#      with -mod=vendor GOPROXY=off GOTOOLCHAIN=local, into static aarch64
#      ELF executables; go.mod's go line is at most the pinned host-go
#   5. the configuration the package installs (install-config.sh over
#      etc-examples/, with each defconfig's data partition) passes
#      `corral check`, and the programs its services run are in the image
#   6. the vendored modules are the ones corral.mk lists with their
#      licenses; LICENSE matches corral.hash
#
# Tools: go and git, plus shellcheck, genimage, sfdisk, mtools, dosfstools
# and e2fsprogs, which it installs with apt-get when it runs as root (CI);
# otherwise a missing tool fails its step. The vendoring step may download
# modules (CORRAL_GOPROXY, default as in corral.mk) unless Go's module cache
# has them. It exits non-zero if any check failed.
set -euo pipefail

# The pinned Buildroot (see README.md) and what it fixes.
BR_TAG=2026.02.3
# package/go/go.mk GO_VERSION of $BR_TAG: GOTOOLCHAIN=local, so go.mod's go
# line must not be newer.
BR_GO=1.26.3
# The RPi kernel of $BR_TAG's raspberrypi{3,4}_64_defconfig; its tarball
# hash is in board/raspberrypi/patches/linux/linux.hash of that release.
BR_RPI_LINUX=21b410140c47ffab5668399f6f143c7d7b935c8b

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
board=$here/board/rpi
mk=$here/package/corral/corral.mk
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok   %s\n' "$*"; }
bad() {
	printf '   FAIL %s\n' "$*"
	failures=$((failures + 1))
}
note() { printf '   note %s\n' "$*"; }

# need TOOL... : make sure the tools exist, installing their Debian packages
# as root. Returns non-zero (after reporting) if one is still missing.
declare -A pkg_of=(
	[shellcheck]=shellcheck [genimage]=genimage [sfdisk]=fdisk
	[blkid]=util-linux [mcopy]=mtools [mdir]=mtools [mtype]=mtools
	[mkdosfs]=dosfstools [mke2fs]=e2fsprogs [e2fsck]=e2fsprogs
	[go]=golang-go [git]=git [od]=coreutils
)
apt_updated=
need() {
	local t missing=() pkgs=()
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "$t" >/dev/null 2>&1 ||
			{ missing+=("$t") && pkgs+=("${pkg_of[$t]:-$t}"); }
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "   installing ${pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		if [ -z "$apt_updated" ]; then
			apt-get update -qq >/dev/null 2>&1 || true
			apt_updated=1
		fi
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 || true
	fi
	missing=()
	for t in "$@"; do
		PATH=$PATH:/sbin:/usr/sbin command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	bad "missing tools: ${missing[*]} (apt-get install ${pkgs[*]}, or run check.sh as root)"
	return 1
}
PATH=$PATH:/sbin:/usr/sbin

# dc_get DEFCONFIG NAME: the value of BR2_NAME (quotes removed), "n" if it
# is "not set", "" if absent.
dc_get() {
	local v
	if grep -qx "# $2 is not set" "$1"; then
		echo n
		return
	fi
	v=$(sed -n "s/^$2=//p" "$1" | tail -n 1)
	v=${v#\"}
	echo "${v%\"}"
}
# ext_path VALUE: $(BR2_EXTERNAL_CORRAL_PATH) replaced by this tree.
ext_path() { echo "${1//\$(BR2_EXTERNAL_CORRAL_PATH)/$here}"; }
# mk_get NAME: a simple assignment of corral.mk (NAME = value or ?= value).
mk_get() { sed -n -E "s/^$1 \??= (.*)$/\1/p" "$mk" | head -n 1; }
# vfat_files CFG: the entries of the boot partition's files list.
vfat_files() { sed -n '/files = {/,/}/p' "$1" | grep -o '"[^"]*"' | tr -d '"'; }

# ---------------------------------------------------------------------------
step "1. shell scripts"
scripts=()
while IFS= read -r -d '' f; do
	case $f in
	*.sh) scripts+=("$f") ;;
	*) head -n 1 "$f" | grep -Eq '^#!.*[/ ](ba)?sh( |$)' && scripts+=("$f") ;;
	esac
done < <(find "$here" -type f -print0 | sort -z)
if need shellcheck; then
	if shellcheck -x "${scripts[@]}"; then
		ok "shellcheck: ${scripts[*]#"$here"/}"
	else
		bad "shellcheck"
	fi
fi
for f in check.sh board/rpi/post-build.sh package/corral/install-config.sh; do
	if [ -x "$here/$f" ]; then ok "$f is executable"; else bad "$f is not executable (chmod +x; git keeps the mode)"; fi
done

# ---------------------------------------------------------------------------
step "2. kernel fragment, defconfigs, board files"
frag=$board/linux.fragment
declare -A kcfg=() kline=()
n=0
frag_ok=1
while IFS= read -r line || [ -n "$line" ]; do
	n=$((n + 1))
	name=
	case $line in
	'') continue ;;
	CONFIG_*)
		if [[ $line =~ ^(CONFIG_[A-Z0-9_]+)=y$ ]]; then name=${BASH_REMATCH[1]} && kcfg[$name]=y; else
			bad "linux.fragment:$n: not CONFIG_X=y: $line" && frag_ok=
		fi
		;;
	'# CONFIG_'*)
		if [[ $line =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]]; then name=${BASH_REMATCH[1]} && kcfg[$name]=n; else
			bad "linux.fragment:$n: not '# CONFIG_X is not set': $line" && frag_ok=
		fi
		;;
	'#'*) continue ;;
	*) bad "linux.fragment:$n: neither an option nor a comment: $line" && frag_ok= ;;
	esac
	if [ -n "$name" ]; then
		[ -z "${kline[$name]:-}" ] || { bad "linux.fragment:$n: $name already set on line ${kline[$name]}" && frag_ok=; }
		kline[$name]=$n
	fi
done <"$frag"
[ -n "$frag_ok" ] && ok "linux.fragment: ${#kcfg[@]} options, CONFIG_X=y / # CONFIG_X is not set"
# What the boot and the services need built in (see the fragment's comments).
missing=()
for o in CGROUPS MEMCG CGROUP_SCHED FAIR_GROUP_SCHED CFS_BANDWIDTH CGROUP_PIDS BLK_CGROUP \
	CGROUP_BPF NAMESPACES UTS_NS IPC_NS PID_NS NET_NS USER_NS UNIX IPV6 VETH BRIDGE \
	NETFILTER NF_CONNTRACK NF_NAT NF_TABLES NF_TABLES_INET NF_TABLES_IPV4 NFT_CT NFT_NAT NFT_MASQ NFT_FIB_IPV4 NF_TABLES_BRIDGE NFT_BRIDGE_META \
	SQUASHFS EXT4_FS OVERLAY_FS TMPFS DEVTMPFS DEVTMPFS_MOUNT WATCHDOG BCM2835_WDT; do
	[ "${kcfg[CONFIG_$o]:-}" = y ] || missing+=("CONFIG_$o")
done
if [ ${#missing[@]} -eq 0 ]; then ok "linux.fragment builds in cgroups, namespaces, veth, bridge, nf_tables, squashfs, ext4, overlayfs, watchdog"; else bad "linux.fragment lacks =y: ${missing[*]}"; fi
if [ "${kcfg[CONFIG_BRIDGE]:-}" = y ] && [ "${kcfg[CONFIG_IPV6]:-}" != y ]; then
	bad "linux.fragment: BRIDGE=y needs IPV6=y (net/bridge/Kconfig: depends on IPV6 || IPV6=n)"
fi

cmdline=$board/cmdline.txt
if [ "$(wc -l <"$cmdline")" -eq 1 ]; then ok "cmdline.txt is one line"; else bad "cmdline.txt must be exactly one line"; fi
read -r -a kargs <"$cmdline"
for want in root=/dev/mmcblk0p2 ro rootwait console=ttyAMA0,115200 cgroup_enable=memory init=/sbin/init; do
	printf '%s\n' "${kargs[@]}" | grep -qx -- "$want" || bad "cmdline.txt lacks $want"
done
printf '%s\n' "${kargs[@]}" | grep -Eqx 'panic=[1-9][0-9]*' || bad "cmdline.txt lacks panic=N (PID 1 exiting must reboot, not hang)"
# The last console= is /dev/console, where corral logs: the serial port.
[ "$(printf '%s\n' "${kargs[@]}" | grep '^console=' | tail -n 1)" = console=ttyAMA0,115200 ] ||
	bad "cmdline.txt: the last console= must be ttyAMA0,115200 (corral's console)"
rootfstype=$(printf '%s\n' "${kargs[@]}" | sed -n 's/^rootfstype=//p')

declare -A sq_kconfig=([GZIP]=SQUASHFS_ZLIB [LZ4]=SQUASHFS_LZ4 [LZO]=SQUASHFS_LZO [XZ]=SQUASHFS_XZ [ZSTD]=SQUASHFS_ZSTD)
defconfigs=("$here"/configs/*_defconfig)
for dc in "${defconfigs[@]}"; do
	d=${dc##*/}
	n=0
	dc_ok=1
	declare -A seen=()
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		name=
		if [[ $line =~ ^(BR2_[A-Za-z0-9_]+)=(y|[0-9]+|0x[0-9a-fA-F]+|\"([^\"\\]|\\.)*\")$ ]]; then
			name=${BASH_REMATCH[1]}
		elif [[ $line =~ ^#\ (BR2_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			name=${BASH_REMATCH[1]}
		elif [[ $line == '# BR2_'* || $line == BR2_* ]]; then
			bad "$d:$n: malformed: $line" && dc_ok=
		elif [[ -n $line && $line != '#'* ]]; then
			bad "$d:$n: neither an option nor a comment: $line" && dc_ok=
		fi
		if [ -n "$name" ]; then
			[ -z "${seen[$name]:-}" ] || { bad "$d:$n: $name already set on line ${seen[$name]}" && dc_ok=; }
			seen[$name]=$n
		fi
	done <"$dc"
	unset seen
	[ -n "$dc_ok" ] && ok "$d: well formed"

	b=$(sed -E 's/^corral_rpi([0-9]+)_64_defconfig$/\1/' <<<"$d")
	[ "$(dc_get "$dc" BR2_INIT_CORRAL)" = y ] || bad "$d: BR2_INIT_CORRAL=y missing"
	[ "$(dc_get "$dc" BR2_PACKAGE_BUSYBOX)" != n ] || bad "$d: busybox is disabled, but the example services run /bin/busybox"
	[ "$(dc_get "$dc" BR2_DOWNLOAD_FORCE_CHECK_HASHES)" = y ] || bad "$d: BR2_DOWNLOAD_FORCE_CHECK_HASHES=y missing"
	dc_get "$dc" BR2_GLOBAL_PATCH_DIR | grep -qw 'board/raspberrypi/patches' ||
		bad "$d: BR2_GLOBAL_PATCH_DIR must keep board/raspberrypi/patches (the kernel tarball's hash)"
	dc_get "$dc" BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION | grep -q "$BR_RPI_LINUX" ||
		bad "$d: the kernel tarball is not Buildroot $BR_TAG's ($BR_RPI_LINUX): its hash would be missing"
	# Every file of this tree the defconfig names exists.
	# shellcheck disable=SC2016 # the literal $(...) written in the defconfig
	extpat='\$(BR2_EXTERNAL_CORRAL_PATH)/[^" ]*'
	while IFS= read -r p; do
		[ -e "$(ext_path "$p")" ] || bad "$d: $p does not exist"
	done < <(grep -o "$extpat" "$dc")
	[ "$(ext_path "$(dc_get "$dc" BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES)")" = "$frag" ] ||
		bad "$d: BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES is not board/rpi/linux.fragment"
	[ "$(ext_path "$(dc_get "$dc" BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE)")" = "$cmdline" ] ||
		bad "$d: BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE is not board/rpi/cmdline.txt"
	cfgtxt=$(ext_path "$(dc_get "$dc" BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE)")
	gcfg=$(ext_path "$(dc_get "$dc" BR2_ROOTFS_POST_IMAGE_SCRIPT_ARGS)")
	gcfg=${gcfg#-c }
	if [ ! -f "$gcfg" ] || [ ! -f "$cfgtxt" ]; then
		bad "$d: genimage configuration or config.txt missing"
		continue
	fi
	mapfile -t boot_files < <(vfat_files "$gcfg")
	has_boot_file() { printf '%s\n' "${boot_files[@]}" | grep -qx -- "$1"; }
	# Root file system type: kernel option, cmdline.txt, genimage.
	if [ "$(dc_get "$dc" BR2_TARGET_ROOTFS_SQUASHFS)" = y ]; then
		comp=$(grep -oE '^BR2_TARGET_ROOTFS_SQUASHFS4_[A-Z0-9]+=y' "$dc" | sed -E 's/^BR2_TARGET_ROOTFS_SQUASHFS4_([A-Z0-9]+)=y/\1/')
		comp=${comp:-GZIP}
		[ "${kcfg[CONFIG_${sq_kconfig[$comp]:-SQUASHFS_$comp}]:-}" = y ] ||
			bad "$d: squashfs compressor $comp needs CONFIG_${sq_kconfig[$comp]:-?}=y in linux.fragment"
		[ "$rootfstype" = squashfs ] || bad "$d: squashfs root but cmdline.txt says rootfstype=$rootfstype"
		grep -q 'image = "rootfs.squashfs"' "$gcfg" || bad "$d: ${gcfg##*/} does not put rootfs.squashfs in a partition"
	else
		bad "$d: the root file system is not squashfs (read-only root)"
	fi
	# Device trees, firmware, config.txt.
	for dts in $(dc_get "$dc" BR2_LINUX_KERNEL_INTREE_DTS_NAME); do
		has_boot_file "${dts##*/}.dtb" || bad "$d: ${dts##*/}.dtb is built but not in ${gcfg##*/}"
	done
	if [ "$(dc_get "$dc" BR2_PACKAGE_RPI_FIRMWARE_VARIANT_PI4)" = y ]; then fw=(start4.elf fixup4.dat); else fw=(start.elf fixup.dat); fi
	[ "$(dc_get "$dc" BR2_PACKAGE_RPI_FIRMWARE_BOOTCODE_BIN)" = y ] && fw+=(bootcode.bin)
	for f in "${fw[@]}" config.txt cmdline.txt overlays; do
		has_boot_file "rpi-firmware/$f" || bad "$d: rpi-firmware/$f is not in ${gcfg##*/}"
	done
	if ! grep -qx "start_file=${fw[0]}" "$cfgtxt" || ! grep -qx "fixup_file=${fw[1]}" "$cfgtxt"; then
		bad "$d: ${cfgtxt##*/} does not name ${fw[0]} and ${fw[1]}"
	fi
	for want in arm_64bit=1 kernel=Image dtparam=watchdog=on; do
		grep -qx "$want" "$cfgtxt" || bad "$d: ${cfgtxt##*/} lacks $want"
	done
	has_boot_file Image || bad "$d: the kernel (Image, config.txt kernel=) is not in ${gcfg##*/}"
	# The data partition corral mounts is the one genimage labels.
	data=$(dc_get "$dc" BR2_PACKAGE_CORRAL_DATA_DEVICE)
	if [[ $data == LABEL=* ]]; then
		grep -q "label = \"${data#LABEL=}\"" "$gcfg" || bad "$d: no partition labelled ${data#LABEL=} in ${gcfg##*/}"
	fi
	fstype=$(dc_get "$dc" BR2_PACKAGE_CORRAL_DATA_FSTYPE)
	[ "$fstype" != ext4 ] || [ "${kcfg[CONFIG_EXT4_FS]:-}" = y ] || bad "$d: ext4 data partition without CONFIG_EXT4_FS=y"
	printf '%s\n' "$gcfg" >"$tmp/genimage-of-$b"
	ok "$d: init, busybox, hashes, patch dir, kernel, fragment, rootfs, DTBs, firmware, config.txt, data label agree"
done

# ---------------------------------------------------------------------------
step "3. genimage"
if need genimage sfdisk blkid mcopy mdir mtype mkdosfs mke2fs e2fsck; then
	for cfg in "$board"/genimage-*.cfg; do
		g=${cfg##*/}
		w=$tmp/genimage/${g%.cfg}
		mkdir -p "$w"/{input,root,tmp,out}
		while IFS= read -r f; do
			mkdir -p "$w/input/$(dirname "$f")"
			case $f in
			*/overlays) mkdir -p "$w/input/$f" && echo placeholder >"$w/input/$f/miniuart-bt.dtbo" ;;
			*) printf 'placeholder %s\n' "$f" >"$w/input/$f" ;;
			esac
		done < <(vfat_files "$cfg")
		# What rpi-firmware installs: our config.txt and cmdline.txt.
		b=$(sed -E 's/^genimage-rpi([0-9]+)-64\.cfg$/\1/' <<<"$g")
		[ -f "$w/input/rpi-firmware/config.txt" ] && cp "$board/config_${b}_64bit.txt" "$w/input/rpi-firmware/config.txt"
		[ -f "$w/input/rpi-firmware/cmdline.txt" ] && cp "$cmdline" "$w/input/rpi-firmware/cmdline.txt"
		head -c 3M /dev/urandom >"$w/input/rootfs.squashfs"
		if ! genimage --rootpath "$w/root" --tmppath "$w/tmp" --inputpath "$w/input" \
			--outputpath "$w/out" --config "$cfg" >"$w/log" 2>&1; then
			bad "$g: genimage failed:"
			sed 's/^/        /' "$w/log" | tail -n 20
			continue
		fi
		img=$w/out/sdcard.img
		mapfile -t parts < <(sfdisk -d "$img" | grep -E '^[^ ]+ : start=')
		if [ ${#parts[@]} -ne 3 ]; then
			bad "$g: ${#parts[@]} partitions, not 3 (boot, rootfs, data)"
			continue
		fi
		sfdisk -d "$img" | grep -q '^label: dos' || bad "$g: not an MBR (dos) partition table"
		i=0
		for p in "${parts[@]}"; do
			i=$((i + 1))
			s=$(sed -E 's/.*start= *([0-9]+).*/\1/' <<<"$p")
			z=$(sed -E 's/.*size= *([0-9]+).*/\1/' <<<"$p")
			t=$(sed -E 's/.*type=([0-9a-fA-F]+).*/\1/' <<<"$p")
			[ $((s % 2048)) -eq 0 ] || bad "$g: partition $i starts at sector $s, not 1 MiB aligned"
			dd if="$img" of="$w/p$i" bs=1M iflag=skip_bytes,count_bytes skip=$((s * 512)) count=$((z * 512)) status=none
			case $i in
			1)
				if [ "$t" != c ] || [[ $p != *bootable* ]]; then bad "$g: p1 is not a bootable FAT32 (0x0C) partition: $p"; fi
				blkid -p -o export "$w/p1" | grep -qx TYPE=vfat || bad "$g: p1 is not FAT"
				export MTOOLS_SKIP_CHECK=1
				names=$(mdir -b -i "$w/p1" :: | sed -e 's|^::/||' -e 's|/$||' | sort)
				while IFS= read -r f; do
					grep -qx -- "${f##*/}" <<<"$names" || bad "$g: ${f##*/} is not on the boot partition"
				done < <(vfat_files "$cfg")
				if [ "$(mtype -i "$w/p1" ::cmdline.txt)" = "$(cat "$cmdline")" ] &&
					[ "$(mtype -i "$w/p1" ::config.txt)" = "$(cat "$board/config_${b}_64bit.txt")" ]; then
					ok "$g: p1 boot, FAT32, bootable, $((z / 2048)) MiB: firmware, DTBs, overlays/, Image, our config.txt and cmdline.txt"
				else
					bad "$g: config.txt or cmdline.txt on the boot partition differ from board/rpi"
				fi
				;;
			2)
				[ "$t" = 83 ] || bad "$g: p2 has type $t, not 83"
				if cmp -s -n "$(stat -c %s "$w/input/rootfs.squashfs")" "$w/p2" "$w/input/rootfs.squashfs"; then
					ok "$g: p2 rootfs (0x83) holds rootfs.squashfs (root=/dev/mmcblk0p2)"
				else
					bad "$g: p2 does not hold rootfs.squashfs"
				fi
				;;
			3)
				[ "$t" = 83 ] || bad "$g: p3 has type $t, not 83"
				probe=$(blkid -p -o export "$w/p3")
				if grep -qx TYPE=ext4 <<<"$probe" && grep -qx LABEL=data <<<"$probe" && e2fsck -fn "$w/p3" >/dev/null 2>&1; then
					ok "$g: p3 data, ext4 labelled data, $((z / 2048)) MiB, clean"
				else
					bad "$g: p3 is not a clean ext4 labelled data: $(tr '\n' ' ' <<<"$probe")"
				fi
				;;
			esac
		done
	done
fi

# ---------------------------------------------------------------------------
step "4. arm64 build, as Buildroot does it"
go_ok=
gomod=$(mk_get CORRAL_GOMOD)
src=$tmp/src
if need go git; then
	mkdir -p "$src"
	# A clean copy: what a clone of this working tree would hold, minus what
	# corral.mk does not rsync (the Makefile's build/).
	if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$repo" && git ls-files -z -co --exclude-standard) |
			while IFS= read -r -d '' f; do
				case $f in build/*) continue ;; esac
				[ -e "$repo/$f" ] || [ -L "$repo/$f" ] && printf '%s\0' "$f"
			done | (cd "$repo" && tar --null -T - -cf -) | tar -xf - -C "$src"
	else
		(cd "$repo" && tar --exclude=./build --exclude=./.git -cf - .) | tar -xf - -C "$src"
	fi
	ok "clean copy: $(find "$src" -type f | wc -l) files"

	modline=$(awk '$1 == "module" { print $2 }' "$src/go.mod")
	if [ "$modline" = "$gomod" ]; then
		ok "CORRAL_GOMOD = go.mod's module ($gomod)"
	else
		bad "CORRAL_GOMOD ($gomod) is not go.mod's module ($modline)"
	fi
	goline=$(awk '$1 == "go" { print $2 }' "$src/go.mod")
	if [ "$(printf '%s\n%s\n' "$goline" "$BR_GO" | sort -V | tail -n 1)" = "$BR_GO" ]; then
		ok "go.mod: go $goline <= Buildroot $BR_TAG's host-go $BR_GO (GOTOOLCHAIN=local)"
	else
		bad "go.mod: go $goline is newer than Buildroot $BR_TAG's host-go $BR_GO: the image build fails"
	fi

	# The vendoring step of corral.mk (CORRAL_GO_VENDOR).
	proxy=${CORRAL_GOPROXY:-$(mk_get CORRAL_GOPROXY)}
	vendored=
	if [ -f "$src/vendor/modules.txt" ]; then
		note "the checkout carries vendor/: used as is"
		vendored=1
	elif (cd "$src" && env GO111MODULE=on GOFLAGS=-mod=vendor GOPROXY="$proxy" GOTOOLCHAIN=local \
		go mod vendor -modcacherw) >"$tmp/vendor.log" 2>&1; then
		ok "go mod vendor (GOPROXY=$proxy): $(grep -c '^# ' "$src/vendor/modules.txt") modules"
		vendored=1
	else
		bad "go mod vendor failed:"
		sed 's/^/        /' "$tmp/vendor.log" | tail -n 20
	fi

	if [ -n "$vendored" ]; then
		# CORRAL_BUILD_TARGETS, with the examples' cmd/hello.
		read -r -a targets <<<"$(sed -n -E 's/^CORRAL_BUILD_TARGETS \+?= (.*)$/\1/p' "$mk" | tr '\n' ' ')"
		mkdir -p "$tmp/arm64"
		go_ok=1
		for t in "${targets[@]}"; do
			out=$tmp/arm64/${t##*/}
			# pkg-golang.mk's build command, with HOST_GO_TARGET_ENV's Go
			# settings and CORRAL_GO_ENV; the local go stands in for host-go.
			if (cd "$src" && env GO111MODULE=on GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local \
				GOOS=linux GOARCH=arm64 CGO_ENABLED=0 \
				go build -ldflags "-s -w -X main.version=check" -modcacherw -tags "" -trimpath \
				-buildvcs=false -o "$out" "$gomod/$t") >"$tmp/build.log" 2>&1; then
				:
			else
				bad "go build $gomod/$t for arm64:"
				sed 's/^/        /' "$tmp/build.log" | tail -n 20
				go_ok=
				continue
			fi
			# The ELF header: magic, 64-bit, little endian, executable,
			# AArch64; and no PT_INTERP/PT_DYNAMIC program header (static).
			magic=$(od -An -tx1 -N6 "$out" | tr -d ' \n')
			etype=$(od -An -tu2 -j16 -N2 "$out" | tr -d ' ')
			machine=$(od -An -tu2 -j18 -N2 "$out" | tr -d ' ')
			phoff=$(od -An -tu8 -j32 -N8 "$out" | tr -d ' ')
			phentsize=$(od -An -tu2 -j54 -N2 "$out" | tr -d ' ')
			phnum=$(od -An -tu2 -j56 -N2 "$out" | tr -d ' ')
			dynamic=
			for ((i = 0; i < phnum; i++)); do
				ptype=$(od -An -tu4 -j$((phoff + i * phentsize)) -N4 "$out" | tr -d ' ')
				[ "$ptype" = 2 ] || [ "$ptype" = 3 ] && dynamic=1
			done
			if [ "$magic" = 7f454c460201 ] && [ "$etype" = 2 ] && [ "$machine" = 183 ] && [ -z "$dynamic" ]; then
				ok "$gomod/$t: static aarch64 ELF executable, $(($(stat -c %s "$out") / 1024)) KiB"
			else
				bad "$gomod/$t: not a static aarch64 ELF executable (ident $magic, type $etype, machine $machine, dynamic ${dynamic:-no})"
				go_ok=
			fi
		done
	fi
fi

# ---------------------------------------------------------------------------
step "5. the installed configuration"
if [ -n "$go_ok" ]; then
	marker=check-$$
	if (cd "$src" && env GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
		go build -trimpath -buildvcs=false -ldflags "-X main.version=$marker" -o "$tmp/corral" "$gomod/init") >"$tmp/host.log" 2>&1; then
		if [ "$("$tmp/corral" version)" = "corral $marker" ]; then
			ok "-X main.version sets what \`corral version\` prints"
		else
			bad "-X main.version=... does not reach \`corral version\`: $("$tmp/corral" version)"
		fi
		for dc in "${defconfigs[@]}"; do
			d=${dc##*/}
			data=$(dc_get "$dc" BR2_PACKAGE_CORRAL_DATA_DEVICE)
			fstype=$(dc_get "$dc" BR2_PACKAGE_CORRAL_DATA_FSTYPE)
			var=$(dc_get "$dc" BR2_PACKAGE_CORRAL_VAR_ON_DATA)
			# Config.in defaults: ext4, y.
			[ "$var" = n ] && var=false || var=true
			etc=$tmp/etc-$d/etc/corral
			if ! "$here/package/corral/install-config.sh" "$src/etc-examples" "$etc" "$data" "${fstype:-ext4}" "$var" >"$tmp/install.log" 2>&1; then
				bad "$d: install-config.sh: $(cat "$tmp/install.log")"
				continue
			fi
			want=$(dc_get "$dc" BR2_TARGET_GENERIC_HOSTNAME)
			got=$(sed -n -E 's/^hostname *= *"([^"]*)".*/\1/p' "$etc/corral.toml")
			[ "$want" = "$got" ] || bad "$d: BR2_TARGET_GENERIC_HOSTNAME \"$want\" (/etc/hostname, /etc/hosts) is not corral.toml's hostname \"$got\""
			if "$tmp/corral" check "$etc" >"$tmp/corral-check.log" 2>&1; then
				ok "$d: corral check /etc/corral ($(tail -n 1 "$tmp/corral-check.log"); [storage] data = \"$data\")"
			else
				bad "$d: corral check of the installed /etc/corral:"
				sed 's/^/        /' "$tmp/corral-check.log"
			fi
			# The programs the services run are in the image.
			for f in "$etc"/services/*.toml; do
				# exec's first absolute path: exec = [ may end its line.
				prog=$(sed -n '/^exec *=/,+3p' "$f" | grep -oE '/[^]"'"'"' ,]+' | head -n 1) || true
				case $prog in
				/usr/libexec/corral/hello) ;; # corral.mk, cmd/hello
				/bin/busybox) ;;              # busybox
				*) bad "$d: ${f##*/} runs $prog, which the image does not install" ;;
				esac
			done
		done
	else
		bad "host build of corral:"
		sed 's/^/        /' "$tmp/host.log" | tail -n 20
	fi
else
	bad "skipped: the Go build failed"
fi

# ---------------------------------------------------------------------------
step "6. licenses"
if [ -f "$src/vendor/modules.txt" ]; then
	listed=$(sed -n '/^# Vendored modules/,/^# Their license files/p' "$mk" | awk '$1 == "#" && $2 ~ /\./ { print $2 }' | sort)
	vendored=$(awk '$1 == "#" && $2 ~ /\./ { print $2 }' "$src/vendor/modules.txt" | sort)
	if [ "$listed" = "$vendored" ]; then
		ok "corral.mk lists the licenses of all $(wc -l <<<"$vendored") vendored modules"
	else
		bad "vendored modules differ from corral.mk's license list (update it and CORRAL_LICENSE):"
		diff <(echo "$listed") <(echo "$vendored") | sed -n 's/^[<>]/        &/p'
	fi
fi
if [ -f "$repo/LICENSE" ]; then
	want=$(awk '$1 == "sha256" && $3 == "LICENSE" { print $2 }' "$here/package/corral/corral.hash")
	got=$(sha256sum "$repo/LICENSE" | cut -d ' ' -f 1)
	if [ "$want" = "$got" ]; then
		ok "LICENSE matches corral.hash"
	else
		bad "LICENSE (sha256 $got) does not match corral.hash ($want): make legal-info would fail"
	fi
else
	note "no LICENSE at the top of the repository yet: make legal-info would fail (corral.hash expects the Apache-2.0 text)"
fi
grep -q "$BR_TAG" "$here/README.md" || bad "README.md does not name the pinned Buildroot $BR_TAG"

printf '\ncheck.sh: %d failure(s), %ds\n' "$failures" "$(($(date +%s) - start))"
[ "$failures" -eq 0 ]
