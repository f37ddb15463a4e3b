#!/bin/sh
# Builds, offline from Debian's packages, stand-ins for the images cri-tools'
# critest runs, and pushes them to a registry on loopback under the paths
# critest names them by (registry.k8s.io/e2e-test-images/..., and
# gcr.io/k8s-staging-cri-tools/...); berthd reaches them through its
# registry mirrors (docs/cri.md). They behave as the real ones where critest
# looks: busybox with ipcs, pgrep and netstat; nginx writing
# /var/run/nginx.pid with a "master process"; users and groups as upstream.
#
# usage: tools/critest-images.sh HOST:PORT [NGINX_DEB [BUSYBOX_DEB]]
# needs: umoci, skopeo, busybox-static, util-linux, procps, a C compiler with
# a static libc (gcc, libc6-dev: the setuid test program), and Debian's
# nginx and busybox .debs (given, or fetched with apt-get download; unpacked
# here, not installed: no service starts).
set -eu
reg=$1
nginx_deb=${2:-}
busybox_deb=${3:-}
work=$(mktemp -d /tmp/berth-critest-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The libraries FILE loads, at their own paths in ROOTFS.
add_libs() {
    rootfs=$1 file=$2
    LD_LIBRARY_PATH= ldd "$file" | awk '/=>/ {print $3} /^\t\// {print $1}' | while read -r lib; do
        [ -n "$lib" ] || continue
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}

# A binary (under LIBROOT, else the host's) and its libraries, at its path.
add_binary() {
    rootfs=$1 bin=$2 libroot=${3:-}
    mkdir -p "$rootfs$(dirname "$bin")"
    cp "$libroot$bin" "$rootfs$bin"
    add_libs "$rootfs" "$libroot$bin"
}

# The busybox base every image starts from, as an unpacked bundle.
base() {
    name=$1
    umoci init --layout "$work/$name"
    umoci new --image "$work/$name:latest"
    umoci unpack --image "$work/$name:latest" "$work/$name.bundle" >/dev/null
    r="$work/$name.bundle/rootfs"
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root" "$r/var/run" "$r/home"
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    # Hard links, as upstream's busybox image has them: masking one applet
    # (critest masks /bin/ls) must not mask the others.
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -f "$r/bin/busybox" "$r/bin/$a"; done
    cat > "$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat > "$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
EOF
}

# Repacks image NAME, then sets its config: the defaults, then CONFIG (one
# string of umoci config flags; repack would drop a config set before it).
finish() {
    name=$1 config=$2
    umoci repack --image "$work/$name:latest" "$work/$name.bundle" >/dev/null
    eval "umoci config --image \"\$work/\$name:latest\" \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $config"
}

# Pushes image NAME as each of the given repository:tag.
push() {
    name=$1
    shift
    for dest in "$@"; do
        skopeo copy --quiet --dest-tls-verify=false "oci:$work/$name:latest" "docker://$reg/$dest"
    done
}

k8s=e2e-test-images
cri=k8s-staging-cri-tools

# busybox with the procps and util-linux tools critest calls, and Debian's
# dynamic busybox as /bin/sh: busybox-static's sh runs applets inside
# itself, so a masked /bin/ls would still run from it; this one execs them,
# as upstream's busybox image does, and words its errors the same.
if [ -z "$busybox_deb" ]; then
    (cd "$work" && apt-get download -q busybox >/dev/null 2>&1) || { echo "apt-get download busybox failed" >&2; exit 1; }
    busybox_deb=$(ls "$work"/busybox_*.deb)
fi
mkdir -p "$work/busybox-deb"
dpkg-deb -x "$busybox_deb" "$work/busybox-deb"
base busybox
add_binary "$work/busybox.bundle/rootfs" /usr/bin/ipcs
add_binary "$work/busybox.bundle/rootfs" /usr/bin/pgrep
rm -f "$work/busybox.bundle/rootfs/bin/pgrep" "$work/busybox.bundle/rootfs/bin/sh"
cp "$work/busybox-deb/bin/busybox" "$work/busybox.bundle/rootfs/bin/sh"
add_libs "$work/busybox.bundle/rootfs" "$work/busybox-deb/bin/busybox"
finish busybox "--config.cmd sh"
push busybox "$k8s/busybox:1.29-2" "library/busybox:1.29-2"
# The image benchmarks' list (public.ecr.aws/docker/library/busybox:...).
push busybox docker/library/busybox:1.35.0-glibc docker/library/busybox:1-uclibc \
    docker/library/busybox:1 docker/library/busybox:1-glibc docker/library/busybox:1-musl

# nginx, from Debian's package unpacked (not installed: no service starts).
deb=$work/nginx-deb
mkdir -p "$deb"
if [ -z "$nginx_deb" ]; then
    (cd "$work" && apt-get download -q nginx >/dev/null 2>&1) || { echo "apt-get download nginx failed" >&2; exit 1; }
    nginx_deb=$(ls "$work"/nginx_*.deb)
fi
dpkg-deb -x "$nginx_deb" "$deb"
for n in nginx hostnet-nginx; do
    port=80
    [ "$n" = hostnet-nginx ] && port=12003
    base "$n"
    r="$work/$n.bundle/rootfs"
    add_binary "$r" /usr/sbin/nginx "$deb"
    mkdir -p "$r/etc/nginx" "$r/var/log/nginx" "$r/var/lib/nginx" "$r/usr/share/nginx/html"
    echo "<html><body>berth critest nginx</body></html>" > "$r/usr/share/nginx/html/index.html"
    cat > "$r/etc/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
pid /var/run/nginx.pid;
error_log /dev/stderr;
events { worker_connections 64; }
http {
    access_log /dev/stdout;
    client_body_temp_path /tmp;
    proxy_temp_path /tmp;
    fastcgi_temp_path /tmp;
    uwsgi_temp_path /tmp;
    scgi_temp_path /tmp;
    server {
        listen $port;
        location / { root /usr/share/nginx/html; index index.html; }
    }
}
EOF
    finish "$n" "--config.entrypoint nginx --config.entrypoint -g --config.entrypoint 'daemon off;' \
        --config.exposedports $port/tcp"
done
push nginx "$k8s/nginx:1.14-2"
push hostnet-nginx "$cri/hostnet-nginx-amd64"

# httpd: busybox's, serving a page as Apache's default one.
base httpd
mkdir -p "$work/httpd.bundle/rootfs/www"
echo "<html><body><h1>It works!</h1></body></html>" > "$work/httpd.bundle/rootfs/www/index.html"
# Apache logs its command line at start; critest looks for it in the log
# ("httpd" in v1.32, "httpd -D FOREGROUND" in v1.26).
finish httpd "--config.entrypoint sh --config.entrypoint -c \
    --config.entrypoint 'echo \"httpd: AH00094: Command line: httpd -D FOREGROUND\"; exec httpd -f -p 80 -h /www'"
push httpd "$k8s/httpd:2.4.39-4"

# nonewprivs: a setuid-root program that prints its effective uid, run as
# uid 1000 (0 unless no_new_privs stops the escalation).
base nonewprivs
printf '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("Effective uid: %%d\\n", (int)geteuid()); return 0; }\n' > "$work/nnp.c"
mkdir -p "$work/nonewprivs.bundle/rootfs/usr/local/bin"
cc -static -O2 -o "$work/nonewprivs.bundle/rootfs/usr/local/bin/nnp" "$work/nnp.c"
chmod 4755 "$work/nonewprivs.bundle/rootfs/usr/local/bin/nnp"
finish nonewprivs "--config.entrypoint /usr/local/bin/nnp --config.user 1000"
push nonewprivs "$k8s/nonewprivs:1.3"

# Images that differ only by one file (their ids differ), or are the same.
for t in test-image-latest test-image-tag:test test-image-tag:all test-image-1:latest test-image-2:latest test-image-3:latest; do
    n=$(echo "$t" | tr ':' '-')
    base "$n"
    echo "$t" > "$work/$n.bundle/rootfs/$(echo "$t" | tr ':' '-')"
    case $t in *:*) dest=$t ;; *) dest=$t:latest ;; esac
    finish "$n" "--config.cmd sh"
    push "$n" "$cri/$dest"
done
base same
echo same-image > "$work/same.bundle/rootfs/same-image"
finish same "--config.cmd sh"
push same "$cri/test-image-tags:1" "$cri/test-image-tags:2" "$cri/test-image-tags:3"

# Users, as upstream's image-user and image-predefined-group.
for u in "test-image-user-uid 1002" "test-image-user-username www-data" \
         "test-image-user-uid-group 1003:1004" "test-image-user-username-group www-data:1004"; do
    set -- $u
    base "$1"
    finish "$1" "--config.cmd sh --config.user $2"
    push "$1" "$cri/$1:latest"
done
base predefined
echo "default-user:x:1000:1000::/home/default-user:/bin/sh" >> "$work/predefined.bundle/rootfs/etc/passwd"
printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >> "$work/predefined.bundle/rootfs/etc/group"
mkdir -p "$work/predefined.bundle/rootfs/home/default-user"
finish predefined "--config.cmd sh --config.user 1000"
push predefined "$cri/test-image-predefined-group:latest"
echo "pushed the critest images to $reg"
