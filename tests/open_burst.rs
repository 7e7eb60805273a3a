//! A thousand local connections arriving at once to one server all open:
//! the client queues a thousand OPENs and the server a thousand ACCEPTs
//! faster than the control channel's window lets them out. Such a queue is
//! our own, not a friend that leaves messages unacknowledged; counted as
//! one, it dropped most of the OPENs (and of the answers), and the
//! tunnels behind them failed after the open timeout.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::sim::{open_tunnel, Host, CLIENT, SERVER};
use toxtun::proto::tunnel::control::Transport;
use toxtun::proto::Event;

const CONNECTIONS: u64 = 1000;

fn connect_requests(host: &Host) -> Vec<(toxtun::id::PublicKey, u32)> {
    host.events
        .iter()
        .filter_map(|e| match e {
            Event::Connect {
                friend, request, ..
            } => Some((*friend, *request)),
            _ => None,
        })
        .collect()
}

fn opened(host: &Host) -> BTreeSet<u64> {
    host.events
        .iter()
        .filter_map(|e| match e {
            Event::Opened { conn } => Some(*conn),
            _ => None,
        })
        .collect()
}

#[test]
fn a_thousand_connections_at_once_all_open() {
    // One tunnel first, so the burst meets a link already up.
    let mut net = open_tunnel(Instant::now(), CONNECTIONS, (1, 2));
    let server_id = net.host(SERVER).id();
    let now = net.now;
    for conn in 0..CONNECTIONS {
        net.host_mut(CLIENT)
            .core
            .open(now, conn, server_id, "127.0.0.1:9".into(), Transport::Tcp);
    }
    let asked = net.run_until(Duration::from_secs(10), &mut |_, _| false, &mut |n| {
        connect_requests(n.host(SERVER)).len() == CONNECTIONS as usize + 1
    });
    let requests = connect_requests(net.host(SERVER)).split_off(1);
    assert!(
        asked,
        "the server was asked for {} of {CONNECTIONS}",
        requests.len()
    );

    let now = net.now;
    for (conn, (friend, request)) in requests.into_iter().enumerate() {
        let server = &mut net.host_mut(SERVER).core;
        assert!(server.target_connected(now, friend, request, conn as u64, Transport::Tcp));
    }
    let all_open = net.run_until(Duration::from_secs(10), &mut |_, _| false, &mut |n| {
        opened(n.host(CLIENT)).len() == CONNECTIONS as usize + 1
    });
    assert!(
        all_open,
        "{} of {CONNECTIONS} tunnels opened",
        opened(net.host(CLIENT)).len() - 1
    );
}
