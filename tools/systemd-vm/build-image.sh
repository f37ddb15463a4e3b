#!/bin/sh
# Builds the systemd guest's disk image once: a Debian bookworm root made by
# debootstrap (systemd as PID 1, dbus, what the tests need), the host
# kernel's modules, and a unit that runs the command the host passes in.
# The image is cached under $CACHE (default <project>/.cache/systemd-guest) and
# rebuilt only when this script or the kernel changes.
#
# usage: tools/systemd-vm/build-image.sh   (as root; needs debootstrap, e2fsprogs)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-$(cd "$here/../.." && pwd)/.cache/systemd-guest}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
kver=$(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)
[ -n "$kver" ] && [ -d "/lib/modules/$kver" ] && [ -f "/boot/initrd.img-$kver" ] || {
    echo "no kernel with modules and an initrd in /boot (apt-get install linux-image-amd64)" >&2
    exit 1
}
key=$(cat "$here/build-image.sh" "$here/guest-run.sh" | sha256sum | cut -c1-12)-$kver
image=$CACHE/root-$key.img
if [ -f "$image" ]; then
    echo "$image"
    exit 0
fi
mkdir -p "$CACHE"
# One image at a time: an older script's or kernel's goes.
rm -f "$CACHE"/root-*.img "$CACHE"/root-*.img.tmp
root=$CACHE/root-$key
rm -rf "$root"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,kmod,udev,procps,util-linux,iproute2,iptables,busybox-static,containernetworking-plugins,umoci,dbus-user-session,libpam-systemd \
    bookworm "$root" "$MIRROR" >&2
# The host kernel's modules: 9p, veth, bridge, overlay, nf_tables load on use.
mkdir -p "$root/lib/modules"
cp -a "/lib/modules/$kver" "$root/lib/modules/"
# An ordinary user whose own systemd manager runs from boot (lingering),
# for the driver's rootless case.
chroot "$root" useradd -m -u 1000 -s /bin/sh berthuser
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/berthuser"
# A fixed machine id: an empty one would start first-boot prompts.
echo 4b2e1d0c9a8f7e6d5c4b3a2918070605 > "$root/etc/machine-id"
echo berth-systemd > "$root/etc/hostname"
echo "/dev/vda / ext4 rw,relatime 0 1" > "$root/etc/fstab"
install -m 0755 "$here/guest-run.sh" "$root/usr/local/sbin/berth-guest-run"
cat > "$root/etc/systemd/system/berth-guest-run.service" <<'UNIT'
[Unit]
Description=Run the command the host passed in, then power off
After=multi-user.target dbus.service systemd-udev-settle.service
Wants=dbus.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/berth-guest-run
StandardOutput=journal+console
StandardError=journal+console
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../berth-guest-run.service "$root/etc/systemd/system/multi-user.target.wants/"
# Nothing that waits or prompts on the console.
for u in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer fstrim.timer systemd-firstboot.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
rm -f "$root/var/cache/apt/archives/"*.deb
mkfs.ext4 -q -F -L berthsd -d "$root" "$image.tmp" 3G >&2
mv "$image.tmp" "$image"
rm -rf "$root"
echo "$image"
