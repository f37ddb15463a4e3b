#!/usr/bin/env bash
# Benchmarks berth against runc and crun on one busybox bundle, in the same
# run and the same private mount namespace (crun 1.8.1 refuses a hybrid
# cgroup host unless /sys/fs/cgroup/unified/cgroup.controllers is masked).
#
# usage: bench/run.sh BERTH_BINARY BUNDLE_ROOTFS OUT_DIR [RUNS]
# Writes OUT_DIR/results.md (a markdown table) and hyperfine's JSON files.
set -euo pipefail

if [ "${BERTH_BENCH_INNER:-}" != 1 ]; then
    # Re-enter in a private mount namespace with the mask in place.
    exec unshare -m --propagation private env BERTH_BENCH_INNER=1 bash -c '
        if [ -e /sys/fs/cgroup/unified/cgroup.controllers ]; then
            mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers
        fi
        exec "$0" "$@"' "$0" "$@"
fi

BERTH=$(realpath "$1")
ROOTFS=$(realpath "$2")
OUT=$(realpath -m "$3")
RUNS=${4:-50}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

RUNTIMES=(berth crun runc)
declare -A BIN=([berth]="$BERTH" [crun]=$(command -v crun) [runc]=$(command -v runc))

# Two bundles on the same rootfs: /bin/true, and a long sleep for exec.
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
mk_bundle() { bundle_at "$WORK/$1" "$BERTH" "$ROOTFS" "$2"; } # name args-json
mk_bundle true '["/bin/true"]'
mk_bundle sleep '["/bin/sleep", "100000"]'
# /bin/true under podman's default seccomp profile, converted to the OCI form
# podman passes to runtimes (entries apply by their caps/arch includes).
mk_bundle seccomp '["/bin/true"]'
python3 - "$WORK/seccomp/config.json" /usr/share/containers/seccomp.json <<'PY'
import json, sys
path, prof = sys.argv[1], sys.argv[2]
c = json.load(open(path))
p = json.load(open(prof))
caps = set(c["process"]["capabilities"]["bounding"])
def applies(s):
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if inc.get("arches") and "amd64" not in inc["arches"]: return False
    if exc.get("arches") and "amd64" in exc["arches"]: return False
    if inc.get("caps") and not set(inc["caps"]) <= caps: return False
    if exc.get("caps") and set(exc["caps"]) & caps: return False
    return True
rules = []
for s in p["syscalls"]:
    if applies(s):
        r = {"names": s["names"], "action": s["action"]}
        if s.get("args"): r["args"] = s["args"]
        if s.get("errnoRet") is not None: r["errnoRet"] = s["errnoRet"]
        rules.append(r)
c["linux"]["seccomp"] = {"defaultAction": p["defaultAction"], "defaultErrnoRet": p.get("defaultErrnoRet"),
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": rules}
json.dump(c, open(path, "w"), indent=1)
PY

cmd() { # runtime args...  -> the command line hyperfine runs
    local r=$1; shift
    echo "${BIN[$r]} --root $WORK/state-$r $*"
}

hf() { # name json-out runs hyperfine-args...   (WARM: warm-up runs, default 5)
    local name=$1 json=$2 runs=$3; shift 3
    hyperfine -N --style none -w "${WARM:-5}" -r "$runs" --export-json "$json" "$@" >/dev/null 2>&1 \
        || hyperfine -N -w "${WARM:-5}" -r "$runs" --export-json "$json" "$@"
}

# Median wall (over every run of every round) and mean user+sys in ms from
# the hyperfine JSON files of one measurement.
summary() {
    python3 - "$@" <<'PY'
import json, statistics, sys
times, cpu = [], []
for f in sys.argv[1:]:
    r = json.load(open(f))["results"][0]
    times += r["times"]
    cpu.append((r["user"] + r["system"]) * len(r["times"]))
print("%.2f %.2f" % (statistics.median(times) * 1000, sum(cpu) / len(times) * 1000))
PY
}

declare -A WALL CPU
record() { # key json-files...
    local k=$1; shift
    read -r w c < <(summary "$@")
    WALL[$k]=$w; CPU[$k]=$c
}

# The machine drifts (another tenant, RCU and cgroup work left by the
# previous runtime): each measurement runs in ROUNDS rounds, the runtimes in
# a rotated order each round, so drift falls on all of them alike.
ROUNDS=3
PER=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
for r in "${RUNTIMES[@]}"; do mkdir -p "$WORK/state-$r"; done
for round in $(seq 0 $((ROUNDS - 1))); do
    for i in "${!RUNTIMES[@]}"; do
        r=${RUNTIMES[$(( (i + round) % ${#RUNTIMES[@]} ))]}
        # run of /bin/true
        hf run "$OUT/run-$r-$round.json" "$PER" "$(cmd "$r" run --bundle "$WORK/true" b-run)"
        # run under podman's default seccomp profile
        hf seccomp "$OUT/seccomp-$r-$round.json" "$PER" "$(cmd "$r" run --bundle "$WORK/seccomp" b-scmp)"
        # create, start and delete apart
        hf create "$OUT/create-$r-$round.json" "$PER" \
            --prepare "$(cmd "$r" delete --force b-ph)" \
            "$(cmd "$r" create --bundle "$WORK/true" b-ph)"
        hf start "$OUT/start-$r-$round.json" "$PER" \
            --prepare "sh -c '$(cmd "$r" delete --force b-ph); $(cmd "$r" create --bundle "$WORK/true" b-ph)'" \
            "$(cmd "$r" start b-ph)"
        hf delete "$OUT/delete-$r-$round.json" "$PER" \
            --prepare "sh -c '$(cmd "$r" delete --force b-ph); $(cmd "$r" create --bundle "$WORK/true" b-ph) && $(cmd "$r" start b-ph) && sleep 0.01'" \
            "$(cmd "$r" delete b-ph)"
        # 100 containers in a row, once a round
        WARM=1 hf row "$OUT/row100-$r-$round.json" 1 \
            "sh -c 'for i in \$(seq 100); do $(cmd "$r" run --bundle "$WORK/true" b-row) || exit 1; done'"
        # exec into a running container
        $(cmd "$r" run -d --bundle "$WORK/sleep" b-exec) </dev/null >/dev/null 2>&1
        hf exec "$OUT/exec-$r-$round.json" "$PER" "$(cmd "$r" exec b-exec /bin/true)"
        $(cmd "$r" delete --force b-exec) >/dev/null 2>&1 || true
    done
done
for r in "${RUNTIMES[@]}"; do
    for m in run seccomp create start delete row100 exec; do
        record "$m-$r" "$OUT/$m-$r"-*.json
    done
    # peak RSS of the runtime process (KiB, max of 10 runs)
    peak=0
    for _ in $(seq 10); do
        k=$(/usr/bin/time -f %M $(cmd "$r" run --bundle "$WORK/true" b-rss) 2>&1 >/dev/null | tail -1)
        [ "$k" -gt "$peak" ] && peak=$k
    done
    WALL[rss-$r]=$peak
done

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
{
    echo "| measurement | berth wall ms | berth CPU ms | crun wall ms | crun CPU ms | runc wall ms | runc CPU ms | berth/crun wall | berth/crun CPU |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for m in run seccomp create start delete exec row100; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" \
            "${WALL[$m-berth]}" "${CPU[$m-berth]}" "${WALL[$m-crun]}" "${CPU[$m-crun]}" \
            "${WALL[$m-runc]}" "${CPU[$m-runc]}" \
            "$(ratio "${WALL[$m-berth]}" "${WALL[$m-crun]}")" "$(ratio "${CPU[$m-berth]}" "${CPU[$m-crun]}")"
    done
    printf '| peak RSS (KiB, `run`, max of 10) | %s | | %s | | %s | | %s | |\n' \
        "${WALL[rss-berth]}" "${WALL[rss-crun]}" "${WALL[rss-runc]}" \
        "$(ratio "${WALL[rss-berth]}" "${WALL[rss-crun]}")"
} | tee "$OUT/results.md"
