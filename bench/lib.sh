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
