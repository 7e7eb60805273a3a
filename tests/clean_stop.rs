//! SIGTERM (or Ctrl-C) stops a node cleanly: it tells every online friend
//! goodbye, so the friend closes our tunnels and marks us offline at once
//! with the reason in its log; it removes its control socket; it exits 0
//! within a second.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::traffic::echo_server;
use common::{write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 20s\n";

#[test]
fn sigterm_says_goodbye_removes_the_socket_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_config = write_config(dir.path(), "server", FAST);
    let mut server = Node::start("server", &server_config, "server");
    server.wait_for(&["control socket listening"], WAIT);
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{} = {}\n[client]\nt = 127.0.0.1:0:{echo}:{}\n",
            server.id,
            server.udp_addr(),
            server.id
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnels: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(client.tunnel_addr()).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream.write_all(b"ping").unwrap();
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).unwrap();
            stream
        })
        .collect();
    let socket = dir.path().join("server.key.sock");
    assert!(socket.exists());

    let code = server.signal_and_wait(libc::SIGTERM, Duration::from_secs(1));
    assert_eq!(code, Some(0), "no exit with code 0 within 1 s of SIGTERM");
    assert!(!socket.exists(), "the control socket was left behind");

    for mut stream in tunnels {
        let mut byte = [0u8; 1];
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let read = stream.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "a local connection stayed open: {read:?}"
        );
    }
    client.wait_for(
        &["friend offline", "peer stopping"],
        Duration::from_millis(100),
    );
    client.wait_for(
        &["tunnel closed", "peer stopping"],
        Duration::from_millis(100),
    );
}
