//! Reaching out through a proxy: the client's network forwards nothing,
//! UDP nor TCP; only an HTTP CONNECT proxy on its gateway, which wants a
//! user and password, reaches the bootstrap node. The client finds the
//! server through the bootstrap node over that one TCP link and tunnels
//! 8 MiB intact. Needs root, iproute2 and iptables; reports and skips
//! otherwise.

mod common;

use common::http_proxy::http_proxy;
use common::netns::{can_run, within, NatKind, World};
use common::traffic::{exchange, pattern_hash, Target};
use common::{start_world_bootstrap, start_world_server, tunnel_line, write_config, Node, WAIT};

const MIB: usize = 1024 * 1024;
const BASE: &str = "listen = 0.0.0.0:0\nkeepalive = 1s\nfriend_timeout = 5s\n";
/// The client's gateway, where the proxy listens.
const GATEWAY: &str = "192.168.2.1";

#[test]
fn a_client_whose_only_way_out_is_an_http_proxy_tunnels_through_it() {
    through_proxy(Given::Config);
}

#[test]
fn the_proxy_may_come_from_the_environment() {
    through_proxy(Given::Environment);
}

enum Given {
    /// `[node] proxy`.
    Config,
    /// `HTTPS_PROXY`, with `NO_PROXY` naming other addresses.
    Environment,
}

fn through_proxy(given: Given) {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let world = World::new(NatKind::None, NatKind::Cone);
    world.cut_b_off();
    // "tox:tunnel", as Basic authentication carries it.
    let proxy = within(&world.nat_b, || {
        http_proxy(&format!("{GATEWAY}:0"), "dG94OnR1bm5lbA==")
    });

    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, entry) = start_world_bootstrap(&world, dir.path());
    let target = within(&world.host_a, || Target::start(1, 8 * MIB));
    let server = start_world_server(&world, dir.path(), &format!("{BASE}{entry}"));

    let url = format!("http://tox:tunnel@{}", proxy.addr);
    let (line, env) = match given {
        Given::Config => (format!("proxy = {url}\n"), vec![]),
        Given::Environment => (
            String::new(),
            vec![("HTTPS_PROXY", url.as_str()), ("NO_PROXY", "192.0.2.0/24")],
        ),
    };
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{BASE}{entry}{line}[client]\n{}",
            tunnel_line("t0", target.addr, &server.id)
        ),
    );
    let client = Node::start_with(
        Some(&world.host_b),
        &env,
        "client",
        &client_config,
        "client",
    );
    client.wait_for(
        &[
            "reaching bootstrap node over TCP through a proxy",
            "proxy=http://tox@",
        ],
        WAIT,
    );
    let tunnel = client.tunnel_addr();
    let (received, hash) = within(&world.host_b, move || exchange(tunnel, 2, 8 * MIB));
    assert_eq!((received, hash), (8 * MIB, pattern_hash(1, 8 * MIB)));
    assert_eq!(
        *proxy.connected.lock().unwrap(),
        [bootstrap.udp_addr().to_string()],
        "the proxy carried the link to the bootstrap node, and nothing else"
    );
    drop((client, server, bootstrap));
}
