//! Mistakes that used to pass silently, each stopped with a message that
//! says what is wrong and what to do: a client with no tunnel (a
//! misspelled section), a second node on a port already taken, and a
//! bootstrap node that printed an entry no one could paste.

mod common;

use std::process::{Command, Output};

use common::{binary, write_config, Node, WAIT};

const ID: &str = "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_client_with_no_tunnel_is_an_error_that_names_the_misspelled_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "client",
        &format!("listen = 127.0.0.1:0\n[clinet]\nt = 127.0.0.1:0:127.0.0.1:22:{ID}\n"),
    );
    let out = run(&["-c", config.to_str().unwrap(), "client"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("unknown section [clinet] is ignored (did you mean [client]?)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "toxtun: no tunnels to open: add NAME = LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID lines under [client] in {}",
            config.display()
        )) && text.contains("or give -L, -U or -D and the server's ID"),
        "{text}"
    );
}

#[test]
fn a_second_node_on_a_taken_port_is_told_one_may_be_running() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_config(dir.path(), "first", "listen = 127.0.0.1:0\n");
    let running = Node::start("first", &first, "server");
    let taken = running.udp_addr();
    let second = write_config(dir.path(), "second", &format!("listen = {taken}\n"));
    let out = run(&["-c", second.to_str().unwrap(), "server"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("cannot listen on UDP {taken}: "))
            && text.contains("most likely another toxtun node already running")
            && text.contains("set `listen` in [node] to another port"),
        "{text}"
    );
}

#[test]
fn a_bootstrap_node_on_every_address_prints_entries_that_can_be_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "bootstrap", "listen = 0.0.0.0:0\n");
    let node = Node::start("bootstrap", &config, "bootstrap");
    let line = node.wait_for(&["bootstrap entry"], WAIT);
    let entry = line
        .split("entry=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no entry in {line}"));
    assert!(!entry.starts_with("0.0.0.0"), "{line}");
    let (addr, id) = entry.rsplit_once(':').unwrap();
    assert_eq!(id, node.id);
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_eq!(addr.port(), node.udp_addr().port());
    // What it prints is what a config takes.
    let client = write_config(
        dir.path(),
        "client",
        &format!("bootstrap = {entry}\n[client]\nt = 127.0.0.1:0:127.0.0.1:22:{ID}\n"),
    );
    toxtun::config::Settings::load(&client).unwrap();
}
