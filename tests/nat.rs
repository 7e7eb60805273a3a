//! Hosts behind NATs of each kind, a bootstrap node on a simulated internet
//! with a router hop between the NATs. Needs root, iproute2 and iptables;
//! reports and skips otherwise.

mod common;

use std::time::Instant;

use common::netns::{can_run, within, NatKind, World};
use common::traffic::{exchange, first_byte_after, pattern_hash, Target};
use common::{
    start_world_bootstrap, start_world_server, status_json, tunnel_line, write_config, Node, WAIT,
};

const MIB: usize = 1024 * 1024;
const BASE: &str = "listen = 0.0.0.0:0\nkeepalive = 1s\nfriend_timeout = 5s\n";

/// The pairs doc/nat.md says go direct: a public side with any side whose
/// UDP gets out, and cone with cone. Port-randomising NAT against a
/// filtering NAT is relayed; so is every pair with UDP blocked.
fn goes_direct(a: NatKind, b: NatKind) -> bool {
    use NatKind::*;
    match (a, b) {
        (UdpBlocked, _) | (_, UdpBlocked) => false,
        (None, _) | (_, None) | (Cone, Cone) => true,
        _ => false,
    }
}

fn pair(server_nat: NatKind, client_nat: NatKind) {
    let world = World::new(server_nat, client_nat);
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, entry) = start_world_bootstrap(&world, dir.path());
    let target = within(&world.host_a, || Target::start(1, 8 * MIB));
    let server = start_world_server(&world, dir.path(), &format!("{BASE}{entry}"));

    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{BASE}{entry}[client]\n{}",
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let started = Instant::now();
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    let tunnel = client.tunnel_addr();

    let first_byte = within(&world.host_b, move || first_byte_after(tunnel, started));
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 2, 8 * MIB));
    assert_eq!(
        (received, hash),
        (8 * MIB, pattern_hash(1, 8 * MIB)),
        "{:?}-{:?}",
        server_nat,
        client_nat
    );

    let direct = goes_direct(server_nat, client_nat);
    let to_direct = if direct {
        client.wait_for(&["direct path to friend confirmed"], WAIT);
        Some(started.elapsed())
    } else {
        None
    };
    let path = status_json(Some(&world.host_b), &client_config)["friends"][0]["path"].clone();
    let expected = if direct { "direct" } else { "relayed" };
    assert_eq!(
        path, expected,
        "server {server_nat:?}, client {client_nat:?}"
    );
    eprintln!(
        "server {:>6} client {:>6}: first byte {:>5} ms, direct after {}, path {expected}",
        server_nat.name(),
        client_nat.name(),
        first_byte.as_millis(),
        to_direct.map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
    );
    drop((client, server, bootstrap));
    drop(world);
}

fn all_clients_against(server_nat: NatKind) {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    for client_nat in [
        NatKind::None,
        NatKind::Cone,
        NatKind::Random,
        NatKind::UdpBlocked,
    ] {
        pair(server_nat, client_nat);
    }
}

#[test]
fn server_with_public_address() {
    all_clients_against(NatKind::None);
}

#[test]
fn server_behind_cone_nat() {
    all_clients_against(NatKind::Cone);
}

#[test]
fn server_behind_port_randomising_nat() {
    all_clients_against(NatKind::Random);
}

#[test]
fn server_with_udp_blocked() {
    all_clients_against(NatKind::UdpBlocked);
}
