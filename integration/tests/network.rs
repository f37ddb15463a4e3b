//! Container networking through CNI (Debian's containernetworking-plugins):
//! the default bridge network, published ports, user networks, the /etc
//! files, and teardown after rm, a killed berthd and a killed shim. Each
//! test's berthd runs in a network namespace the test made, so the bridges,
//! veths, iptables rules and addresses all live there; traffic goes only to
//! those addresses or that namespace's loopback.

use std::collections::BTreeSet;
use std::fs;

use berth_integration::stack::{code, wait_until, NetNs, Stack};
use berth_integration::{ok, stderr, stdout};

fn net(s: &Stack) -> &NetNs {
    s.net.as_ref().expect("a private network namespace")
}

fn ip_of(s: &Stack, id: &str) -> String {
    let ip = s.inspect(id)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!ip.is_empty(), "{id} has no address");
    ip
}

/// `nc HOST PORT` from the test's namespace (busybox), retried while the
/// listener comes up; its output.
fn nc_from_host(s: &Stack, host: &str, port: u16) -> String {
    let mut out = String::new();
    wait_until(&format!("{host}:{port} to answer"), 20, || {
        let o = net(s).run(&["timeout", "3", "busybox", "nc", host, &port.to_string()]);
        out = stdout(&o);
        !out.is_empty()
    });
    out
}

/// Leases host-local holds (one file per address).
fn leases(s: &Stack) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = s.dir.join("berthd/root/net/ipam");
    for n in fs::read_dir(&dir).into_iter().flatten().flatten() {
        for f in fs::read_dir(n.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name != "lock" && !name.starts_with("last_reserved_ip") {
                out.insert(format!("{}/{name}", n.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// What a network leak would show: links, iptables rules, leases.
fn network_state(s: &Stack) -> (Vec<String>, Vec<String>, BTreeSet<String>) {
    (net(s).links(), net(s).iptables(), leases(s))
}

#[test]
fn bridge_containers_reach_each_other_and_published_ports() {
    let s = Stack::new("nbridge");
    // The default network was written on first start.
    let ls = s.ctl_ok(&["network", "ls"]);
    assert!(
        ls.contains("bridge") && ls.contains("10.210.0.0/16"),
        "{ls}"
    );
    s.ctl_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "18080:80",
        "-p",
        "127.0.0.1::81",
        "berth/busybox",
        "sh",
        "-c",
        "while true; do echo hello-from-web | nc -l -p 80; done",
    ]);
    let web = ip_of(&s, "web");
    assert!(web.starts_with("10.210."), "{web}");
    // The other container reaches web by address: ping and TCP.
    let out = s.ctl(&[
        "run",
        "--rm",
        "--name",
        "client",
        "berth/busybox",
        "sh",
        "-c",
        &format!(
            "ping -c 1 -W 5 {web} >/dev/null && echo ping-ok; \
             for i in $(seq 50); do nc {web} 80 2>/dev/null && break; sleep 0.1; done; \
             cat /etc/hostname; grep -w client /etc/hosts | cut -f1; ls /sys/class/net | sort | tr '\\n' ' '"
        ),
    ]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines[0], "ping-ok", "{text}");
    assert_eq!(lines[1], "hello-from-web", "{text}");
    assert_eq!(lines[2], "client", "{text}");
    assert!(lines[3].starts_with("10.210."), "{text}");
    assert_eq!(lines[4].trim(), "eth0 lo", "{text}");
    // The published port answers on the host's loopback and on its bridge address.
    assert_eq!(nc_from_host(&s, "127.0.0.1", 18080), "hello-from-web\n");
    assert_eq!(nc_from_host(&s, "10.210.0.1", 18080), "hello-from-web\n");
    // The port without a host port got one, shown by inspect and ps.
    let ports = &s.inspect("web")["NetworkSettings"]["Ports"];
    assert_eq!(ports["80/tcp"][0]["HostPort"], "18080");
    let chosen = ports["81/tcp"][0]["HostPort"].as_str().unwrap().to_string();
    assert_ne!(chosen, "0");
    let ps = s.ctl_ok(&["ps"]);
    assert!(
        ps.contains("0.0.0.0:18080->80/tcp") && ps.contains(&format!("127.0.0.1:{chosen}->81/tcp")),
        "{ps}"
    );
    // The container's own changes to the bound files stay out of a commit,
    // and the image had none of them: the committed image has none either.
    s.ctl_ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo 10.1.2.3 extra >> /etc/hosts; echo kept > /kept",
    ]);
    s.ctl_ok(&["commit", "web", "berth/committed"]);
    let out = s.ctl_ok(&[
        "run",
        "--rm",
        "--net",
        "none",
        "berth/committed",
        "sh",
        "-c",
        "cat /kept; grep -c extra /etc/hosts; ls /etc",
    ]);
    assert_eq!(
        out,
        "kept\n0\ngroup\nhostname\nhosts\npasswd\nresolv.conf\n"
    );
    let out = s.ctl_ok(&[
        "run",
        "--rm",
        "--net",
        "host",
        "berth/committed",
        "sh",
        "-c",
        "test -e /etc/hostname && echo hostname-leaked || echo clean",
    ]);
    assert_eq!(out, "clean\n");
    // Ports need a CNI network; unknown networks are named.
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "none",
        "-p",
        "80",
        "berth/busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("cannot be published"),
        "{}",
        stderr(&out)
    );
    let out = s.ctl(&["run", "--rm", "--net", "nope", "berth/busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("network nope not found"),
        "{}",
        stderr(&out)
    );
    s.ctl_ok(&["rm", "-f", "web"]);
    s.ctl_ok(&["rmi", "berth/committed"]);
    // After rm the port is closed and the rules are gone.
    let o = net(&s).run(&["timeout", "3", "busybox", "nc", "127.0.0.1", "18080"]);
    assert_eq!(stdout(&o), "");
    assert!(!net(&s).iptables().iter().any(|l| l.contains("18080")));
    assert!(leases(&s).is_empty(), "{:?}", leases(&s));
    s.assert_nothing_left();
}

#[test]
fn net_host_sees_the_hosts_interfaces() {
    let s = Stack::new("nhost");
    // One more interface in the "host" (the test's namespace) to tell them apart.
    ok(&net(&s).run(&["busybox", "ip", "link", "add", "berthit0", "type", "bridge"]));
    let out = s.ctl_ok(&[
        "run",
        "--rm",
        "--net",
        "host",
        "berth/busybox",
        "sh",
        "-c",
        "ip -o link | cut -d: -f2 | cut -d@ -f1 | tr -d ' ' | sort",
    ]);
    let inside: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(inside, net(&s).links());
    assert!(inside.contains(&"berthit0".to_string()), "{inside:?}");
    s.assert_nothing_left();
}

#[test]
fn network_create_inspect_and_rm() {
    let s = Stack::new("nuser");
    assert_eq!(
        s.ctl_ok(&["network", "create", "--subnet", "10.99.7.0/24", "backend"]),
        "backend\n"
    );
    let out = s.ctl(&["network", "create", "--subnet", "10.99.0.0/16", "clash"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("overlaps"), "{}", stderr(&out));
    let auto = s.ctl_ok(&["network", "create", "other"]);
    assert_eq!(auto, "other\n");
    let ls = s.ctl_ok(&["network", "ls"]);
    assert!(
        ls.contains("backend") && ls.contains("10.99.7.0/24") && ls.contains("10.211.0.0/16"),
        "{ls}"
    );
    s.ctl_ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "backend",
        "berth/busybox",
        "sleep",
        "600",
    ]);
    let ip = ip_of(&s, "db");
    assert!(ip.starts_with("10.99.7."), "{ip}");
    let v: serde_json::Value =
        serde_json::from_str(&s.ctl_ok(&["network", "inspect", "backend"])).unwrap();
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(v[0]["Containers"][0]["Name"], "db");
    assert_eq!(v[0]["Containers"][0]["IPAddresses"][0], ip.as_str());
    // A container on another network does not reach it; one on the same does.
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "other",
        "berth/busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &ip,
    ]);
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    let out = s.ctl(&[
        "run",
        "--rm",
        "--net",
        "backend",
        "berth/busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        &ip,
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // In use: refused; the default network: refused.
    let out = s.ctl(&["network", "rm", "backend"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("in use by container db"),
        "{}",
        stderr(&out)
    );
    let out = s.ctl(&["network", "rm", "bridge"]);
    assert!(stderr(&out).contains("default network"), "{}", stderr(&out));
    s.ctl_ok(&["rm", "-f", "db"]);
    let bridge = v[0]["Config"]["plugins"][0]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(net(&s).links().contains(&bridge));
    s.ctl_ok(&["network", "rm", "backend", "other"]);
    let ls = s.ctl_ok(&["network", "ls", "-q"]);
    assert_eq!(ls, "bridge\nhost\nnone\n");
    // Its bridge device went with it.
    assert!(!net(&s).links().contains(&bridge), "{:?}", net(&s).links());
    s.assert_nothing_left();
}

#[test]
fn no_network_resource_leaks_after_rm_crashes_and_killed_shims() {
    let mut s = Stack::new("nleak");
    // The baseline: after one container came and went, the bridge and the
    // plugins' shared chains exist; nothing of that container is left.
    s.ctl_ok(&["run", "--rm", "-p", "18081:80", "berth/busybox", "true"]);
    let before = network_state(&s);
    assert!(before.2.is_empty(), "{:?}", before.2);
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let port = format!("{}:80", 18090 + i);
        s.ctl_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &port,
            "berth/busybox",
            "sleep",
            "600",
        ]);
    }
    s.ctl_ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        "berth/busybox",
        "sh",
        "-c",
        "sleep 1",
    ]);
    assert_eq!(leases(&s).len(), 5);
    // berthd dies; meanwhile one container's shim is killed and another
    // container exits on its own.
    let bundles = s.dir.join("berthd/state/bundles/default");
    let shim_of = |id: &str| -> i32 {
        let bundle = bundles.join(id);
        fs::read_to_string(bundle.join("shim.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let shim_b = shim_of("b");
    s.d.take().unwrap().kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_b),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.start();
    // The dead shim's and the exited container's networking is torn down;
    // the others still answer.
    wait_until("b and quick to be torn down", 20, || leases(&s).len() == 3);
    assert_eq!(s.inspect("b")["State"]["Status"], "exited");
    assert_eq!(s.inspect("quick")["State"]["Status"], "exited");
    let a = ip_of(&s, "a");
    let out = s.ctl(&[
        "run",
        "--rm",
        "berth/busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        &a,
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // A shim killed while berthd runs.
    let shim_c = shim_of("c");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_c),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("c to be torn down", 20, || leases(&s).len() == 2);
    // b restarts on the network with its port again.
    s.ctl_ok(&["start", "b"]);
    assert!(net(&s).iptables().iter().any(|l| l.contains("18091")));
    s.ctl_ok(&["rm", "-f", "a", "b", "c", "d", "quick"]);
    assert_eq!(network_state(&s), before);
    s.assert_nothing_left();
}

/// A host port one container publishes is refused to another, as docker's
/// "port is already allocated".
#[test]
fn a_published_host_port_is_not_given_twice() {
    let s = Stack::new("portdup");
    ok(&s.ctl(&[
        "run",
        "-d",
        "--name",
        "first",
        "-p",
        "18080:80",
        "berth/busybox",
        "sleep",
        "100",
    ]));
    let out = s.ctl(&[
        "run",
        "-d",
        "--name",
        "second",
        "-p",
        "18080:80",
        "berth/busybox",
        "sleep",
        "100",
    ]);
    assert!(!out.status.success(), "both got port 18080");
    assert!(
        stderr(&out).contains("18080") && stderr(&out).contains("already allocated"),
        "{}",
        stderr(&out)
    );
    ok(&s.ctl(&["rm", "-f", "first", "second"]));
}
