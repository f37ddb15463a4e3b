# Shared by the bench scripts (sourced).

# bundle DIR BERTH ROOTFS ARGS_JSON: `berth spec` in DIR, then the process set
# to ARGS_JSON without a terminal, on ROOTFS read-only.
bundle_at() {
    mkdir -p "$1"
    "$2" spec --bundle "$1"
    python3 - "$1/config.json" "$3" "$4" <<'PY'
import json, sys
path, rootfs, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=1)
PY
}

# start_containerd DIR: a private containerd 1.6 (root, state and sockets in
# DIR, CRI off), in the background; its pid in CTRD_PID, its socket DIR/c.sock.
start_containerd() {
    mkdir -p "$1"
    cat >"$1/config.toml" <<EOF2
version = 2
root = "$1/root"
state = "$1/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$1/c.sock"
[ttrpc]
  address = "$1/t.sock"
EOF2
    containerd --config "$1/config.toml" >"$1/log" 2>&1 &
    CTRD_PID=$!
    for _ in $(seq 200); do [ -S "$1/c.sock" ] && break; sleep 0.05; done
}
