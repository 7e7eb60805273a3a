//! SIGHUP reads the config again: a server's edited `allow` refuses a
//! target it no longer names while a tunnel already open keeps carrying
//! data; a line added to a client's config listens; a config with an
//! error is refused, and the node goes on with the one it had.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::traffic::echo_server;
use common::{loopback_pair, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn hangup(node: &Node) {
    // SAFETY: kill only sends a signal to the child we started.
    assert_eq!(
        unsafe { libc::kill(node.child.id() as i32, libc::SIGHUP) },
        0
    );
}

/// Sends `message` and reads its echo.
fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, message);
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

/// Whether the tunnel at `addr` closes without carrying anything.
fn refused(addr: std::net::SocketAddr) -> bool {
    let mut stream = connect(addr);
    let _ = stream.write_all(b"x");
    matches!(stream.read(&mut [0u8; 1]), Ok(0) | Err(_))
}

fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

#[test]
fn sighup_applies_allow_and_tunnel_lines_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, dropped) = (echo_server(), echo_server());
    let lines =
        format!("kept = 127.0.0.1:0:{kept}:{{id}}\ndropped = 127.0.0.1:0:{dropped}:{{id}}\n");
    let (server, client_config) = loopback_pair(
        dir.path(),
        &format!("{FAST}[server]\nallow = {kept}, {dropped}\n"),
        &lines,
    );
    let server_config = dir.path().join("server.ini");
    let client = Node::start("client", &client_config, "client");
    let mut open = connect(client.named_tunnel_addr("kept"));
    round_trip(&mut open, b"before");
    let mut dropped_before = connect(client.named_tunnel_addr("dropped"));
    round_trip(&mut dropped_before, b"allowed");

    // The server no longer allows `dropped`.
    edit(
        &server_config,
        &format!("allow = {kept}, {dropped}"),
        &format!("allow = {kept}"),
    );
    hangup(&server);
    server.wait_for(&["config reloaded"], WAIT);
    round_trip(&mut open, b"after the reload");
    round_trip(&mut dropped_before, b"open before it");
    assert!(refused(client.named_tunnel_addr("dropped")));
    server.wait_for(
        &[
            "refused tunnel",
            &format!("target {dropped} is not in the allow list"),
        ],
        WAIT,
    );
    round_trip(&mut connect(client.named_tunnel_addr("kept")), b"new");

    // A line added to the client's config listens after its SIGHUP.
    let text = std::fs::read_to_string(&client_config).unwrap();
    let added = text.replace(
        "[client]\n",
        &format!("[client]\nadded = 127.0.0.1:0:{kept}:{}\n", server.id),
    );
    std::fs::write(&client_config, added).unwrap();
    hangup(&client);
    let added = client.named_tunnel_addr("added");
    round_trip(&mut connect(added), b"through the new line");
    round_trip(&mut open, b"still");

    // A config with an error is refused; the old one goes on.
    edit(
        &server_config,
        &format!("allow = {kept}"),
        "allow = not an address",
    );
    hangup(&server);
    let refusal = server.wait_for(&["config not reloaded"], WAIT);
    assert!(
        refusal.contains(&format!("{}:", server_config.display()))
            && refusal.contains("[server] allow"),
        "{refusal}"
    );
    round_trip(
        &mut connect(client.named_tunnel_addr("kept")),
        b"old config",
    );
    assert!(refused(client.named_tunnel_addr("dropped")));
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
}

#[test]
fn a_sighup_as_soon_as_the_id_is_printed_reloads_and_does_not_kill() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "server", FAST);
    let mut server = Node::start("server", &config, "server");
    hangup(&server);
    server.wait_for(&["config reloaded"], WAIT);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the node died of the SIGHUP"
    );
}
