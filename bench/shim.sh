#!/usr/bin/env bash
# Shim benchmarks: berth-shim against conmon and containerd-shim-runc-v2.
#  - RSS and PSS (from /proc/PID/smaps_rollup) of one idle shim, and per shim
#    with 20 idle shims up at once, each holding a running `sleep` container;
#  - CPU and wall per container start through the shim: shim start, create,
#    start, wait, delete, shutdown of a /bin/true container (hyperfine; the
#    driver is the shim's child subreaper, so the daemon's CPU counts).
# The shims drive runc, so the comparison is of the shims alone; berth-shim
# over berth is the whole Berth stack.
#
# usage: bench/shim.sh BERTH BERTH_SHIM BENCH_DRIVER BUNDLE_ROOTFS OUT_DIR [RUNS]
set -euo pipefail

BERTH=$(realpath "$1")
SHIM=$(realpath "$2")
DRIVER=$(realpath "$3")
ROOTFS=$(realpath "$4")
OUT=$(realpath -m "$5")
RUNS=${6:-30}
N=20
RUNC=$(command -v runc)
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/berth-bench-shim.XXXXXX)
CTRD_PID=
CTRD_SHIMS=()
cleanup() {
    set +e
    # Only what this script started: shims by the pid files they wrote.
    for f in "$WORK"/b-*/shim.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
    for b in "$WORK"/b-*; do [ -f "$b/shim.json" ] && "$SHIM" delete --id "${b##*/b-}" --bundle "$b" >/dev/null 2>&1; done
    if [ -n "$CTRD_PID" ]; then
        for p in "${CTRD_SHIMS[@]}"; do kill -9 "$p" 2>/dev/null; done
        kill "$CTRD_PID" 2>/dev/null; wait "$CTRD_PID" 2>/dev/null
        # runc's state for containerd's shims (its default root per namespace).
        r=/run/containerd/runc/$NS
        for c in $("$RUNC" --root "$r" list -q 2>/dev/null); do "$RUNC" --root "$r" delete --force "$c"; done
        rm -rf "$r"
        # containerd puts tasks under /<namespace>/<id>; the namespace level stays.
        [ -n "${NS:-}" ] && for c in /sys/fs/cgroup/*/"$NS"; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    fi
    for r in "$WORK"/runc-*; do
        [ -d "$r" ] || continue
        for c in $("$RUNC" --root "$r" list -q 2>/dev/null); do "$RUNC" --root "$r" delete --force "$c"; done
    done
    umount -R "$WORK" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bundle() { bundle_at "$1" "$BERTH" "$ROOTFS" "$2"; } # dir args-json

# "RSS_KiB PSS_KiB" summed over the given pids.
mem() {
    local rss=0 pss=0 r p
    for pid in "$@"; do
        r=$(awk '/^Rss:/{print $2}' "/proc/$pid/smaps_rollup")
        p=$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")
        rss=$((rss + r)); pss=$((pss + p))
    done
    echo "$rss $pss"
}
per() { python3 -c "print('%.2f' % ($1 / $2 / 1024))"; } # KiB total, count -> MiB each

declare -A RES
# --- berth-shim, over berth and over runc ---
for rt in berth runc; do
    bin=$BERTH; [ "$rt" = runc ] && bin=$RUNC
    root=$WORK/runc-$rt; mkdir -p "$root"
    pids=()
    for i in $(seq $N); do
        b=$WORK/b-$rt$i
        bundle "$b" '["/bin/sleep", "100000"]'
        "$DRIVER" up "$SHIM" "$bin" "$root" "$b" "$rt$i" "$WORK/s-$rt$i.sock"
        pids+=("$(cat "$b/shim.pid")")
        [ "$i" = 1 ] && { sleep 0.5; RES[one-berth-shim-$rt]=$(mem "${pids[0]}"); }
    done
    sleep 1
    RES[all-berth-shim-$rt]=$(mem "${pids[@]}")
    for i in $(seq $N); do "$DRIVER" down "$WORK/s-$rt$i.sock" "$rt$i"; done
    bundle "$WORK/b-cyc$rt" '["/bin/true"]'
    hyperfine -N --style none -w 3 -r "$RUNS" --export-json "$OUT/shim-cycle-$rt.json" \
        "$DRIVER cycle $SHIM $bin $root $WORK/b-cyc$rt cyc$rt $WORK/cyc$rt.sock" >/dev/null
done

# --- conmon over runc ---
root=$WORK/runc-conmon; mkdir -p "$root"
bundle "$WORK/cm-sleep" '["/bin/sleep", "100000"]'
bundle "$WORK/cm-true" '["/bin/true"]'
pids=()
for i in $(seq $N); do
    "$DRIVER" conmon-up "$RUNC" "$root" "$WORK/cm-sleep" "cm$i" "$WORK/cm$i"
    pids+=("$(cat "$WORK/cm$i/conmon.pid")")
    [ "$i" = 1 ] && { sleep 0.5; RES[one-conmon]=$(mem "${pids[0]}"); }
done
sleep 1
RES[all-conmon]=$(mem "${pids[@]}")
for i in $(seq $N); do "$DRIVER" conmon-down "$RUNC" "$root" "cm$i" "$WORK/cm$i"; done
hyperfine -N --style none -w 3 -r "$RUNS" --export-json "$OUT/shim-cycle-conmon.json" \
    "$DRIVER conmon-cycle $RUNC $root $WORK/cm-true cmc $WORK/cmc" >/dev/null

# --- containerd-shim-runc-v2, through a private containerd and ctr ---
D=$WORK/ctrd
start_containerd "$D"
NS=berth-bench-$$
ctr() { command ctr -a "$D/c.sock" -n "$NS" "$@"; }
pids=()
for i in $(seq $N); do
    ctr run -d --null-io --runc-binary "$RUNC" --rootfs "$ROOTFS" "ct$i" /bin/sleep 100000
    # The shim is the parent (subreaper) of the task's init.
    init=$(cat "$D/state/io.containerd.runtime.v2.task/$NS/ct$i/init.pid")
    pids+=("$(ps -o ppid= -p "$init" | tr -d ' ')")
    CTRD_SHIMS+=("${pids[-1]}")
    [ "$i" = 1 ] && { sleep 0.5; RES[one-ctrd]=$(mem "${pids[0]}"); }
done
sleep 1
RES[all-ctrd]=$(mem "${pids[@]}")
for i in $(seq $N); do
    ctr task kill -s KILL "ct$i" >/dev/null
    for _ in $(seq 100); do ctr task delete "ct$i" >/dev/null 2>&1 && break; sleep 0.05; done
    ctr container delete "ct$i" >/dev/null
done

cycle() { # json -> "median_wall_ms cpu_ms"
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%.2f %.2f" % (r["median"] * 1000, (r["user"] + r["system"]) * 1000))
PY
}
row() { # name key-one key-all cycle-json
    read -r r1 p1 <<<"${RES[$2]}"
    read -r ra pa <<<"${RES[$3]}"
    local w=- c=-
    [ -n "$4" ] && read -r w c < <(cycle "$4")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(per "$r1" 1)" "$(per "$p1" 1)" \
        "$(per "$ra" $N)" "$(per "$pa" $N)" "$w" "$c"
}
{
    echo "| shim | RSS MiB, 1 idle | PSS MiB, 1 idle | RSS MiB each of $N | PSS MiB each of $N | container start→end through it, wall ms | CPU ms |"
    echo "|---|---|---|---|---|---|---|"
    row "berth-shim over berth" one-berth-shim-berth all-berth-shim-berth "$OUT/shim-cycle-berth.json"
    row "berth-shim over runc" one-berth-shim-runc all-berth-shim-runc "$OUT/shim-cycle-runc.json"
    row "conmon over runc" one-conmon all-conmon "$OUT/shim-cycle-conmon.json"
    row "containerd-shim-runc-v2 over runc" one-ctrd all-ctrd ""
} | tee "$OUT/results-shim.md"
