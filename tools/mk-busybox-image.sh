#!/bin/sh
# Builds a small busybox OCI image archive from Debian's busybox-static, with
# umoci: one layer with /bin/busybox, its applet links and a minimal /etc.
# usage: tools/mk-busybox-image.sh OUT.tar   (an OCI image layout, tag "latest")
set -eu
out=$(realpath -m "$1")
work=$(mktemp -d /tmp/berth-mkimage.XXXXXX)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/layout"
umoci new --image "$work/layout:latest"
umoci unpack --image "$work/layout:latest" "$work/bundle"
r="$work/bundle/rootfs"
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
printf 'root:x:0:\n' > "$r/etc/group"
umoci repack --image "$work/layout:latest" "$work/bundle"
# After the repack: it builds on the config the bundle was unpacked from,
# so a config set before it would be dropped.
umoci config --image "$work/layout:latest" --config.cmd sh --config.env PATH=/bin
umoci gc --layout "$work/layout"
tar -C "$work/layout" -cf "$out" .
