//! A flood of replayed handshake message 1s, from sources all over the
//! place, at a server with a friend online: once the server is under load
//! the flood costs it no Diffie-Hellman, the friend's transfer arrives
//! intact and its new tunnel opens at once.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::sim::{open_tunnel, CLIENT, SERVER};
use toxtun::proto::tunnel::control::Transport;
use toxtun::proto::{wire, Event};

const CONN: u64 = 1;
const SECOND_CONN: u64 = 2;
/// 20,000 a second, delivered in steps of 10 ms.
const PER_STEP: u32 = 200;
const STEP: Duration = Duration::from_millis(10);

fn spoofed(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::from((0x0A00_0000 | (i & 0x00FF_FFFF)).to_be_bytes()),
        40_000,
    )
}

#[test]
fn a_replayed_handshake_flood_costs_no_diffie_hellman_once_under_load() {
    let mut net = open_tunnel(Instant::now(), CONN, (1, 2));
    // A message 1 the client sent, to replay.
    let captured = net
        .sent
        .iter()
        .find(|(from, t)| *from == CLIENT && t.payload[0] == wire::INITIATION)
        .map(|(_, t)| t.payload.clone())
        .expect("no message 1 on the wire");
    // open_tunnel's own Connect was answered already.
    net.host_mut(SERVER).events.clear();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let now = net.now;
    for chunk in payload.chunks(16 * 1024) {
        net.host_mut(CLIENT).core.send_data(now, CONN, chunk);
    }
    let mut dh_under_load = None;
    let mut sent_flood = 0u32;
    let mut opened_at = None;
    let start = net.now;
    for step in 0..1000u32 {
        let now = net.now;
        let server = net.host_mut(SERVER);
        for _ in 0..PER_STEP {
            server
                .core
                .handle_datagram(now, spoofed(sent_flood), &captured);
            sent_flood += 1;
        }
        let counters = server.core.snapshot(now).counters;
        if counters.cookies_sent > 0 && dh_under_load.is_none() {
            dh_under_load = Some(counters.dh);
        }
        if step == 100 {
            // One second into the flood, the client opens a new tunnel.
            let id = net.host(SERVER).id();
            let client = net.host_mut(CLIENT);
            client
                .core
                .open(now, SECOND_CONN, id, "127.0.0.1:9".into(), Transport::Tcp);
        }
        net.run_until(STEP, &mut |_, _| false, &mut |_| false);
        accept_connects(&mut net);
        if opened_at.is_none()
            && net
                .host(CLIENT)
                .events
                .contains(&Event::Opened { conn: SECOND_CONN })
        {
            opened_at = Some(net.now);
        }
    }
    assert_eq!(sent_flood, 200_000);
    let counters = net.host(SERVER).core.snapshot(net.now).counters;
    let dh_under_load = dh_under_load.expect("the server never came under load");
    assert!(
        dh_under_load <= 40,
        "{dh_under_load} Diffie-Hellmans before load"
    );
    assert_eq!(
        counters.dh, dh_under_load,
        "the flood cost Diffie-Hellmans under load"
    );
    assert_eq!(net.host(SERVER).received(CONN), payload, "the transfer");
    let opened = opened_at.expect("the new tunnel never opened") - (start + STEP * 100);
    assert!(
        opened < Duration::from_secs(2),
        "the new tunnel took {opened:?}"
    );
    assert!(net
        .host(CLIENT)
        .core
        .net()
        .is_online(&net.host(SERVER).identity.public_key()));
    println!(
        "{} Diffie-Hellmans before load, none after; {} cookie replies, {} dropped; new tunnel in {opened:?}",
        dh_under_load, counters.cookies_sent, counters.initiations_limited
    );
}

/// The server's driver connects every target at once.
fn accept_connects(net: &mut common::sim::Net) {
    let now = net.now;
    let server = net.host_mut(SERVER);
    let asks: Vec<_> = server
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Connect {
                friend, request, ..
            } => Some((*friend, *request)),
            _ => None,
        })
        .collect();
    server
        .events
        .retain(|e| !matches!(e, Event::Connect { .. }));
    for (friend, request) in asks {
        server.core.target_connected(
            now,
            friend,
            request,
            1000 + u64::from(request),
            Transport::Tcp,
        );
    }
}
