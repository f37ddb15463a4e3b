#!/usr/bin/env bash
# Image builds against buildah in the same run: one Dockerfile (COPY of a
# context of 200 files, two RUN steps, config steps) built over the busybox
# image, cold (`--no-cache`) and fully cached, by `berthctl build` and by
# Debian's buildah (`--isolation chroot`, vfs storage; `--layers` for its
# cache). RUN goes without a network in berth's build (`--network none`) and
# in the host's in buildah's (chroot isolation allows no other).
#
# usage: bench/build.sh BERTHD BERTHCTL BERTH_SHIM BERTH IMAGE_TAR OUT_DIR [RUNS]
set -euo pipefail

BERTHD=$(realpath "$1")
BERTHCTL=$(realpath "$2")
SHIM=$(realpath "$3")
BERTH=$(realpath "$4")
TAR=$(realpath "$5")
OUT=$(realpath -m "$6")
RUNS=${7:-10}
mkdir -p "$OUT"
# Lower case: buildah names an image pulled from a layout after its path.
WORK=/tmp/berth-bench-build-$$
rm -rf "$WORK"; mkdir -p "$WORK"
CG=berth-bench-build-$$
PIDS=()
cleanup() {
    set +e
    # Only the daemon this script started.
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    umount -R "$WORK" 2>/dev/null
    for d in /sys/fs/cgroup/*/"$CG"/* /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"/* /sys/fs/cgroup/"$CG"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BERTHD" --root "$WORK/berthd/root" --state "$WORK/berthd/state" --address "$WORK/berthd.sock" \
    --shim "$SHIM" --runtime "$BERTH" --cgroup-parent "/$CG" --cni-conf-dir "$WORK/net.d" --cri-address "$WORK/cri.sock" 2>"$WORK/berthd.log" &
PIDS+=($!)
for _ in $(seq 200); do [ -S "$WORK/berthd.sock" ] && break; sleep 0.05; done
B="$BERTHCTL --address $WORK/berthd.sock"
$B import --base-name berth/busybox "$TAR" >/dev/null
BH="buildah --root $WORK/buildah/root --runroot $WORK/buildah/run --storage-driver vfs"
mkdir -p "$WORK/layout"
tar -C "$WORK/layout" -xf "$TAR"
id=$($BH pull -q "oci:$WORK/layout:latest")
$BH tag "$id" docker.io/berth/busybox:latest

CTX=$WORK/ctx
mkdir -p "$CTX/src"
for i in $(seq 200); do head -c 5000 /dev/urandom >"$CTX/src/f$i"; done
cat >"$CTX/Dockerfile" <<'DF'
FROM berth/busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY src/ ./src/
RUN for i in $(seq 1 100); do echo $i > n$i; done
RUN cat src/* | wc -c > total
LABEL bench=yes
CMD ["cat", "total"]
DF

# One of each first, so a failure shows its message.
$B build -q --network none -t bench:v1 "$CTX" >/dev/null
$BH build --isolation chroot --layers -q -t bench:v1 "$CTX" >/dev/null

hyperfine -N --style none -w 1 -r "$RUNS" --export-json "$OUT/build.json" \
    -n "berthctl build (cold)" "$B build -q --no-cache --network none -t bench:v1 $CTX" \
    -n "buildah build (cold)" "$BH build --isolation chroot --no-cache -q -t bench:v1 $CTX" \
    -n "berthctl build (cached)" "$B build -q --network none -t bench:v1 $CTX" \
    -n "buildah build (cached)" "$BH build --isolation chroot --layers -q -t bench:v1 $CTX" >/dev/null

python3 - "$OUT/build.json" <<'PY' | tee "$OUT/results-build.md"
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
print("| measurement | berthctl build | buildah build | berth/buildah |")
print("|---|---|---|---|")
for kind in ("cold", "cached"):
    b, h = r[f"berthctl build ({kind})"], r[f"buildah build ({kind})"]
    print("| %s build, 8 steps, wall ms (median) | %.1f | %.1f | %.2f |" % (kind, b["median"]*1e3, h["median"]*1e3, b["median"]/h["median"]))
PY
