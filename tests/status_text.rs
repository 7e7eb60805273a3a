//! `toxtun status` for people: tables with headers, units, the tunnel
//! lines with the ports they listen on, each open connection with its
//! local end, target, bytes and age, and when each friend was last seen; and `toxtun check`, which reads a config as a node would and
//! says what it would do, or which line is wrong.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};

use common::traffic::echo_server;
use common::{binary, loopback_pair, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";

fn toxtun(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// The cells of the row under `header` (found by its first cell) whose
/// first cell starts with `first`.
fn row<'a>(text: &'a str, header: &str, first: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(header));
    lines
        .next()
        .unwrap_or_else(|| panic!("no {header} header in:\n{text}"));
    let line = lines
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no {first} row under {header} in:\n{text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn status_shows_tables_with_ports_and_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let echo = echo_server();
    let lines = format!("web = 127.0.0.1:0:{echo}:{{id}}\nssh = 127.0.0.1:0:{echo}:{{id}}\n");
    let (server, client_config) = loopback_pair(dir.path(), FAST, &lines);
    let client = Node::start("client", &client_config, "client");
    let web = client.named_tunnel_addr("web");
    let ssh = client.named_tunnel_addr("ssh");
    let mut stream = TcpStream::connect(web).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"ping").unwrap();
    stream.read_exact(&mut [0u8; 4]).unwrap();

    let out = toxtun(&["-c", client_config.to_str().unwrap(), "status"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().find(|l| l.starts_with("FRIEND  ")).unwrap();
    for column in [
        "NAME",
        "STATE",
        "PATH",
        "RTT",
        "LAST SEEN",
        "IN",
        "OUT",
        "TUNNELS",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let friend = row(&text, "FRIEND  ", &server.id[..64]);
    assert_eq!(friend[1..3], ["-", "online"], "{text}");
    assert!(
        friend[6] == "now" || friend[6].ends_with(" s ago"),
        "last seen {:?} in:\n{text}",
        friend[6]
    );
    assert!(friend[7].ends_with('B'), "bytes in {:?}", friend[7]);
    let web_row = row(&text, "TUNNEL  ", "web");
    assert_eq!(web_row[1..4], ["tcp", &web.to_string(), &echo.to_string()]);
    assert_eq!(web_row[5], "1", "the open connection:\n{text}");
    let ssh_row = row(&text, "TUNNEL  ", "ssh");
    assert_eq!(ssh_row[2], ssh.to_string());
    assert_eq!(ssh_row[5], "0");
    assert!(text.contains("\nConnections: 1\n"), "{text}");
    let source = stream.local_addr().unwrap().to_string();
    let open = row(&text, "CONN  ", "1");
    assert_eq!(
        open[1..6],
        [&server.id[..16], "tcp", "web", &source, &echo.to_string()],
        "the open connection's row:\n{text}"
    );
    assert_eq!(open[6..8], ["4 B", "4 B"], "bytes each way:\n{text}");
    assert!(open[8].ends_with(" s"), "age {:?}", open[8]);

    let out = toxtun(&["-c", client_config.to_str().unwrap(), "status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let connection = &json["connections"][0];
    assert_eq!(connection["local"], source.as_str(), "{json}");
    assert_eq!(connection["bytes_out"], 4, "{json}");
}

/// The server answered the handshake: it knows the round trip from that,
/// before any tunnel carried a byte.
#[test]
fn the_answering_side_knows_the_round_trip_too() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client_config) =
        loopback_pair(dir.path(), FAST, "t = 127.0.0.1:0:127.0.0.1:9:{id}\n");
    let _client = Node::start("client", &client_config, "client");
    server.wait_for(&["friend online"], WAIT);
    let server_config = client_config.with_file_name("server.ini");
    let out = toxtun(&["-c", server_config.to_str().unwrap(), "status"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let client_row = text
        .lines()
        .skip_while(|l| !l.starts_with("FRIEND  "))
        .nth(1)
        .unwrap_or_else(|| panic!("no friend row:\n{text}"));
    let cells: Vec<&str> = client_row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        cells[5].ends_with(" ms"),
        "server-side RTT {:?}:\n{text}",
        cells[5]
    );
}

#[test]
fn check_says_what_a_config_would_do_or_which_line_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let id = common::id_of(&write_config(dir.path(), "server", FAST));
    let good = write_config(
        dir.path(),
        "good",
        &format!("[client]\nweb = 127.0.0.1:8080:127.0.0.1:80:{id}\n"),
    );
    let out = toxtun(&["-c", good.to_str().unwrap(), "check"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("{}: ok", good.display())), "{text}");
    assert!(
        text.contains(&format!("web: tcp 127.0.0.1:8080 to 127.0.0.1:80 at {id}")),
        "{text}"
    );
    assert!(text.contains("(created on first run)"), "{text}");

    // The last digit changed breaks the checksum.
    let last = if id.ends_with('0') { '1' } else { '0' };
    let bad_id = format!("{}{last}", &id[..75]);
    let bad = write_config(
        dir.path(),
        "bad",
        &format!("[client]\nweb = 127.0.0.1:8080:127.0.0.1:80:{bad_id}\n"),
    );
    let out = toxtun(&["-c", bad.to_str().unwrap(), "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4: [client] web: bad server ID", bad.display())),
        "{err}"
    );
}

#[test]
fn a_bootstrap_node_answers_status_with_its_nodes_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap_config = write_config(
        dir.path(),
        "bootstrap",
        "listen = 127.0.0.1:0\nkeepalive = 1s\n",
    );
    let bootstrap = Node::start("bootstrap", &bootstrap_config, "bootstrap");
    let server_config = write_config(
        dir.path(),
        "server",
        &format!(
            "{FAST}bootstrap = {}:{}\n",
            bootstrap.udp_addr(),
            bootstrap.id
        ),
    );
    let server = Node::start("server", &server_config, "server");
    server.wait_for(&["bootstrap node sees us at"], WAIT);

    let out = toxtun(&["-c", bootstrap_config.to_str().unwrap(), "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("Bootstrap node {}\n", bootstrap.id)),
        "{text}"
    );
    assert!(
        text.contains("Nodes announced  1 of at most 100000"),
        "{text}"
    );
    for line in ["TCP links", "Relayed", "Limits hit"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let out = toxtun(&["-c", bootstrap_config.to_str().unwrap(), "status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["nodes"], 1, "{json}");
    assert_eq!(json["address"], bootstrap.udp_addr().to_string(), "{json}");
    assert_eq!(json["relayed_bytes"], 0, "{json}");
}
