#!/bin/sh
# Runs one command as root in a throw-away qemu guest whose PID 1 is
# systemd (pure cgroup v2), sharing host directories over 9p at the same
# paths. The command's stdout and stderr come back, and its exit status
# (124 on timeout, 125 when the guest broke; the console's tail is shown).
#
# usage: tools/systemd-vm/run.sh [-t SECS] [-m MIB] [-c CPUS] [-s DIR]... [-e NAME=VALUE]... [-C DIR] -- COMMAND [ARGS...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
timeout=1800 mem=3072 cpus=2 cwd=$(pwd)
shares="" envs=""
while [ $# -gt 0 ]; do
    case $1 in
        -t) timeout=$2; shift 2 ;;
        -m) mem=$2; shift 2 ;;
        -c) cpus=$2; shift 2 ;;
        -s) shares="$shares $2"; shift 2 ;;
        -e) envs="$envs $2"; shift 2 ;;
        -C) cwd=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [options] -- COMMAND [ARGS...]" >&2; exit 2; }
image=$("$here/build-image.sh")
kver=$(ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)
scratch=$(mktemp -d /tmp/berth-sdvm.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
ctl=$scratch/ctl
mkdir -p "$ctl"
qemu-img create -q -f qcow2 -b "$image" -F raw "$scratch/disk.qcow2"
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
virtfs="-virtfs local,path=$ctl,mount_tag=ctl,security_model=passthrough,multidevs=remap"
: > "$ctl/shares"
n=0
for s in $shares $cwd; do
    n=$((n + 1))
    echo "s$n $s" >> "$ctl/shares"
    virtfs="$virtfs -virtfs local,path=$s,mount_tag=s$n,security_model=passthrough,multidevs=remap"
done
{
    echo "cd $(quote "$cwd")"
    for e in $envs; do echo "export $(quote "$e")"; done
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(quote "$a")"; done
    echo
} > "$ctl/cmd.sh"
set +e
# shellcheck disable=SC2086
timeout "$timeout" qemu-system-x86_64 -nodefaults -nographic -monitor none -no-reboot \
    -machine q35 -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
    -kernel "/boot/vmlinuz-$kver" -initrd "/boot/initrd.img-$kver" \
    -append "root=/dev/vda rw console=ttyS0 loglevel=4 panic=-1 systemd.unified_cgroup_hierarchy=1 systemd.show_status=false mitigations=off random.trust_cpu=on" \
    -drive "file=$scratch/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -serial "file:$scratch/console.log" $virtfs
rc=$?
set -e
[ -f "$ctl/out" ] && cat "$ctl/out"
[ -f "$ctl/err" ] && cat "$ctl/err" >&2
if [ $rc -eq 124 ]; then
    echo "systemd guest: timed out after ${timeout}s" >&2
    tail -20 "$scratch/console.log" >&2
    exit 124
fi
if [ ! -f "$ctl/status" ]; then
    echo "systemd guest: no exit status (qemu exited $rc); the console's tail:" >&2
    tail -30 "$scratch/console.log" >&2
    exit 125
fi
exit "$(cat "$ctl/status")"
