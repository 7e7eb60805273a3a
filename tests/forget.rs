//! `toxtun forget ID` removes a friend from the running node (its session
//! dropped, its tunnels reset) and from the remembered friends file, or
//! from the file alone when no node runs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use common::traffic::echo_server;
use common::{status_json, tunnel_line, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn forget(config: &Path, friend: &str) -> Output {
    Command::new(common::binary())
        .arg("-config")
        .arg(config)
        .args(["forget", friend])
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn friend_keys(config: &Path) -> Vec<String> {
    status_json(None, config)["friends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_lowercase())
        .collect()
}

/// Whether one byte goes through `stream` and comes back.
fn echoes(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut byte = [0u8; 1];
    stream.write_all(b"x").is_ok() && matches!(stream.read(&mut byte), Ok(1))
}

#[test]
fn forgetting_a_live_friend_resets_its_tunnels_and_keeps_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let client_config = write_config(dir.path(), "client", FAST);
    let client_id = common::id_of(&client_config);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[server]\nfriends = {client_id}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    std::fs::write(
        &client_config,
        format!(
            "[node]\nkey_file = client.key\n{FAST}lan_discovery = off\n[tunnel]\nopen_timeout = 2s\n[peers]\n{} = {}\n[client]\n{}",
            server.id,
            server.udp_addr(),
            tunnel_line("t0", echo, &server.id)
        ),
    )
    .unwrap();
    let client = Node::start("client", &client_config, "client");
    let mut open = TcpStream::connect(client.tunnel_addr()).unwrap();
    assert!(echoes(&mut open), "no echo before forget");
    let client_key = client_id[..64].to_lowercase();
    assert!(friend_keys(&server_config).contains(&client_key));

    let out = forget(&server_config, &client_id);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("forgot") && text(&out.stdout).contains("running node"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("comes back when the node restarts"),
        "a configured friend forgotten should be warned about: {}",
        text(&out.stderr)
    );
    server.wait_for(&["friend forgotten"], WAIT);
    let mut rest = Vec::new();
    let ended = open.read_to_end(&mut rest);
    assert!(
        ended.is_err() || rest.is_empty(),
        "the tunnel outlived its friend"
    );
    assert!(!friend_keys(&server_config).contains(&client_key));
    // It is no friend now: its new handshakes are refused, so no tunnel.
    let mut again = TcpStream::connect(client.tunnel_addr()).unwrap();
    assert!(!echoes(&mut again), "a forgotten friend opened a tunnel");
}

#[test]
fn a_remembered_friend_is_forgotten_through_the_node_or_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let server_config = write_config(dir.path(), "server", FAST);
    let mut server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}[peers]\n{} = {}\n[client]\n{}",
            server.id,
            server.udp_addr(),
            tunnel_line("t0", echo, &server.id)
        ),
    );
    let mut client = Node::start("client", &client_config, "client");
    let mut open = TcpStream::connect(client.tunnel_addr()).unwrap();
    assert!(
        echoes(&mut open),
        "no echo through a friend accepted by nospam"
    );
    let friends_file = dir.path().join("server.key.friends");
    let client_key = client.id[..64].to_lowercase();
    let remembered = std::fs::read_to_string(&friends_file).unwrap();
    assert!(remembered.to_lowercase().contains(&client_key));
    // Offline, so that it cannot ask to be a friend again meanwhile.
    client.kill();

    let out = forget(&server_config, &client_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed from the running node and from"),
        "{}",
        text(&out.stdout)
    );
    let remembered = std::fs::read_to_string(&friends_file).unwrap();
    assert!(
        !remembered.to_lowercase().contains(&client_key),
        "{remembered}"
    );
    assert!(!friend_keys(&server_config).contains(&client_key));
    let out = forget(&server_config, &client_key);
    assert!(!out.status.success(), "forgetting twice succeeded");
    assert!(
        text(&out.stderr).contains("is not a friend"),
        "{}",
        text(&out.stderr)
    );

    server.kill();
    std::fs::write(&friends_file, format!("{remembered}{client_key}\n")).unwrap();
    let out = forget(&server_config, &client.id);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no node is running"),
        "{}",
        text(&out.stdout)
    );
    let remembered = std::fs::read_to_string(&friends_file).unwrap();
    assert!(
        !remembered.to_lowercase().contains(&client_key),
        "{remembered}"
    );

    let out = forget(&server_config, "not-an-id");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not-an-id"),
        "{}",
        text(&out.stderr)
    );
}
