# Berth — build, demo and tests. Run as root on Debian 12 (bookworm).
CARGO   ?= cargo
TARGET  ?= $(CURDIR)/target
# Release binaries are static (glibc's crt-static): no dynamic loader at each
# exec, and no shared-library pages in each long-lived shim's RSS. A --target
# build keeps crt-static off the proc-macros and build scripts. They stay
# position-independent (ASLR); packed relative relocations (DT_RELR, glibc
# 2.36 and binutils 2.38 on) shrink the 270 KB relocation table static-pie
# startup reads in full on each exec to 4 KB: 0.3 MiB less peak RSS a `run`.
STATIC_RUSTFLAGS := -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs
HOST    := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
RELDIR  := $(TARGET)/$(HOST)/release
# The runtime is linked against musl where rustup has (or can add) its
# target, else against glibc, static either way. A static glibc binary
# probes the CPU and its caches at every start: over 60 CPUID instructions,
# each a trap to the hypervisor in a VM (about 15 us here), and berth starts
# twice a container (the re-exec that protects its binary). musl does not:
# `run` took 30 % less time and 0.7 MiB less peak RSS (docs/benchmarks.md).
MUSL_TARGET := $(subst -gnu,-musl,$(HOST))
RUNTIME_TARGET = $(if $(shell rustup target list --installed 2>/dev/null | grep -x '$(MUSL_TARGET)'),$(MUSL_TARGET),$(HOST))
BERTH    = $(TARGET)/$(RUNTIME_TARGET)/release/berth
CACHE   := $(CURDIR)/.cache
BUNDLE  := $(CACHE)/bundle
APT_PKGS := busybox-static ca-certificates protobuf-compiler libprotobuf-dev containernetworking-plugins iptables uidmap umoci skopeo docker-registry apache2-utils python3-cryptography containerd podman conmon golang-github-containers-common docker.io buildah

BENCH_PKGS := hyperfine time runc crun python3 golang-github-containers-common conmon containerd docker-registry skopeo umoci buildah
BENCH_RUNS ?= 60

# Pure cgroup v2 runs in a throw-away qemu guest (Debian's kernel booted with
# cgroup_no_v1=all), through the team's runner beside the repository.
VM_RUNNER ?= $(CURDIR)/../shared/vm/run-in-vm.sh
VM_PKGS := qemu-system-x86 linux-image-amd64 xz-utils
V2_TESTS := cgroups runtime rootfs rootless exec seccomp shim shim_api

# The systemd cgroup driver runs in a throw-away qemu guest whose PID 1 is
# systemd: a Debian root made once by debootstrap into .cache/systemd-guest,
# booted with the same Debian kernel (tools/systemd-vm).
SYSTEMD_PKGS := qemu-system-x86 qemu-utils linux-image-amd64 debootstrap e2fsprogs
SYSTEMD_TESTS := systemd

.PHONY: all deps musl-target build release install image bundle demo test unit integration lint bench test-cgroupv2 test-systemd clean

all: build

# System packages the project needs (installed only when missing).
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build:
	$(CARGO) build --workspace

# The musl target for the runtime, when rustup can add it (see RUNTIME_TARGET).
musl-target:
	@rustup target list --installed 2>/dev/null | grep -qx '$(MUSL_TARGET)' \
		|| timeout 300 rustup target add '$(MUSL_TARGET)' \
		|| echo "rustup cannot add $(MUSL_TARGET): berth is built against glibc"

release: musl-target
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --target $(RUNTIME_TARGET) -p berth
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" $(CARGO) build --release --target $(HOST) -p berth-shim
	@# berthd and berthctl stay dynamic: a static glibc cannot resolve registry host names through NSS.
	$(CARGO) build --release -p berth-manager -p berthctl

# The release binaries into $(PREFIX)/bin, with `containerd-shim-berth-v2`
# (berth-shim under containerd's name: containerd runs it for the runtime
# type io.containerd.berth.v2).
PREFIX ?= /usr/local
install: release
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BERTH) $(RELDIR)/berth-shim $(MGR)/berthd $(MGR)/berthctl $(DESTDIR)$(PREFIX)/bin/
	ln -sf berth-shim $(DESTDIR)$(PREFIX)/bin/containerd-shim-berth-v2

# The embedded default image: busybox from Debian's busybox-static as an OCI
# image archive, so the demo works offline.
IMAGE := $(CACHE)/busybox-oci.tar
$(IMAGE): tools/mk-busybox-image.sh
	@mkdir -p $(CACHE)
	tools/mk-busybox-image.sh $@
image: deps $(IMAGE)

# A busybox bundle from Debian's busybox-static: rootfs with applet links,
# config.json from `berth spec`, the process set to print from inside.
bundle: deps release
	rm -rf $(BUNDLE) && mkdir -p $(BUNDLE)/rootfs/bin
	cd $(BUNDLE)/rootfs && mkdir -p proc sys dev etc tmp root
	cp /bin/busybox $(BUNDLE)/rootfs/bin/busybox
	for a in $$(/bin/busybox --list); do [ "$$a" = busybox ] || ln -s busybox $(BUNDLE)/rootfs/bin/$$a; done
	$(BERTH) spec --bundle $(BUNDLE)
	printf 'root:x:0:0:root:/root:/bin/sh\n' > $(BUNDLE)/rootfs/etc/passwd
	printf 'root:x:0:\n' > $(BUNDLE)/rootfs/etc/group
	sed -i -e 's/"terminal": true/"terminal": false/' \
	    -e '/"args": \[/,/\]/c\    "args": ["sh", "-c", "echo hello from inside a berth container: hostname $$(hostname), pid $$$$, user $$(id -un)"],' \
	    $(BUNDLE)/config.json

# The main job: build, make the bundle and run it with berth; then the whole
# stack: start berthd in the background with its defaults (unless one already
# serves), import the embedded busybox image, run a container through it.
MGR := $(TARGET)/release
BERTHD_SOCK := /run/berth/berthd.sock
demo: bundle image
	$(BERTH) --root $(CACHE)/state run --bundle $(BUNDLE) demo-$$$$
	@# Ready means answering: a socket file alone may be left by a berthd that
	@# was killed, and stays there until the new one replaces it.
	@if ! $(MGR)/berthctl ps >/dev/null 2>&1; then \
		setsid $(MGR)/berthd --shim $(RELDIR)/berth-shim --runtime $(BERTH) </dev/null >$(CACHE)/berthd.log 2>&1 & \
		pid=$$!; \
		echo "berthd started in the background: pid $$pid, socket $(BERTHD_SOCK), log $(CACHE)/berthd.log"; \
		for i in $$(seq 600); do \
			$(MGR)/berthctl ps >/dev/null 2>&1 && break; \
			kill -0 $$pid 2>/dev/null || { echo "berthd exited:"; cat $(CACHE)/berthd.log; exit 1; }; \
			sleep 0.05; \
		done; \
	fi
	$(MGR)/berthctl import --base-name berth/busybox $(IMAGE)
	@# --net none: the demo leaves the machine's own network alone (bridge, the
	@# default, would add a bridge device and iptables rules to the host).
	$(MGR)/berthctl run --rm --net none berth/busybox sh -c 'echo "hello from inside a berthd container: hostname $$(hostname), pid $$$$, user $$(id -un)"'

unit:
	$(CARGO) test --workspace --lib --bins

integration: deps
	$(CARGO) build -p berth -p berth-shim -p berth-manager -p berthctl
	$(CARGO) test -p berth-integration -- --test-threads=4

# The tests, between the two halves of the leak audit: whatever they leave
# on the host (mounts, cgroups, netns, links, iptables rules, processes,
# state directories) fails the run, named (tools/leak-audit.sh).
test: deps
	$(CARGO) build -p berth -p berth-shim -p berth-manager -p berthctl
	@mkdir -p $(CACHE) && tools/leak-audit.sh snapshot $(CACHE)/leak-audit.before
	$(CARGO) test --workspace -- --test-threads=4
	tools/leak-audit.sh compare $(CACHE)/leak-audit.before

# The runtime's integration tests again under pure cgroup v2: the test
# binaries, berth and the busybox rootfs are shared into the guest over 9p.
test-cgroupv2: deps
	@missing=""; for p in $(VM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	test -x $(VM_RUNNER) || { echo "no VM runner at $(VM_RUNNER) (set VM_RUNNER)"; exit 1; }
	$(CARGO) build -p berth -p berth-shim -p berth-manager -p berthctl
	$(CARGO) test -p berth-integration --no-run
	@# The shared busybox rootfs is built on the host (the guest's /tmp is its own).
	$(CARGO) test -p berth-integration --test runtime -- spec_features_version >/dev/null
	@# One test at a time: with two, the runtime suite once hung in the
	@# software-emulated guest (2026-11-23, not yet explained; alone it passes).
	cd integration && for t in $(V2_TESTS); do \
		bin=$$(ls -t $(TARGET)/debug/deps/$$t-* | grep -v '\.d$$' | head -1); \
		echo "== $$t under cgroup v2"; \
		$(VM_RUNNER) -t 900 -m 2048 -s $(TARGET) -s /tmp/berth-it-rootfs \
			-e BERTH_BIN=$(TARGET)/debug/berth -- $$bin --test-threads=1 || exit 1; \
	done

# The systemd driver's suite in the systemd guest (each binary one boot).
test-systemd: deps
	@missing=""; for p in $(SYSTEMD_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(CARGO) build -p berth -p berth-shim -p berth-manager -p berthctl
	$(CARGO) test -p berth-integration --no-run
	tools/systemd-vm/build-image.sh >/dev/null
	cd integration && for t in $(SYSTEMD_TESTS); do \
		bin=$$(ls -t $(TARGET)/debug/deps/$$t-* | grep -v '\.d$$' | head -1); \
		echo "== $$t with systemd as PID 1"; \
		../tools/systemd-vm/run.sh -t 1200 -s $(CURDIR) -s $(TARGET) -- $$bin --test-threads=1 || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Benchmarks against runc and crun in the same run (see docs/benchmarks.md).
bench: bundle image
	@missing=""; for p in $(BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(CARGO) build --release -p berth-integration --bin berth-bench-shim --bin berth-bench-cri
	bench/run.sh $(BERTH) $(BUNDLE)/rootfs $(CACHE)/bench $(BENCH_RUNS)
	bench/shim.sh $(BERTH) $(RELDIR)/berth-shim $(TARGET)/release/berth-bench-shim $(BUNDLE)/rootfs $(CACHE)/bench $(BENCH_RUNS)
	bench/manager.sh $(MGR)/berthd $(MGR)/berthctl $(CACHE)/bench 10
	bench/stack.sh $(MGR)/berthd $(MGR)/berthctl $(RELDIR)/berth-shim $(BERTH) $(IMAGE) $(CACHE)/bench 20
	bench/shim_v2.sh $(BERTH) $(RELDIR)/berth-shim $(IMAGE) $(CACHE)/bench 20
	bench/build.sh $(MGR)/berthd $(MGR)/berthctl $(RELDIR)/berth-shim $(BERTH) $(IMAGE) $(CACHE)/bench 10
	bench/cri.sh $(MGR)/berthd $(MGR)/berthctl $(RELDIR)/berth-shim $(BERTH) $(TARGET)/release/berth-bench-cri $(IMAGE) $(CACHE)/bench 20

clean:
	$(CARGO) clean
	rm -rf $(CACHE)
