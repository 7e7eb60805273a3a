//! Friends that know only each other's IDs find each other through a
//! bootstrap node, start on its relay and move to a direct path.

mod common;

use common::traffic::{exchange, pattern_hash, Seen, Target};
use common::{status_json, tunnel_line, write_config, Node, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 300ms\nfriend_timeout = 2s\n";
const MIB: usize = 1024 * 1024;

#[test]
fn friends_found_by_id_alone_tunnel_and_go_direct() {
    let target = Target::start(1, MIB);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Node::start(
        "bootstrap",
        &write_config(dir.path(), "bootstrap", FAST),
        "bootstrap",
    );
    let entry = format!("bootstrap = {}:{}\n", bootstrap.udp_addr(), bootstrap.id);
    let server = Node::start(
        "server",
        &write_config(dir.path(), "server", &format!("{FAST}{entry}")),
        "server",
    );
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}{entry}[client]\n{}",
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let client = Node::start("client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let (received, hash) = exchange(tunnel, 2, MIB);
    assert_eq!((received, hash), (MIB, pattern_hash(1, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(2, MIB)
        }
    );
    client.wait_for(&["found friend", &server.id[..8]], WAIT);
    client.wait_for(&["friend online", "path=relay"], WAIT);
    client.wait_for(&["direct path to friend confirmed"], WAIT);
    server.wait_for(&["direct path to friend confirmed"], WAIT);

    let status = status_json(None, &client_config);
    assert_eq!(status["id"], client.id.as_str());
    assert_eq!(status["bootstrap"][0]["up"], true);
    assert!(status["bootstrap"][0]["rtt_ms"].as_f64().is_some());
    let friend = &status["friends"][0];
    assert_eq!(friend["key"], &server.id[..64]);
    assert_eq!(friend["online"], true);
    assert_eq!(friend["path"], "direct");
    assert!(friend["bytes_in"].as_u64().unwrap() > MIB as u64);
    let text = std::process::Command::new(common::binary())
        .args(["-config"])
        .arg(&client_config)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(&server.id[..64]))
        .unwrap_or_else(|| panic!("no row for the server in:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["-", "online", "direct"], "{text}");
}

const CANARY: &[u8] = b"toxtun-canary-plaintext-0123456789abcdef";

/// Two nodes that can reach each other only through the bootstrap node's
/// relay (each sits behind a forwarding socket that takes datagrams from
/// the bootstrap node alone); everything the relay forwards to or from the
/// client is captured. A known plaintext sent through the tunnel must never
/// appear in it, and the relay must hold the client to its byte rate.
#[test]
fn relay_forwards_only_ciphertext_and_holds_its_limit() {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};

    const RATE: usize = 256 * 1024;
    const BURST: usize = 64 * 1024;
    let base = "listen = 127.0.0.1:0\nkeepalive = 1s\nfriend_timeout = 5s\n";
    let target = Target::start(1, 1024);
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Node::start(
        "bootstrap",
        &write_config(
            dir.path(),
            "bootstrap",
            &format!("{base}[bootstrap]\nrelay_rate = {RATE}\nrelay_burst = {BURST}\n"),
        ),
        "bootstrap",
    );
    let server_side = common::lossy_relay::LossyRelay::start(bootstrap.udp_addr(), 0, 1);
    let client_side = common::lossy_relay::LossyRelay::capturing(bootstrap.udp_addr());
    let entry = |via: std::net::SocketAddr| format!("bootstrap = {via}:{}\n", bootstrap.id);
    let server = Node::start(
        "server",
        &write_config(
            dir.path(),
            "server",
            &format!("{base}{}", entry(server_side.addr)),
        ),
        "server",
    );
    let client = Node::start(
        "client",
        &write_config(
            dir.path(),
            "client",
            &format!(
                "{base}{}[client]\n{}",
                entry(client_side.addr),
                tunnel_line("t0", target.addr, &server.id)
            ),
        ),
        "client",
    );
    let tunnel = client.tunnel_addr();

    let plaintext: Vec<u8> = CANARY.iter().copied().cycle().take(MIB).collect();
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(tunnel).unwrap();
    stream.set_read_timeout(Some(WAIT * 3)).unwrap();
    stream.write_all(&plaintext).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply.len(), 1024);
    let seen = target.next_seen(WAIT * 3);
    let took = started.elapsed();
    assert_eq!(seen.received, MIB);
    assert_eq!(seen.hash, <[u8; 32]>::from(Sha256::digest(&plaintext)));

    // The limit: everything past the burst waited for tokens.
    let floor = (MIB - BURST) as f64 / RATE as f64;
    assert!(
        took.as_secs_f64() >= floor,
        "1 MiB through a {RATE} B/s relay in {took:?}"
    );
    bootstrap.wait_for(&["relay limit reached"], WAIT);

    // The path never went direct, so the relay carried it all.
    let captured = client_side
        .captured
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .clone();
    assert!(
        captured.len() > MIB,
        "only {} bytes went by the relay",
        captured.len()
    );
    let windows: std::collections::HashSet<&[u8]> =
        plaintext[..CANARY.len() + 16].windows(16).collect();
    let leaked = captured.windows(16).filter(|w| windows.contains(w)).count();
    assert_eq!(leaked, 0, "plaintext seen in what the relay forwarded");
    assert_eq!(client.count(&["direct path to friend confirmed"]), 0);
    eprintln!(
        "relay: {} bytes forwarded for 1 MiB of plaintext in {:.1}s (floor {floor:.1}s)",
        captured.len(),
        took.as_secs_f64()
    );
}
