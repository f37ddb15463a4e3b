#!/usr/bin/env bash
# Pod start through the CRI, berthd against containerd 1.6 (its CRI plugin,
# runc) in the same run, both driven by the same client
# (berth-bench-cri) as kubelet starts a pod: RunPodSandbox, CreateContainer,
# StartContainer until running, then StopPodSandbox and RemovePodSandbox,
# each pod on a CNI bridge. Then each daemon's RSS with 50 pods running.
# Everything runs in a network namespace of the script's own.
#
# usage: bench/cri.sh BERTHD BERTHCTL BERTH_SHIM BERTH BENCH_CRI IMAGE_TAR OUT_DIR [RUNS]
set -euo pipefail

if [ -z "${BERTH_BENCH_INSIDE:-}" ]; then
    WORK=$(mktemp -d /tmp/berth-bench-cri.XXXXXX)
    touch "$WORK/netns"
    unshare --net="$WORK/netns" true
    set +e
    BERTH_BENCH_INSIDE=$WORK nsenter --net="$WORK/netns" "$0" "$@"
    rc=$?
    umount "$WORK/netns" 2>/dev/null
    [ $rc = 0 ] && rm -rf "$WORK" || echo "bench/cri.sh: failed; logs in $WORK" >&2
    exit $rc
fi
WORK=$BERTH_BENCH_INSIDE
BERTHD=$(realpath "$1")
BERTHCTL=$(realpath "$2")
SHIM=$(realpath "$3")
BERTH=$(realpath "$4")
CLIENT=$(realpath "$5")
TAR=$(realpath "$6")
OUT=$(realpath -m "$7")
RUNS=${8:-20}
HOLD=50
mkdir -p "$OUT"
ip link set lo up
CG=berth-bench-cri-$$
export BENCH_CGROUP_PARENT=/$CG BENCH_LOGS=$WORK/logs
PIDS=()
cleanup() {
    set +e
    [ -S "$WORK/cri.sock" ] && "$CLIENT" "$WORK/cri.sock" x clean
    [ -S "$WORK/ctrd/c.sock" ] && "$CLIENT" "$WORK/ctrd/c.sock" x clean
    # Only the daemons this script started.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    for d in /sys/fs/cgroup/*/"$CG"/*/* /sys/fs/cgroup/*/"$CG"/* /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"/* /sys/fs/cgroup/"$CG"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
}
trap cleanup EXIT

# A bridge network per daemon.
net() { # DIR NAME SUBNET
    mkdir -p "$1"
    cat >"$1/10-$2.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$2", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3"}]], "dataDir": "$1/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}
net "$WORK/berth-net.d" bbench0 10.97.0.0/24
net "$WORK/ctrd-net.d" cbench0 10.98.0.0/24

# containerd's sandbox ("pause") image: the busybox image sleeping, as a tag of
# the same layout (Berth needs none: its own holder keeps a pod's namespaces).
mkdir -p "$WORK/layout"
tar -C "$WORK/layout" -xf "$TAR"
umoci config --image "$WORK/layout:latest" --tag pause --config.entrypoint /bin/sleep --config.cmd 100000000 >/dev/null
tar -C "$WORK/layout" -cf "$WORK/images.tar" .
IMG=docker.io/berth/busybox:latest

"$BERTHD" --root "$WORK/berthd/root" --state "$WORK/berthd/state" --address "$WORK/berthd.sock" \
    --shim "$SHIM" --runtime "$BERTH" --cgroup-parent "/$CG" --cni-conf-dir "$WORK/berthctl-net.d" \
    --cri-address "$WORK/cri.sock" --cri-cni-conf-dir "$WORK/berth-net.d" 2>"$WORK/berthd.log" &
BPID=$!
PIDS+=($BPID)
mkdir -p "$WORK/ctrd"
cat >"$WORK/ctrd/config.toml" <<TOML
version = 2
root = "$WORK/ctrd/root"
state = "$WORK/ctrd/state"
[grpc]
  address = "$WORK/ctrd/c.sock"
[ttrpc]
  address = "$WORK/ctrd/t.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/berth/busybox:pause"
  # This host has no CAP_SYS_RESOURCE: the pause container's -998 would fail
  # (Berth clamps the same way).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$WORK/ctrd-net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
TOML
containerd --config "$WORK/ctrd/config.toml" >"$WORK/ctrd/log" 2>&1 &
CPID=$!
PIDS+=($CPID)
for _ in $(seq 400); do [ -S "$WORK/cri.sock" ] && [ -S "$WORK/ctrd/c.sock" ] && break; sleep 0.05; done
"$BERTHCTL" --address "$WORK/berthd.sock" -n k8s.io import --base-name docker.io/berth/busybox "$WORK/images.tar" >/dev/null
ctr -a "$WORK/ctrd/c.sock" -n k8s.io images import --base-name docker.io/berth/busybox "$WORK/images.tar" >/dev/null

B=("$CLIENT" "$WORK/cri.sock" "$IMG")
C=("$CLIENT" "$WORK/ctrd/c.sock" "$IMG")
# Warm-up (a failure shows here), then the runs alternating in halves, so
# the machine's drift falls on both alike.
"${B[@]}" cycles 2 >/dev/null
"${C[@]}" cycles 2 >/dev/null
: >"$OUT/cri-berth.jsonl"
: >"$OUT/cri-containerd.jsonl"
half=$(( (RUNS + 1) / 2 ))
"${B[@]}" cycles "$half" >>"$OUT/cri-berth.jsonl"
"${C[@]}" cycles "$half" >>"$OUT/cri-containerd.jsonl"
"${C[@]}" cycles $((RUNS - half)) >>"$OUT/cri-containerd.jsonl"
"${B[@]}" cycles $((RUNS - half)) >>"$OUT/cri-berth.jsonl"

# Memory with 50 pods: each daemon's RSS, and its shims' total (for Berth
# also the namespace holders: one per pod, as containerd's pause).
rss() { awk '/^Rss:/{print $2}' "/proc/$1/smaps_rollup"; }
under() { # the RSS, in KiB, of every process whose command line names $1
    local t=0 p
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$1"; then
            t=$((t + $(awk '/^Rss:/{print $2}' "$p/smaps_rollup" 2>/dev/null || echo 0)))
        fi
    done
    echo $t
}
"${B[@]}" hold $HOLD >/dev/null
b_rss=$(rss $BPID); b_shims=$(under "berth-shim serve.*$WORK"); b_hold=$(under "berth-shim hold")
"$CLIENT" "$WORK/cri.sock" x clean
"${C[@]}" hold $HOLD >/dev/null
c_rss=$(rss $CPID); c_shims=$(under "containerd-shim-runc-v2 .*$WORK")
"$CLIENT" "$WORK/ctrd/c.sock" x clean

python3 - "$OUT" "$RUNS" "$HOLD" "$b_rss" "$b_shims" "$b_hold" "$c_rss" "$c_shims" <<'PY' | tee "$OUT/results-cri.md"
import json, sys
out, runs, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b_rss, b_shims, b_hold, c_rss, c_shims = (int(x) / 1024 for x in sys.argv[4:9])
load = lambda n: [json.loads(l) for l in open(f"{out}/cri-{n}.jsonl")]
b, c = load("berth"), load("containerd")
def q(rows, k, p):
    v = sorted(r[k] for r in rows)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
print(f"| CRI, {runs} pods each (ms) | Berth median | p90 | containerd 1.6 + runc median | p90 | Berth/containerd (median) |")
print("|---|---|---|---|---|---|")
for k, name in [("run_pod", "RunPodSandbox"), ("create", "CreateContainer"), ("start", "StartContainer until running"),
                ("up", "pod start: all three"), ("stop_pod", "StopPodSandbox"), ("remove_pod", "RemovePodSandbox"),
                ("cycle", "whole cycle")]:
    bm, cm = q(b, k, .5), q(c, k, .5)
    print(f"| {name} | {bm:.1f} | {q(b, k, .9):.1f} | {cm:.1f} | {q(c, k, .9):.1f} | {bm / cm:.2f} |")
print()
print(f"| {hold} pods running, RSS MiB | Berth | containerd 1.6 + runc | Berth/containerd |")
print("|---|---|---|---|")
print(f"| daemon (berthd / containerd) | {b_rss:.1f} | {c_rss:.1f} | {b_rss / c_rss:.2f} |")
print(f"| shims (one per container / one per pod) | {b_shims:.1f} | {c_shims:.1f} | |")
print(f"| pod namespace holders (Berth's; containerd's pause runs under its shim) | {b_hold:.1f} | | |")
PY
