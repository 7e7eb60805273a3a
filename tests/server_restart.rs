//! A server restarts (same key, new process) while its client keeps
//! running: a connection opened a second later reaches it within two
//! seconds. The client suspects the dead session as soon as data to it goes
//! unanswered for a few round trips, re-handshakes, and sends the OPEN
//! again on the new session instead of failing it.

mod common;

use std::time::{Duration, Instant};

use common::sim::{open_tunnel, Host, CLIENT, SERVER};
use toxtun::proto::reason::{CloseReason, OfflineReason};
use toxtun::proto::tunnel::control::Transport;
use toxtun::proto::Event;

const OLD: u64 = 1;
const NEW: u64 = 2;

#[test]
fn a_connection_after_a_server_restart_opens_within_two_seconds() {
    let mut net = open_tunnel(Instant::now(), OLD, (1, 2));
    net.idle(Duration::from_secs(3));
    // The server restarts: same key and address, no state.
    let restarted = Host::new(1, net.now, true, 99);
    assert_eq!(restarted.id(), net.host(SERVER).id());
    net.nodes[SERVER] = Box::new(restarted);
    net.idle(Duration::from_secs(1));
    let asked_at = net.now;
    let server_id = net.host(SERVER).id();
    net.host_mut(CLIENT).core.open(
        asked_at,
        NEW,
        server_id,
        "127.0.0.1:9".into(),
        Transport::Tcp,
    );
    let opened =
        |n: &common::sim::Net| n.host(CLIENT).events.contains(&Event::Opened { conn: NEW });
    while !opened(&net) && net.now < asked_at + Duration::from_secs(10) {
        net.run_until(Duration::from_millis(10), &mut |_, _| false, &mut |n| {
            opened(n)
        });
        accept_all(&mut net);
    }
    assert!(opened(&net), "the new connection never opened");
    let took = net.now - asked_at;
    assert!(
        took < Duration::from_secs(2),
        "opened {took:?} after it was asked for"
    );
    // The connection the old server held is gone, and says why.
    assert!(net.host(CLIENT).events.iter().any(|e| matches!(
        e,
        Event::Closed {
            conn: OLD,
            reason: CloseReason::FriendOffline(
                OfflineReason::LostTunnels | OfflineReason::Restarted
            )
        }
    )));
    assert!(!net
        .host(CLIENT)
        .events
        .iter()
        .any(|e| matches!(e, Event::Closed { conn: NEW, .. })));
}

/// The restarted server's driver connects every target it is asked for.
fn accept_all(net: &mut common::sim::Net) {
    let now = net.now;
    let server = net.host_mut(SERVER);
    let asks: Vec<_> = server
        .events
        .drain(..)
        .filter_map(|e| match e {
            Event::Connect {
                friend, request, ..
            } => Some((friend, request)),
            _ => None,
        })
        .collect();
    for (friend, request) in asks {
        server.core.target_connected(
            now,
            friend,
            request,
            100 + u64::from(request),
            Transport::Tcp,
        );
    }
}
