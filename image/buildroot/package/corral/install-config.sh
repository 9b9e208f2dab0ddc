#!/bin/sh
# install-config.sh SRC DEST [DATA [FSTYPE [VAR]]]
#
# Installs the example configuration SRC (the repository's etc-examples/)
# as DEST (the image's /etc/corral): corral.toml and services/*.toml.
# When DATA is not empty, the image's [storage] table is appended to
# corral.toml:
#
#   data = "DATA"           device mounted at /data at boot
#   data_fstype = "FSTYPE"  default ext4
#   var = VAR               true or false (default): bind /data/var over /var
#
# corral.mk runs it at install time, and check.sh runs it to produce the
# configuration it gives to `corral check`, so the checked configuration
# is the installed one.
set -eu

if [ $# -lt 2 ] || [ $# -gt 5 ]; then
	echo "usage: $0 SRC DEST [DATA [FSTYPE [VAR]]]" >&2
	exit 2
fi
src=$1
dest=$2
data=${3:-}
fstype=${4:-ext4}
var=${5:-false}

die() {
	echo "install-config.sh: $*" >&2
	exit 1
}

[ -f "$src/corral.toml" ] || die "$src/corral.toml: no such file"
case $var in
true | false) ;;
*) die "VAR must be true or false, not '$var'" ;;
esac
# The values become TOML basic strings: keep them free of what would need
# escaping there.
for v in "$data" "$fstype"; do
	case $v in
	*[\"\\]* | *[[:cntrl:]]*) die "quotes, backslashes and control characters are not allowed: '$v'" ;;
	esac
done

install -d -m 0755 "$dest"
install -m 0644 "$src/corral.toml" "$dest/corral.toml"
# Start from an empty services/ so that a service removed from the
# examples disappears from the image on corral-rebuild. Rootfs overlays
# are copied later (target-finalize), so services they add survive.
rm -rf "$dest/services"
install -d -m 0755 "$dest/services"
for f in "$src"/services/*.toml; do
	[ -e "$f" ] || continue
	install -m 0644 "$f" "$dest/services/${f##*/}"
done

if [ -n "$data" ]; then
	cat >>"$dest/corral.toml" <<EOF

# Appended by Buildroot's corral package (BR2_PACKAGE_CORRAL_DATA_*): the
# data partition of the image.
[storage]
data = "$data"
data_fstype = "$fstype"
var = $var
EOF
fi
