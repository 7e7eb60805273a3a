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
    let world = LanWorld::new();
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
}
