//! Tunnels on a path narrower than the hosts' own links: a router hop whose
//! next link carries 1280-byte packets (IPv6's minimum), with the routers'
//! ICMP "fragmentation needed" passing and with it dropped, and a path of
//! 1420 (a WireGuard tunnel's). The handshake's packets are small; the
//! data's must fit too, found by probing (doc/protocol.md, path MTU).

mod common;

use std::time::{Duration, Instant};

use common::netns::{can_run, within, NatKind, World, HOST_A_IP};
use common::traffic::{exchange, first_byte_after, pattern_hash, Target};
use common::{status_json, tunnel_line, write_config, Node, WAIT};

const MIB: usize = 1024 * 1024;
/// IPv4 and UDP headers.
const HEADERS: usize = 28;

/// Server on host A (public), client on host B (behind a NAT), the link
/// before host A narrowed to `mtu`; 8 MiB each way. Returns the path MTU
/// the client found and how long its first byte took.
fn transfer(mtu: u32, icmp: bool) -> (usize, Duration) {
    let world = World::new(NatKind::None, NatKind::Cone);
    if mtu < 1500 {
        world.narrow_link_a(mtu, icmp);
    }
    let dir = tempfile::tempdir().unwrap();
    let target = within(&world.host_a, || Target::start(11, 8 * MIB));
    let server_config = write_config(dir.path(), "server", "listen = 0.0.0.0:0\n");
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    let port = server.udp_addr().port();
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "listen = 0.0.0.0:0\n[peers]\n{} = {HOST_A_IP}:{port}\n[client]\n{}",
            server.id,
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let started = Instant::now();
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let first = within(&world.host_b, move || first_byte_after(tunnel, started));
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 12, 8 * MIB));
    assert_eq!(received, 8 * MIB, "mtu {mtu}, icmp {icmp}");
    assert_eq!(hash, pattern_hash(11, 8 * MIB), "mtu {mtu}, icmp {icmp}");
    // The first connection (first byte only) ends with nothing sent.
    let mut seen = target.next_seen(WAIT);
    while seen.received == 0 {
        seen = target.next_seen(WAIT);
    }
    assert_eq!(seen.received, 8 * MIB);
    assert_eq!(seen.hash, pattern_hash(12, 8 * MIB));
    // The search runs beside the transfer; give it its 5 s from the start.
    let fits = mtu as usize - HEADERS;
    let deadline = started + SEARCH_WITHIN;
    let mut found = path_mtu(&world.host_b, &client_config);
    while fits - found.min(fits) > PRECISION && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        found = path_mtu(&world.host_b, &client_config);
    }
    drop((client, server));
    (found, first)
}

const SEARCH_WITHIN: Duration = Duration::from_secs(5);
/// How close to the largest size that fits the search must come.
const PRECISION: usize = 40;

fn path_mtu(ns: &str, config: &std::path::Path) -> usize {
    let status = status_json(Some(ns), config);
    status["friends"][0]["path_mtu"].as_u64().unwrap() as usize
}

fn check(mtu: u32, icmp: bool) {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let (found, first) = transfer(mtu, icmp);
    let fits = mtu as usize - HEADERS;
    println!("next-hop MTU {mtu}, ICMP {icmp}: path MTU found {found} (largest that fits {fits}), first byte after {first:?}");
    assert!(
        found <= fits && fits - found <= PRECISION,
        "found {found} where {fits} fits"
    );
    assert!(first < Duration::from_secs(2), "first byte after {first:?}");
}

#[test]
fn a_1280_path_with_icmp() {
    check(1280, true);
}

#[test]
fn a_1280_path_without_icmp() {
    check(1280, false);
}

#[test]
fn a_1420_path() {
    check(1420, false);
}
