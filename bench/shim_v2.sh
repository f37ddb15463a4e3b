#!/usr/bin/env bash
# berth-shim under containerd against containerd-shim-runc-v2, in the same
# run, through one private containerd 1.6 (CRI off):
#  - RSS and PSS per shim with 20 idle `sleep` containers of each runtime
#    type up at once (io.containerd.berth.v2 over berth, io.containerd.runc.v2
#    over runc);
#  - `ctr run --rm IMAGE true` through each (hyperfine, medians).
#
# usage: bench/shim_v2.sh BERTH BERTH_SHIM IMAGE_TAR OUT_DIR [RUNS]
set -euo pipefail

BERTH=$(realpath "$1")
SHIM=$(realpath "$2")
TAR=$(realpath "$3")
OUT=$(realpath -m "$4")
RUNS=${5:-20}
N=20
mkdir -p "$OUT"
WORK=/tmp/bsv2-$$
rm -rf "$WORK"; mkdir -p "$WORK/bin"
NS=bsv2-$$
CPID=
C="ctr -a $WORK/c.sock -n $NS"
cleanup() {
    set +e
    if [ -n "$CPID" ]; then
        for t in $($C tasks ls -q 2>/dev/null); do $C tasks kill -a -s KILL "$t" >/dev/null 2>&1; done
        sleep 0.5
        for t in $($C tasks ls -q 2>/dev/null); do $C tasks rm -f "$t" >/dev/null 2>&1; done
        for t in $($C containers ls -q 2>/dev/null); do $C containers rm "$t" >/dev/null 2>&1; done
        kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
    fi
    rm -rf "/run/containerd/runc/$NS" "/run/containerd/berth/$NS"
    for c in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS"; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    umount -R "$WORK" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

ln -s "$SHIM" "$WORK/bin/containerd-shim-berth-v2"
ln -s "$BERTH" "$WORK/bin/berth"
cat >"$WORK/config.toml" <<TOML
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/c.sock"
[ttrpc]
  address = "$WORK/t.sock"
TOML
PATH="$WORK/bin:$PATH" containerd --config "$WORK/config.toml" >"$WORK/log" 2>&1 &
CPID=$!
for _ in $(seq 200); do [ -S "$WORK/c.sock" ] && $C version >/dev/null 2>&1 && break; sleep 0.05; done
$C images import --base-name docker.io/berth/busybox "$TAR" >/dev/null
IMG=docker.io/berth/busybox:latest

# "RSS_KiB PSS_KiB" summed over the shims of one kind serving this containerd.
mem() {
    local rss=0 pss=0
    for d in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
        case "$cmd" in
            "$1 "*"-address $WORK/c.sock"*)
                rss=$((rss + $(awk '/^Rss:/{print $2}' "$d/smaps_rollup")))
                pss=$((pss + $(awk '/^Pss:/{print $2}' "$d/smaps_rollup")));;
        esac
    done
    echo "$rss $pss"
}

for i in $(seq $N); do
    $C run -d --runtime io.containerd.berth.v2 $IMG "b$i" sleep 100000 >/dev/null
    $C run -d --runtime io.containerd.runc.v2 $IMG "r$i" sleep 100000 >/dev/null
done
sleep 1
read -r brss bpss < <(mem containerd-shim-berth-v2)
read -r rrss rpss < <(mem /usr/bin/containerd-shim-runc-v2)

hyperfine -N --style none -w 2 -r "$RUNS" --export-json "$OUT/shim-v2.json" \
    -n "berth v2" "$C run --rm --runtime io.containerd.berth.v2 $IMG x true" \
    -n "runc v2" "$C run --rm --runtime io.containerd.runc.v2 $IMG x true" >/dev/null

python3 - "$OUT/shim-v2.json" "$brss" "$bpss" "$rrss" "$rpss" "$N" <<'PY' | tee "$OUT/results-shim-v2.md"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, c = r["berth v2"], r["runc v2"]
brss, bpss, rrss, rpss, n = map(float, sys.argv[2:7])
print("| measurement (under containerd 1.6) | berth-shim (v2) | containerd-shim-runc-v2 | berth/runc-v2 |")
print("|---|---|---|---|")
print("| RSS MiB per shim, %d idle containers each | %.3f | %.2f | %.2f |" % (n, brss/n/1024, rrss/n/1024, brss/rrss))
print("| PSS MiB per shim | %.3f | %.2f | %.2f |" % (bpss/n/1024, rpss/n/1024, bpss/rpss))
print("| `ctr run --rm IMAGE true`, wall ms (median) | %.1f | %.1f | %.2f |" % (b["median"]*1e3, c["median"]*1e3, b["median"]/c["median"]))
PY
