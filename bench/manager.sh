#!/usr/bin/env bash
# Manager benchmarks: berthd against containerd 1.6 in the same run.
#  - a cold pull (empty store; fetch, verify, unpack into overlay snapshots)
#    of a multi-layer image from Debian's docker-registry on 127.0.0.1:
#    `berthctl pull` against `ctr pull --plain-http` (hyperfine, medians);
#  - a push of that image to an empty registry: `berthctl push` against
#    `skopeo copy` from the OCI layout (the registry's storage is wiped
#    before each run, so every blob is uploaded);
#  - idle RSS and PSS of each daemon with the image in its store.
#
# usage: bench/manager.sh BERTHD BERTHCTL OUT_DIR [RUNS]
set -euo pipefail

BERTHD=$(realpath "$1")
BERTHCTL=$(realpath "$2")
OUT=$(realpath -m "$3")
RUNS=${4:-10}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/berth-bench-mgr.XXXXXX)
PIDS=()
NS=berth-bench-$$
cleanup() {
    set +e
    # Only the daemons this script started.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    umount -R "$WORK" 2>/dev/null
    rm -rf "$WORK"
}
# (ctr only pulls here: no task, so no cgroup is made.)
trap cleanup EXIT

# A 5-layer image: busybox, then four layers of 4 MB of random bytes each.
L=$WORK/layout
umoci init --layout "$L" >/dev/null
umoci new --image "$L:many" >/dev/null
umoci unpack --image "$L:many" "$WORK/b" >/dev/null
cp -a "$(dirname "$0")/../.cache/bundle/rootfs/." "$WORK/b/rootfs/" 2>/dev/null || cp -a /tmp/berth-it-rootfs/. "$WORK/b/rootfs/"
umoci repack --refresh-bundle --image "$L:many" "$WORK/b" >/dev/null
for i in 1 2 3 4; do
    head -c 4000000 /dev/urandom >"$WORK/b/rootfs/blob$i"
    umoci repack --refresh-bundle --image "$L:many" "$WORK/b" >/dev/null
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REG=127.0.0.1:$port
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REG
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
skopeo copy --quiet --dest-tls-verify=false "oci:$L:many" "docker://$REG/many:v1"
IMG=$REG/many:v1

# The push target: a second registry, emptied before each push.
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PREG=127.0.0.1:$pport
sed -e "s|$WORK/registry|$WORK/pushreg|" -e "s|$REG|$PREG|" "$WORK/registry.yml" >"$WORK/pushreg.yml"
docker-registry serve "$WORK/pushreg.yml" >"$WORK/pushreg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$pport") 2>/dev/null && break; sleep 0.05; done

"$BERTHD" --root "$WORK/berthd/root" --state "$WORK/berthd/state" --address "$WORK/berthd.sock" --cni-conf-dir "$WORK/net.d" --cri-address "$WORK/cri.sock" 2>"$WORK/berthd.log" &
BPID=$!
PIDS+=($BPID)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
start_containerd "$WORK/ctrd"
CPID=$CTRD_PID
PIDS+=($CPID)
for _ in $(seq 200); do [ -S "$WORK/berthd.sock" ] && [ -S "$WORK/ctrd/c.sock" ] && break; sleep 0.05; done
B="$BERTHCTL --address $WORK/berthd.sock"
C="ctr -a $WORK/ctrd/c.sock -n $NS"

hyperfine -N --style none -w 1 -r "$RUNS" --export-json "$OUT/pull.json" \
    --prepare "$B image prune --all" -n "berthctl pull" "$B pull $IMG" \
    --prepare "sh -c '$C images rm --sync $IMG >/dev/null 2>&1; true'" -n "ctr pull" "$C images pull --plain-http $IMG" >/dev/null

$B tag "$IMG" "$PREG/many:v1" >/dev/null
hyperfine -N --style none -w 1 -r "$RUNS" --export-json "$OUT/push.json" \
    --prepare "rm -rf $WORK/pushreg/docker" -n "berthctl push" "$B push -q $PREG/many:v1" \
    --prepare "rm -rf $WORK/pushreg/docker" -n "skopeo copy" "skopeo copy --quiet --dest-tls-verify=false oci:$L:many docker://$PREG/many:v1" >/dev/null

mem() { awk '/^Rss:/{r=$2} /^Pss:/{p=$2} END{printf "%.2f %.2f\n", r/1024, p/1024}' "/proc/$1/smaps_rollup"; }
sleep 1
read -r brss bpss < <(mem "$BPID")
read -r crss cpss < <(mem "$CPID")

python3 - "$OUT/pull.json" "$brss" "$bpss" "$crss" "$cpss" "$OUT/push.json" <<'PY' | tee "$OUT/results-manager.md"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
b, c = r["berthctl pull"], r["ctr pull"]
print("| measurement | berthd | containerd 1.6 | berthd/containerd |")
print("|---|---|---|---|")
print("| cold pull + unpack, 5 layers (17 MB), wall ms (median) | %.1f | %.1f | %.2f |" % (b["median"]*1e3, c["median"]*1e3, b["median"]/c["median"]))
br, bp, cr, cp = map(float, sys.argv[2:6])
print("| daemon RSS MiB, idle after the pulls | %.2f | %.2f | %.2f |" % (br, cr, br/cr))
print("| daemon PSS MiB | %.2f | %.2f | %.2f |" % (bp, cp, bp/cp))
p = {x["command"]: x for x in json.load(open(sys.argv[6]))["results"]}
b, s = p["berthctl push"], p["skopeo copy"]
print()
print("| measurement | berthctl push | skopeo copy | berth/skopeo |")
print("|---|---|---|---|")
print("| push to an empty registry, 5 layers (17 MB), wall ms (median) | %.1f | %.1f | %.2f |" % (b["median"]*1e3, s["median"]*1e3, b["median"]/s["median"]))
PY
