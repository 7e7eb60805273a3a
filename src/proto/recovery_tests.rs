//! Two tunnel cores on an in-memory network with virtual time: a lost
//! packet after a quiet spell, or a lost window update, must cost no more
//! than a retransmission timeout of the real round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::pair_tests::{config, Peer};
use super::tunnel::allow::AllowRule;
use super::tunnel::kcp_settings::KcpSettings;
use super::{Core, Event, TunnelConfig};
use crate::id::PeerRef;
use crate::proto::ConnId;

const CONN: ConnId = 7;
const STEP: Duration = Duration::from_millis(1);
/// DATA header, frame type, a bare KCP header and the tag: anything shorter
/// (a keepalive) carries no KCP.
const SMALLEST_KCP_DATAGRAM: usize = 16 + 1 + 24 + 16;

struct Host {
    addr: SocketAddr,
    node: Core,
    events: Vec<Event>,
}

impl Host {
    fn new(port: u16, now: Instant, server: bool) -> (Host, crate::id::ToxId) {
        let peer = Peer::with_config(port, now, config(server));
        let id = peer.identity.id();
        let tunnels = TunnelConfig {
            kcp: KcpSettings::default(),
            open_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(3600),
            allow: server.then(|| {
                vec![AllowRule {
                    host: None,
                    port: None,
                }]
            }),
        };
        let host = Host {
            addr: peer.addr,
            node: Core::new(peer.core, tunnels, now),
            events: Vec::new(),
        };
        (host, id)
    }

    fn received(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data { bytes, .. } => Some(bytes.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }
}

/// Moves datagrams until quiet. `drop` sees (from server?, bytes) and
/// says whether to lose that datagram.
fn pump(hosts: &mut [&mut Host; 2], now: Instant, drop: &mut dyn FnMut(bool, &[u8]) -> bool) {
    loop {
        let mut moved = false;
        for from in 0..2 {
            let src = hosts[from].addr;
            while let Some(event) = hosts[from].node.poll_event() {
                hosts[from].events.push(event);
            }
            while let Some(t) = hosts[from].node.poll_transmit(now) {
                moved = true;
                if drop(from == 0, &t.payload) {
                    continue;
                }
                let to = 1 - from;
                hosts[to].node.handle_datagram(now, src, &t.payload);
            }
        }
        if !moved {
            return;
        }
    }
}

fn run(
    hosts: &mut [&mut Host; 2],
    mut now: Instant,
    until: impl Fn(&[&mut Host; 2]) -> bool,
    limit: Duration,
    drop: &mut dyn FnMut(bool, &[u8]) -> bool,
) -> (Instant, bool) {
    let end = now + limit;
    while now < end {
        pump(hosts, now, drop);
        if until(hosts) {
            return (now, true);
        }
        now += STEP;
        for host in hosts.iter_mut() {
            if host.node.poll_timeout().is_some_and(|t| t <= now) {
                host.node.handle_timeout(now);
            }
        }
    }
    (now, false)
}

/// A server and a client with tunnel CONN open between them.
fn open_tunnel() -> (Host, Host, Instant) {
    let now = Instant::now();
    let (mut server, server_id) = Host::new(1, now, true);
    let (mut client, _) = Host::new(2, now, false);
    client
        .node
        .net_mut()
        .add_friend(now, PeerRef::Id(server_id), Some(server.addr), true);
    client.node.handle_timeout(now);
    client
        .node
        .open(now, CONN, server_id, "127.0.0.1:9".to_string());
    let mut keep = |_: bool, _: &[u8]| false;
    let mut hosts = [&mut server, &mut client];
    let (now, asked) = run(
        &mut hosts,
        now,
        |h| {
            h[0].events
                .iter()
                .any(|e| matches!(e, Event::Connect { .. }))
        },
        Duration::from_secs(2),
        &mut keep,
    );
    assert!(asked, "the server never asked to connect");
    let (friend, request) = hosts[0]
        .events
        .iter()
        .find_map(|e| match e {
            Event::Connect {
                friend, request, ..
            } => Some((*friend, *request)),
            _ => None,
        })
        .unwrap();
    assert!(hosts[0].node.target_connected(now, friend, request, CONN));
    let (now, opened) = run(
        &mut hosts,
        now,
        |h| h[1].events.contains(&Event::Opened { conn: CONN }),
        Duration::from_secs(2),
        &mut keep,
    );
    assert!(opened, "the client never saw the tunnel open");
    (server, client, now)
}

/// Loses the first datagram one side sends that carries KCP (keepalives
/// are shorter), and only that one.
struct LoseFirst {
    from_server: bool,
    lost: bool,
}

impl LoseFirst {
    fn new(from_server: bool) -> Self {
        LoseFirst {
            from_server,
            lost: false,
        }
    }

    fn decide(&mut self, from_server: bool, bytes: &[u8]) -> bool {
        let hit =
            from_server == self.from_server && !self.lost && bytes.len() >= SMALLEST_KCP_DATAGRAM;
        self.lost |= hit;
        hit
    }
}

/// Lets time pass with nothing lost.
fn idle(hosts: &mut [&mut Host; 2], now: Instant, span: Duration) -> Instant {
    run(hosts, now, |_| false, span, &mut |_, _| false).0
}

#[test]
fn a_loss_after_a_quiet_spell_is_repaired_at_the_real_round_trip() {
    let (mut server, mut client, now) = open_tunnel();
    let mut hosts = [&mut server, &mut client];
    // Quiet for a minute (keepalives only), then one message that arrives.
    let now = idle(&mut hosts, now, Duration::from_secs(60));
    hosts[1].node.send_data(now, CONN, b"first");
    let (now, got) = run(
        &mut hosts,
        now,
        |h| h[0].received() == b"first",
        Duration::from_secs(2),
        &mut |_, _| false,
    );
    assert!(got);
    // The next one is lost once on the way.
    hosts[1].node.send_data(now, CONN, b"second");
    let mut loser = LoseFirst::new(false);
    let (at, got) = run(
        &mut hosts,
        now,
        |h| h[0].received() == b"firstsecond",
        Duration::from_secs(30),
        &mut |from, bytes| loser.decide(from, bytes),
    );
    assert!(loser.lost, "nothing was dropped");
    assert!(got, "the lost message never arrived");
    assert!(
        at - now < Duration::from_secs(1),
        "repair took {:?}",
        at - now
    );
}

#[test]
fn a_lost_window_update_does_not_stall_the_sender() {
    let (mut server, mut client, now) = open_tunnel();
    let mut hosts = [&mut server, &mut client];
    // The server's writer is full: KCP's receive window fills and closes.
    hosts[0].node.pause(CONN);
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    for chunk in payload.chunks(16 * 1024) {
        hosts[1].node.send_data(now, CONN, chunk);
    }
    let now = idle(&mut hosts, now, Duration::from_secs(2));
    assert!(
        hosts[0].received().len() < payload.len(),
        "the window never closed"
    );
    // The writer drains; the first KCP the server sends after is lost.
    hosts[0].node.resume(now, CONN);
    let mut loser = LoseFirst::new(true);
    let (at, got) = run(
        &mut hosts,
        now,
        |h| h[0].received() == payload,
        Duration::from_secs(30),
        &mut |from, bytes| loser.decide(from, bytes),
    );
    assert!(loser.lost, "nothing was dropped");
    let arrived = hosts[0].received().len();
    assert!(got, "only {arrived} of {} bytes arrived", payload.len());
    assert!(
        at - now < Duration::from_secs(2),
        "the rest took {:?}",
        at - now
    );
}
