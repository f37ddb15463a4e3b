#!/usr/bin/env bash
# The leak audit around `make test`: what the tests may leave on the host,
# taken before and compared after. Any difference fails, naming it:
#   - mounts of the host's mount namespace;
#   - cgroup directories (every hierarchy, five levels deep);
#   - named network namespaces and network links;
#   - iptables and ip6tables rules (filter and nat, without counters);
#   - processes of the stack (berth, berth-shim, berthd, containerd and its
#     shims) and processes whose root is not the host's (a container's);
#   - the tests' and the stack's state and store directories.
#
# usage: tools/leak-audit.sh snapshot FILE
#        tools/leak-audit.sh compare FILE
set -euo pipefail

state() {
    echo "## mounts"
    awk '{print $5}' /proc/self/mountinfo | sort -u
    echo "## cgroups"
    for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
        [ -d "$h" ] || continue
        find "$h" -mindepth 1 -maxdepth 5 -type d 2>/dev/null
    done | sort -u
    echo "## netns"
    ls -1 /run/netns 2>/dev/null | sort || true
    echo "## links"
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | sort -u
    for t in iptables ip6tables; do
        command -v "$t-save" >/dev/null || continue
        for table in filter nat; do
            echo "## $t $table"
            "$t-save" -t "$table" 2>/dev/null | grep -v '^[#:]' | grep -v '^COMMIT' | sort -u || true
        done
    done
    echo "## processes"
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        comm=$(cat "$p/comm" 2>/dev/null) || continue
        root=$(readlink "$p/root" 2>/dev/null) || continue
        case "$comm" in
        berth | berth-shim | berthd | containerd | containerd-shim*)
            echo "$pid $comm" ;;
        *)
            # A container's process: its root is not the host's. Kernel
            # threads and processes of other namespaces show no root.
            if [ -n "$root" ] && [ "$root" != / ]; then echo "$pid $comm (root $root)"; fi ;;
        esac
    done | sort -u
    echo "## directories"
    # The shared busybox rootfs the tests make once is kept on purpose.
    find /tmp /run -maxdepth 1 \( -name berth -o -name 'berth-*' \) \
        ! -name berth-it-rootfs ! -name 'berth-it-rootfs.*' 2>/dev/null | sort -u
}

case "${1:-}" in
snapshot)
    state >"$2"
    ;;
compare)
    after=$(mktemp)
    state >"$after"
    # Lines present now that were not before, with their section.
    leaks=$(awk 'NR == FNR { seen[$0] = 1; next }
        /^## / { section = $0; next }
        !($0 in seen) { print section ": " $0 }' "$2" "$after")
    rm -f "$after"
    if [ -n "$leaks" ]; then
        echo "leak audit: the tests left these on the host:" >&2
        echo "$leaks" >&2
        exit 1
    fi
    echo "leak audit: nothing left (mounts, cgroups, netns, links, iptables, processes, directories)"
    ;;
*)
    echo "usage: $0 snapshot FILE | compare FILE" >&2
    exit 2
    ;;
esac
