//! One process, both roles: `toxtun server` with [client] lines in its
//! config serves its friend's tunnels and opens its own to that friend, on
//! one identity and one UDP port, at the same time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::traffic::echo_server;
use common::{id_of, tunnel_line, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

/// Sends `message` on `stream` and reads the echo back.
fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

#[test]
fn a_server_with_client_lines_serves_and_uses_a_friend_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (echo_a, echo_b) = (echo_server(), echo_server());
    let a_config = write_config(dir.path(), "a", FAST);
    let a_id = id_of(&a_config);
    // B knows no address of A: A's handshake tells it.
    let b_config = write_config(
        dir.path(),
        "b",
        &format!("{FAST}[client]\n{}", tunnel_line("to_a", echo_a, &a_id)),
    );
    let b = Node::start("b", &b_config, "server");
    std::fs::write(
        &a_config,
        format!(
            "[node]\nkey_file = a.key\n{FAST}lan_discovery = off\n[peers]\n{} = {}\n[client]\n{}",
            b.id,
            b.udp_addr(),
            tunnel_line("to_b", echo_b, &b.id)
        ),
    )
    .unwrap();
    let a = Node::start("a", &a_config, "server");
    // B learns A's address from A's handshake, once it confirms it.
    for node in [&a, &b] {
        node.wait_for(&["friend online"], WAIT);
    }

    let mut a_uses_b = TcpStream::connect(a.named_tunnel_addr("to_b")).unwrap();
    let mut b_uses_a = TcpStream::connect(b.named_tunnel_addr("to_a")).unwrap();
    for stream in [&mut a_uses_b, &mut b_uses_a] {
        stream.set_read_timeout(Some(WAIT)).unwrap();
    }
    // Both open at once, each node a server for the other's tunnel.
    for round in 0..3u8 {
        let message = [round; 1000];
        assert_eq!(echo(&mut a_uses_b, &message), message);
        assert_eq!(echo(&mut b_uses_a, &message), message);
    }
    for node in [&a, &b] {
        assert_eq!(node.count(&["tunnel open"]), 2, "{}", node.name);
        assert_eq!(node.count(&["node listening"]), 1, "{}", node.name);
    }
}
