//! Running under a service manager: with `NOTIFY_SOCKET` set (systemd's
//! `Type=notify`), the node says READY once it serves (its tunnels
//! listen) and STOPPING when asked to stop.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{loopback_pair, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("no notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let (_server, client_config) =
        loopback_pair(dir.path(), FAST, "t = 127.0.0.1:0:127.0.0.1:9:{id}\n");
    let notify = path.display().to_string();
    let mut client = Node::start_with(
        None,
        &[("NOTIFY_SOCKET", &notify)],
        "client",
        &client_config,
        "client",
    );
    let ready = next_message(&socket);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=serving as {}", client.id)),
        "{ready:?}"
    );
    // Ready means serving: the tunnel listened before the notification.
    client.wait_for(&["told the service manager", "READY=1"], WAIT);
    let log = client.log_text();
    let listening = log.find("tunnel listening").expect("no tunnel listening");
    let told = log.find("told the service manager").unwrap();
    assert!(listening < told, "READY before the tunnel listened:\n{log}");
    std::net::TcpStream::connect(client.tunnel_addr()).unwrap();

    let code = client.signal_and_wait(libc::SIGTERM, Duration::from_secs(1));
    assert_eq!(code, Some(0));
    assert_eq!(next_message(&socket), "STOPPING=1\n");
}
