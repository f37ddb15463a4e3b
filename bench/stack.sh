#!/usr/bin/env bash
# The whole stack against containerd 1.6 in the same run:
#  - `berthctl run --rm IMAGE true` (berthd → berth-shim → berth) against
#    `ctr run --rm IMAGE ID true` (containerd → containerd-shim-runc-v2 → runc),
#    and the bare runtime (`berth run`) for the floor (hyperfine, medians);
#  - 200 containers started concurrently through berthd: wall time, failures.
#
# usage: bench/stack.sh BERTHD BERTHCTL BERTH_SHIM BERTH IMAGE_TAR OUT_DIR [RUNS]
set -euo pipefail

BERTHD=$(realpath "$1")
BERTHCTL=$(realpath "$2")
SHIM=$(realpath "$3")
BERTH=$(realpath "$4")
TAR=$(realpath "$5")
OUT=$(realpath -m "$6")
RUNS=${7:-20}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/berth-bench-stack.XXXXXX)
NS=berth-bench-$$
CG=berth-bench-stack-$$
PIDS=()
cleanup() {
    set +e
    "$BERTHCTL" --address "$WORK/berthd.sock" ps -a -q 2>/dev/null | xargs -r -n 50 "$BERTHCTL" --address "$WORK/berthd.sock" rm -f >/dev/null 2>&1
    # Only the daemons this script started.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    umount -R "$WORK" 2>/dev/null
    # The cgroups our containers' parents left (ours and containerd's namespace).
    for d in /sys/fs/cgroup/*/"$CG"/* /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"/* /sys/fs/cgroup/"$CG" \
             /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BERTHD" --root "$WORK/berthd/root" --state "$WORK/berthd/state" --address "$WORK/berthd.sock" \
    --shim "$SHIM" --runtime "$BERTH" --cgroup-parent "/$CG" --cni-conf-dir "$WORK/net.d" --cri-address "$WORK/cri.sock" 2>"$WORK/berthd.log" &
BPID=$!
PIDS+=($BPID)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
start_containerd "$WORK/ctrd"
PIDS+=($CTRD_PID)
for _ in $(seq 200); do [ -S "$WORK/berthd.sock" ] && [ -S "$WORK/ctrd/c.sock" ] && break; sleep 0.05; done
B="$BERTHCTL --address $WORK/berthd.sock"
C="ctr -a $WORK/ctrd/c.sock -n $NS"
IMG=docker.io/berth/busybox:latest
$B import --base-name berth/busybox "$TAR" >/dev/null
$C images import --base-name docker.io/berth/busybox "$TAR" >/dev/null

# The bare runtime on the same image, for the floor.
mkdir -p "$WORK/layout"
tar -C "$WORK/layout" -xf "$TAR"
umoci unpack --image "$WORK/layout:latest" "$WORK/x" >/dev/null
bundle_at "$WORK/bare" "$BERTH" "$WORK/x/rootfs" '["true"]'

# One run first, so a failure shows its message.
$B run --rm --net none $IMG true
$C run --rm $IMG bench-ctr true
$BERTH --root $WORK/bare-state run --bundle $WORK/bare bench-bare
hyperfine -N --style none -w 3 -r "$RUNS" --export-json "$OUT/stack.json" \
    -n "berthctl run --rm" "$B run --rm --net none $IMG true" \
    -n "ctr run --rm" "$C run --rm $IMG bench-ctr true" \
    -n "berth run (bare runtime)" "$BERTH --root $WORK/bare-state run --bundle $WORK/bare bench-bare" >/dev/null

# 200 at once: each a detached `sleep`, all started in parallel.
start=$(date +%s.%N)
JOBS=()
for i in $(seq 200); do
    ( $B run -d --net none --name "p$i" "$IMG" sleep 600 >/dev/null 2>>"$WORK/conc.err" || echo "p$i" >>"$WORK/conc.failed" ) &
    JOBS+=($!)
done
# Only these: a bare `wait` would wait for the daemons too.
wait "${JOBS[@]}"
end=$(date +%s.%N)
running=$($B ps -q | wc -l)
failed=$( [ -f "$WORK/conc.failed" ] && wc -l <"$WORK/conc.failed" || echo 0)
rss=$(awk '/^Rss:/{printf "%.1f", $2/1024}' "/proc/$BPID/smaps_rollup")
$B ps -a -q | xargs -r -n 50 $B rm -f >/dev/null

python3 - "$OUT/stack.json" "$start" "$end" "$running" "$failed" "$rss" <<'PY' | tee "$OUT/results-stack.md"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, c, f = r["berthctl run --rm"], r["ctr run --rm"], r["berth run (bare runtime)"]
ms = lambda x: x["median"] * 1e3
print("| measurement | Berth | containerd 1.6 + runc | Berth/containerd |")
print("|---|---|---|---|")
print("| `run --rm IMAGE true` through the daemon, wall ms (median) | %.1f | %.1f | %.2f |" % (ms(b), ms(c), b["median"] / c["median"]))
print("| same, over the bare runtime (`berth run`: %.1f ms) | +%.1f | | |" % (ms(f), ms(b) - ms(f)))
start, end = float(sys.argv[2]), float(sys.argv[3])
print("| 200 containers started concurrently (`run -d`): wall s | %.1f | | |" % (end - start))
print("| ... running afterwards / failed | %s / %s | | |" % (sys.argv[4], sys.argv[5]))
print("| berthd RSS with 200 containers, MiB | %s | | |" % sys.argv[6])
PY
if [ -s "$WORK/conc.err" ]; then echo "errors:"; sort "$WORK/conc.err" | uniq -c | head; fi
