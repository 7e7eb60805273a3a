//! Two bootstrap nodes on the simulated internet. The one carrying a
//! relayed transfer (the nearer: it answered the lookup first) is stopped
//! mid-way; the transfer completes through the other, and a new friend
//! still finds the server through it. Needs root, iproute2 and iptables.

mod common;

use std::time::{Duration, Instant};

use common::netns::{can_run, within, NatKind, World, BOOTSTRAP_IP};
use common::traffic::{exchange, first_byte_after, pattern_hash, Target};
use common::{status_json, tunnel_line, write_config, Node, WAIT};

const MIB: usize = 1024 * 1024;
const SIZE: usize = 24 * MIB;
const BASE: &str = "listen = 0.0.0.0:0\nkeepalive = 1s\nfriend_timeout = 5s\n";
const FIND_WITHIN: Duration = Duration::from_secs(10);

fn client_config(
    dir: &std::path::Path,
    name: &str,
    entries: &str,
    target: std::net::SocketAddr,
    server: &str,
) -> std::path::PathBuf {
    let line = tunnel_line("t0", target, server);
    write_config(dir, name, &format!("{BASE}{entries}[client]\n{line}"))
}

/// Polls the client's status until it has received `bytes` from its friend.
fn wait_for_bytes_in(ns: &str, config: &std::path::Path, bytes: u64) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status_json(Some(ns), config);
        if status["friends"][0]["bytes_in"].as_u64().unwrap_or(0) >= bytes {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "transfer never got going: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn transfer_and_lookups_survive_the_nearer_bootstrap_stopping() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    // Port-randomising NATs on both sides: the path stays on the relay.
    let world = World::new(NatKind::Random, NatKind::Random);
    let dir = tempfile::tempdir().unwrap();
    let mut bootstraps: Vec<Node> = (0..2)
        .map(|i| {
            let name = format!("bootstrap{i}");
            let config = write_config(
                dir.path(),
                &name,
                &format!("listen = {BOOTSTRAP_IP}:0\nkeepalive = 1s\n"),
            );
            Node::start_in(Some(&world.bootstrap), &name, &config, "bootstrap")
        })
        .collect();
    let entries: String = bootstraps
        .iter()
        .map(|b| format!("bootstrap = {}:{}\n", b.udp_addr(), b.id))
        .collect();

    let target = within(&world.host_a, || Target::start(1, SIZE));
    let server_config = write_config(dir.path(), "server", &format!("{BASE}{entries}"));
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    server.wait_for_count(&["bootstrap node sees us at"], 2, WAIT);

    let config = client_config(dir.path(), "client", &entries, target.addr, &server.id);
    let client = Node::start_in(Some(&world.host_b), "client", &config, "client");
    let tunnel = client.tunnel_addr();
    let transfer = std::thread::spawn({
        let ns = world.host_b.clone();
        move || within(&ns, move || exchange(tunnel, 2, SIZE))
    });

    let status = wait_for_bytes_in(&world.host_b, &config, 2 * MIB as u64);
    let friend = &status["friends"][0];
    assert_eq!(friend["path"], "relayed", "{status}");
    let relay = friend["address"].as_str().unwrap().to_string();
    let nearer = bootstraps
        .iter()
        .position(|b| b.udp_addr().to_string() == relay)
        .unwrap_or_else(|| panic!("relay {relay} is not a bootstrap node"));
    let stopped_at = Instant::now();
    bootstraps[nearer].kill();

    let (received, hash) = transfer.join().unwrap();
    assert_eq!((received, hash), (SIZE, pattern_hash(1, SIZE)));
    eprintln!(
        "stopped bootstrap {relay} mid-transfer; transfer of {} MiB finished {} ms later",
        SIZE / MIB,
        stopped_at.elapsed().as_millis()
    );
    let status = status_json(Some(&world.host_b), &config);
    assert_ne!(status["friends"][0]["address"], relay.as_str(), "{status}");

    let newcomer_config = client_config(dir.path(), "newcomer", &entries, target.addr, &server.id);
    let started = Instant::now();
    let newcomer = Node::start_in(Some(&world.host_b), "newcomer", &newcomer_config, "client");
    let tunnel = newcomer.tunnel_addr();
    let found_after = within(&world.host_b, move || first_byte_after(tunnel, started));
    let line = newcomer.wait_for(&["found friend"], WAIT);
    assert!(
        !line.contains(&relay),
        "found through the stopped node: {line}"
    );
    eprintln!(
        "a new friend's first tunnelled byte after {} ms",
        found_after.as_millis()
    );
    assert!(found_after < FIND_WITHIN, "took {found_after:?}");
}
