//! `--once`: a server and a client each serve one connection and exit,
//! with code 0, once it has closed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::traffic::echo_server;
use common::{tunnel_line, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn once(config: &std::path::Path, name: &str, mode: &str) -> Node {
    let words = ["-config", &config.display().to_string(), mode, "--once"].map(String::from);
    Node::start_words(None, &[], name, &words)
}

#[test]
fn server_and_client_exit_after_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_config = write_config(dir.path(), "server", FAST);
    let mut server = once(&server_config, "server", "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{id} = {addr}\n[client]\n{line}",
            id = server.id,
            addr = server.udp_addr(),
            line = tunnel_line("t", echo, &server.id)
        ),
    );
    let mut client = once(&client_config, "client", "client");
    let local = client.tunnel_addr();

    let mut stream = TcpStream::connect(local).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"one").unwrap();
    let mut back = [0u8; 3];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"one");
    // Still serving while the connection lasts.
    assert!(client.child.try_wait().unwrap().is_none());
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        stream.read(&mut back).unwrap(),
        0,
        "the tunnel did not finish"
    );
    drop(stream);

    for node in [&mut client, &mut server] {
        node.wait_for(&["one connection served (--once)"], WAIT);
        let status = node.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", node.name);
    }
    assert!(
        TcpStream::connect(local).is_err(),
        "the client still listens"
    );
}
