//! The real server is killed (SIGKILL) and started again at once while its
//! client keeps running, both on the default keepalive: a connection
//! opened a second after the restart gets its first echoed byte within two
//! seconds, and no connection opened after the restart fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::traffic::echo_server;
use common::{tunnel_line, write_config, Node, WAIT};

/// One byte through the tunnel and back; how long it took.
fn first_echo(tunnel: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("no echo");
    assert_eq!(&byte, b"x");
    start.elapsed()
}

#[test]
fn a_connection_after_a_server_restart_gets_through_within_two_seconds() {
    let echo = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let server_config = write_config(dir.path(), "server", "listen = 127.0.0.1:0\n");
    let mut server = Node::start("server", &server_config, "server");
    let server_addr = server.udp_addr();
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 127.0.0.1:0\n[peers]\n{} = {server_addr}\n[client]\n{}",
            server.id,
            tunnel_line("t0", echo, &server.id)
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    first_echo(tunnel);

    server.kill();
    let server_config = write_config(dir.path(), "server", &format!("listen = {server_addr}\n"));
    let restarted = Node::start("server2", &server_config, "server");
    assert_eq!(restarted.id, server.id);
    restarted.udp_addr();
    std::thread::sleep(Duration::from_secs(1));
    let took = first_echo(tunnel);
    assert!(
        took < Duration::from_secs(2),
        "first echo {took:?} after the restart"
    );
    for _ in 0..5 {
        first_echo(tunnel);
    }
    assert_eq!(client.count(&["tunnel closed", "refused"]), 0);
    println!("first echo {took:?} after the restart");
}
