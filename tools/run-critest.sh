#!/bin/sh
# Runs cri-tools' critest (built by hand outside this repository: docs/cri.md)
# against a private berthd, everything in a network namespace of its own:
# a loopback docker-registry with the stand-in images of
# tools/critest-images.sh, berthd mirroring registry.k8s.io, gcr.io and
# docker.io to it, a bridge CNI network for pods, and critest itself (it
# dials the streaming URLs on 127.0.0.1 of the runtime's namespace).
#
# usage: tools/run-critest.sh CRITEST [critest flags...]
#   the benchmark specs: ... CRITEST -benchmark -benchmarking-params-file tools/critest-bench.yml
# env: BERTH_TARGET (a directory with berthd, berth-shim and berth; default
# target/debug), WORK (default /tmp/berth-critest)
set -eu
critest=$(realpath "$1")
shift
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BERTH_TARGET:-$here/target/debug}
work=${WORK:-/tmp/berth-critest}
if [ -z "${BERTH_CRITEST_INSIDE:-}" ]; then
    rm -rf "$work" && mkdir -p "$work"
    # Fetched out here: the namespace has no route out.
    (cd "$work" && apt-get download -q nginx busybox >/dev/null 2>&1) || { echo "apt-get download nginx busybox failed" >&2; exit 1; }
    touch "$work/netns"
    unshare --net="$work/netns" true
    trap 'umount "$work/netns" 2>/dev/null; rm -f "$work/netns"' EXIT
    BERTH_CRITEST_INSIDE=1 nsenter --net="$work/netns" "$0" "$critest" "$@"
    exit $?
fi
ip link set lo up
port=5000
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 100); do nc -z 127.0.0.1 $port 2>/dev/null && break; sleep 0.1; done
"$here/tools/critest-images.sh" "127.0.0.1:$port" "$(ls "$work"/nginx_*.deb)" "$(ls "$work"/busybox_*.deb)" >"$work/images.log" 2>&1 || { cat "$work/images.log"; exit 1; }
mkdir -p "$work/net.d"
cat > "$work/net.d/10-critest.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "critest", "plugins": [
  {"type": "bridge", "bridge": "critest0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$work/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
cat > "$work/berthd.toml" <<TOML
registry_mirrors = ["http://127.0.0.1:$port"]
[registries."registry.k8s.io"]
mirrors = ["http://127.0.0.1:$port"]
[registries."gcr.io"]
mirrors = ["http://127.0.0.1:$port"]
[registries."public.ecr.aws"]
mirrors = ["http://127.0.0.1:$port"]
TOML
"$bin/berthd" --root "$work/root" --state "$work/state" --address "$work/berthd.sock" \
    --cri-address "$work/cri.sock" --cri-cni-conf-dir "$work/net.d" --cni-conf-dir "$work/berth-net.d" \
    --cgroup-parent /berth-critest --config "$work/berthd.toml" >"$work/berthd.log" 2>&1 &
bpid=$!
# At the end: berthd and the registry stopped, then whatever pods critest
# left: their namespace holders (found by the namespaces pinned under
# $work) killed and every mount under $work detached.
cleanup() {
    kill $bpid $regpid 2>/dev/null
    wait $bpid 2>/dev/null
    for pin in "$work"/state/pods/*/ns/ipc "$work"/state/pods/*/ns/pid "$work"/state/pods/*/ns/user; do
        [ -e "$pin" ] || continue
        ino=$(stat -L -c %i "$pin" 2>/dev/null) || continue
        for p in /proc/[0-9]*; do
            [ "$(stat -L -c %i "$p/ns/${pin##*/}" 2>/dev/null)" = "$ino" ] && kill -9 "${p#/proc/}" 2>/dev/null
        done
    done
    awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$work/cri.sock" ] && break; sleep 0.05; done
"$critest" --runtime-endpoint "unix://$work/cri.sock" --image-endpoint "unix://$work/cri.sock" "$@"
