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

hf() { # name json-out runs hyperfine-args...
    local name=$1 json=$2 runs=$3; shift 3
    hyperfine -N --style none -w 5 -r "$runs" --export-json "$json" "$@" >/dev/null 2>&1 \
        || hyperfine -N -w 5 -r "$runs" --export-json "$json" "$@"
}

# Median wall and mean user+sys in ms from a hyperfine JSON file.
summary() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("%.2f %.2f" % (r["median"] * 1000, (r["user"] + r["system"]) * 1000))
PY
}

declare -A WALL CPU
record() { # key json
    read -r w c < <(summary "$2")
    WALL[$1]=$w; CPU[$1]=$c
}

for r in "${RUNTIMES[@]}"; do
    mkdir -p "$WORK/state-$r"
    # run of /bin/true
    hf run "$OUT/run-$r.json" "$RUNS" "$(cmd "$r" run --bundle "$WORK/true" b-run)"
    record "run-$r" "$OUT/run-$r.json"
    # run under podman's default seccomp profile
    hf seccomp "$OUT/seccomp-$r.json" "$RUNS" "$(cmd "$r" run --bundle "$WORK/seccomp" b-scmp)"
    record "seccomp-$r" "$OUT/seccomp-$r.json"
    # create, start and delete apart
    hf create "$OUT/create-$r.json" "$RUNS" \
        --prepare "$(cmd "$r" delete --force b-ph)" \
        "$(cmd "$r" create --bundle "$WORK/true" b-ph)"
    record "create-$r" "$OUT/create-$r.json"
    hf start "$OUT/start-$r.json" "$RUNS" \
        --prepare "sh -c '$(cmd "$r" delete --force b-ph); $(cmd "$r" create --bundle "$WORK/true" b-ph)'" \
        "$(cmd "$r" start b-ph)"
    record "start-$r" "$OUT/start-$r.json"
    hf delete "$OUT/delete-$r.json" "$RUNS" \
        --prepare "sh -c '$(cmd "$r" delete --force b-ph); $(cmd "$r" create --bundle "$WORK/true" b-ph) && $(cmd "$r" start b-ph) && sleep 0.01'" \
        "$(cmd "$r" delete b-ph)"
    record "delete-$r" "$OUT/delete-$r.json"
    # 100 containers in a row
    hf row "$OUT/row100-$r.json" 3 \
        "sh -c 'for i in \$(seq 100); do $(cmd "$r" run --bundle "$WORK/true" b-row) || exit 1; done'"
    record "row100-$r" "$OUT/row100-$r.json"
    # exec into a running container
    $(cmd "$r" run -d --bundle "$WORK/sleep" b-exec) </dev/null >/dev/null 2>&1
    hf exec "$OUT/exec-$r.json" "$RUNS" "$(cmd "$r" exec b-exec /bin/true)"
    record "exec-$r" "$OUT/exec-$r.json"
    $(cmd "$r" delete --force b-exec) >/dev/null 2>&1 || true
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
