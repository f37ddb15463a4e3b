#!/bin/sh
# In the systemd guest, once multi-user.target is reached: mounts the 9p
# shares the host lists in /ctl/shares ("tag path" lines), runs /ctl/cmd.sh,
# leaves its output and status in /ctl, and powers off.
mkdir -p /ctl
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ctl /ctl || { poweroff -f; exit 1; }
while read -r tag path; do
    [ -n "$tag" ] || continue
    mkdir -p "$path"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=mmap "$tag" "$path"
done < /ctl/shares
sh /ctl/cmd.sh > /ctl/out 2> /ctl/err < /dev/null
echo $? > /ctl/status
sync
systemctl poweroff --force --force
