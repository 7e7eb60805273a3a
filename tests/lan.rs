//! Two nodes on one LAN, no bootstrap node and no address configured:
//! the client finds the server by LAN discovery and tunnels. Needs root
//! and iproute2; reports and skips otherwise.

mod common;

use common::netns::{can_run, within, LanWorld};
use common::traffic::{exchange, pattern_hash, Seen, Target};
use common::{tunnel_line, write_config, Node, WAIT};

const MIB: usize = 1024 * 1024;
const BASE: &str = "lan_discovery = on\nlisten = 0.0.0.0:0\nkeepalive = 1s\nfriend_timeout = 5s\n";

#[test]
fn nodes_on_one_lan_find_each_other_without_bootstrap() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    find_and_tunnel(&LanWorld::new());
}

/// An address added without `brd` leaves its interface with no broadcast
/// address: queries go to 255.255.255.255 out of that interface instead.
#[test]
fn nodes_find_each_other_where_interfaces_have_no_broadcast_address() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let world = LanWorld::without_broadcast();
    let client = find_and_tunnel(&world);
    client.wait_for(
        &["interface has no broadcast address", "255.255.255.255"],
        WAIT,
    );
}

/// A copy of a server's key run on a second host of the LAN: the node
/// started second hears the first answer its probe and names both.
#[test]
fn a_second_node_on_the_same_key_is_a_warning_naming_both() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let world = LanWorld::new();
    let dir = tempfile::tempdir().unwrap();
    let first_config = write_config(dir.path(), "first", BASE);
    let first = Node::start_in(Some(&world.host_a), "first", &first_config, "server");
    let second_config = write_config(dir.path(), "second", BASE);
    std::fs::copy(dir.path().join("first.key"), dir.path().join("second.key")).unwrap();
    let second = Node::start_in(Some(&world.host_b), "second", &second_config, "server");
    assert_eq!(first.id, second.id, "the key was not copied");
    let warning = second.wait_for(&["another node runs on this node's key"], WAIT);
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(warning.contains("other=10.9.0.1:"), "{warning}");
    assert!(
        warning.contains(&format!("ours={}", second.udp_addr())),
        "{warning}"
    );
    // A node's own probe, heard on its own LAN socket, is not an answer.
    assert_eq!(first.count(&["another node runs on this node's key"]), 0);
}

/// A server on host A and a client on host B with no address for it: the
/// client finds it by LAN discovery and carries a mebibyte each way.
fn find_and_tunnel(world: &LanWorld) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let target = within(&world.host_a, || Target::start(1, MIB));
    let server_config = write_config(dir.path(), "server", BASE);
    let server = Node::start_in(Some(&world.host_a), "server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{BASE}[client]\n{}",
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let client = Node::start_in(Some(&world.host_b), "client", &client_config, "client");
    let tunnel = client.tunnel_addr();
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 2, MIB));
    assert_eq!((received, hash), (MIB, pattern_hash(1, MIB)));
    assert_eq!(
        target.next_seen(WAIT),
        Seen {
            received: MIB,
            hash: pattern_hash(2, MIB)
        }
    );
    let found = client.wait_for(&["found friend on the LAN"], WAIT);
    assert!(found.contains("addr=10.9.0.1:"), "{found}");
    server.wait_for(&["answering a LAN query for us"], WAIT);
    client
}
