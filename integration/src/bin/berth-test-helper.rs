//! A helper that tests copy into a container's rootfs for what busybox
//! cannot do: `berth-test-helper notify MESSAGE` sends MESSAGE as one
//! datagram to $NOTIFY_SOCKET, as sd_notify(3) does.

use std::os::unix::net::UnixDatagram;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("notify") => {
            let path = std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET is not set");
            let msg = args.get(2).expect("usage: notify MESSAGE");
            let s = UnixDatagram::unbound().expect("socket");
            s.send_to(msg.as_bytes(), &path)
                .unwrap_or_else(|e| panic!("send to {path}: {e}"));
        }
        _ => {
            eprintln!("usage: berth-test-helper notify MESSAGE");
            std::process::exit(2);
        }
    }
}
