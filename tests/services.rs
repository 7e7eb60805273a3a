//! Named services: the server's `[services] NAME = HOST:PORT` lets a
//! friend ask for the target by name (a four-field `[client]` line, or
//! `connect ID NAME`), and naming a service allows it whatever `allow`
//! says; an unknown name is refused with the reason.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::traffic::echo_server;
use common::{write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

#[test]
fn a_service_is_reached_by_name_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[server]\nallow = 192.0.2.1:9\n[services]\nweb = {echo}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{id} = {addr}\n[client]\n\
             by_name = 127.0.0.1:0:web:{id}\n\
             unknown = 127.0.0.1:0:nosuch:{id}\n\
             by_address = 127.0.0.1:0:{echo}:{id}\n",
            id = server.id,
            addr = server.udp_addr()
        ),
    );
    let client = Node::start("client", &client_config, "client");

    let mut stream = TcpStream::connect(client.named_tunnel_addr("by_name")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"named").unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"named");

    for (tunnel, reason) in [
        ("unknown", "no service named 'nosuch' here"),
        ("by_address", "is not in the allow list"),
    ] {
        let mut stream = TcpStream::connect(client.named_tunnel_addr(tunnel)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(stream.read(&mut byte), Ok(0) | Err(_)),
            "{tunnel} stayed open"
        );
        client.wait_for(&[reason], WAIT);
    }

    let mut connect = Command::new(common::binary())
        .arg("-c")
        .arg(&client_config)
        .args(["connect", &server.id, "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    connect
        .stdin
        .take()
        .unwrap()
        .write_all(b"by connect")
        .unwrap();
    let out = connect.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"by connect");
}
