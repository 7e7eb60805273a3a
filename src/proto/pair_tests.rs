//! Two (or three) cores on an in-memory network with virtual time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::identity::Identity;
use super::{FriendNet, FriendNetConfig, NetEvent, Transmit};
use crate::id::PeerRef;

pub(super) fn config(accept_requests: bool) -> FriendNetConfig {
    FriendNetConfig {
        keepalive: Duration::from_secs(2),
        friend_timeout: Duration::from_secs(6),
        psk: [0; 32],
        accept_requests,
        lan_discovery: false,
        max_friends: 1024,
    }
}

pub(super) struct Peer {
    pub addr: SocketAddr,
    pub identity: Arc<Identity>,
    pub core: FriendNet,
    events: Vec<NetEvent>,
}

impl Peer {
    fn new(port: u16, now: Instant, accept_requests: bool) -> Self {
        Self::with_config(port, now, config(accept_requests))
    }

    pub fn with_config(port: u16, now: Instant, config: FriendNetConfig) -> Self {
        let identity = Arc::new(Identity::generate());
        let core = FriendNet::new(
            identity.clone(),
            config,
            now,
            Duration::from_secs(1_800_000_000),
            port as u64,
        );
        Peer {
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            identity,
            core,
            events: Vec::new(),
        }
    }

    pub fn drain(&mut self) -> Vec<Transmit> {
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
        std::iter::from_fn(|| self.core.poll_transmit()).collect()
    }

    fn received(&self) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                NetEvent::Received { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Delivers packets until the network is quiet; returns how many moved.
fn pump(nodes: &mut [&mut Peer], now: Instant) -> usize {
    let mut moved = 0;
    loop {
        let mut in_flight = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            for t in node.drain() {
                in_flight.push((i, t));
            }
        }
        if in_flight.is_empty() {
            return moved;
        }
        for (from, t) in in_flight {
            moved += 1;
            let src = nodes[from].addr;
            if let Some(dst) = nodes.iter_mut().find(|n| Some(n.addr) == t.unicast_addr()) {
                dst.core.handle_datagram(now, src, &t.payload);
            }
        }
    }
}

/// Runs timers and delivery from `start` for `span` in steps of `step`.
fn run_for(nodes: &mut [&mut Peer], start: Instant, span: Duration, step: Duration) -> Instant {
    let mut now = start;
    while now < start + span {
        now += step;
        for node in nodes.iter_mut() {
            if node.core.poll_timeout().is_some_and(|t| t <= now) {
                node.core.handle_timeout(now);
            }
        }
        pump(nodes, now);
    }
    now
}

fn connected_pair() -> (Peer, Peer, Instant) {
    let now = Instant::now();
    let mut server = Peer::new(1, now, true);
    let mut client = Peer::new(2, now, false);
    client.core.add_friend(
        now,
        PeerRef::Id(server.identity.id()),
        Some(server.addr),
        true,
    );
    client.core.handle_timeout(now);
    pump(&mut [&mut client, &mut server], now);
    (server, client, now)
}

#[test]
fn full_handshake_then_data_both_ways() {
    let (mut server, mut client, now) = connected_pair();
    assert!(client.core.is_online(&server.identity.public_key()));
    assert!(server.core.is_online(&client.identity.public_key()));
    assert!(server.events.contains(&NetEvent::FriendAdded {
        friend: client.identity.public_key()
    }));
    assert!(client
        .core
        .send(now, &server.identity.public_key(), b"to server"));
    assert!(server
        .core
        .send(now, &client.identity.public_key(), b"to client"));
    pump(&mut [&mut client, &mut server], now);
    assert_eq!(server.received(), vec![b"to server".to_vec()]);
    assert_eq!(client.received(), vec![b"to client".to_vec()]);
}

#[test]
fn keepalives_hold_the_session_and_silence_ends_it() {
    let (mut server, mut client, now) = connected_pair();
    let later = run_for(
        &mut [&mut client, &mut server],
        now,
        Duration::from_secs(30),
        Duration::from_millis(250),
    );
    assert!(
        client.core.is_online(&server.identity.public_key()),
        "keepalives should keep it up"
    );
    assert!(!client
        .events
        .iter()
        .any(|e| matches!(e, NetEvent::Offline { .. })));
    // The server goes silent: the client notices within the friend timeout.
    let mut alone = [&mut client];
    run_for(
        &mut alone,
        later,
        Duration::from_secs(7),
        Duration::from_millis(250),
    );
    assert!(client
        .events
        .iter()
        .any(|e| matches!(e, NetEvent::Offline { .. })));
}

#[test]
fn rekey_keeps_traffic_flowing() {
    let (mut server, mut client, now) = connected_pair();
    let later = run_for(
        &mut [&mut client, &mut server],
        now,
        Duration::from_secs(200),
        Duration::from_secs(1),
    );
    assert!(client
        .core
        .send(later, &server.identity.public_key(), b"after rekey"));
    pump(&mut [&mut client, &mut server], later);
    assert_eq!(server.received(), vec![b"after rekey".to_vec()]);
    assert!(!server
        .events
        .iter()
        .any(|e| matches!(e, NetEvent::Offline { .. })));
}

#[test]
fn non_friend_gets_nothing_but_the_public_record() {
    let now = Instant::now();
    let mut server = Peer::new(1, now, false);
    let friend = Identity::generate();
    server
        .core
        .add_friend(now, PeerRef::Key(friend.public_key()), None, false);
    let mut stranger = Peer::new(3, now, false);
    stranger.core.add_friend(
        now,
        PeerRef::Id(server.identity.id()),
        Some(server.addr),
        true,
    );
    stranger.core.handle_timeout(now);
    let hello = stranger.drain();
    assert_eq!(hello.len(), 1);
    server
        .core
        .handle_datagram(now, stranger.addr, &hello[0].payload);
    // The record is public (any bootstrap node hands it out) and smaller
    // than the question; its message 1 then gets nothing.
    let reply = server.drain();
    assert_eq!(reply.len(), 1);
    assert!(reply[0].payload.len() <= hello[0].payload.len());
    stranger
        .core
        .handle_datagram(now, server.addr, &reply[0].payload);
    let initiation = stranger.drain();
    assert_eq!(initiation.len(), 1);
    server
        .core
        .handle_datagram(now, stranger.addr, &initiation[0].payload);
    assert!(server.drain().is_empty(), "a stranger's handshake answered");

    // A stranger that already knows the noise key goes straight to message 1.
    let mut direct = Peer::new(4, now, false);
    let payload = super::handshake::InitPayload {
        identity: direct.identity.public_key(),
        certificate: direct.identity.certificate,
        timestamp: super::handshake::tai64n(Duration::from_secs(1_800_000_001)),
        nospam: server.identity.nospam,
        instance: 9,
        fresh: true,
    };
    let (_, msg1) = super::handshake::initiate(
        &direct.identity,
        &server.identity.noise_public,
        &[0; 32],
        &payload,
        [3; 32],
    )
    .unwrap();
    let mut packet = super::wire::initiation_body(77, &msg1);
    packet.extend_from_slice(&super::handshake::mac1(
        &super::handshake::mac1_key(&server.identity.noise_public),
        &packet,
    ));
    packet.extend_from_slice(&[0; super::wire::MAC_LEN]);
    server.core.handle_datagram(now, direct.addr, &packet);
    assert!(
        server.drain().is_empty(),
        "handshake from a non-friend answered"
    );
    assert!(server.events.is_empty());
    assert!(!server.core.is_online(&direct.identity.public_key()));
    direct.drain();
}

#[test]
fn replayed_first_message_gets_no_reply() {
    let now = Instant::now();
    let mut server = Peer::new(1, now, true);
    let mut client = Peer::new(2, now, false);
    client.core.add_friend(
        now,
        PeerRef::Id(server.identity.id()),
        Some(server.addr),
        true,
    );
    client.core.handle_timeout(now);
    pump(&mut [&mut client, &mut server], now);
    assert!(server.core.is_online(&client.identity.public_key()));

    // Capture a fresh message 1 and deliver it twice.
    client.core.connect_now(now, &server.identity.public_key());
    let later = now + Duration::from_secs(121);
    client.core.handle_timeout(later);
    let init: Vec<Transmit> = client
        .drain()
        .into_iter()
        .filter(|t| t.payload[0] == super::wire::INITIATION)
        .collect();
    assert_eq!(init.len(), 1, "rekey should send one initiation");
    server
        .core
        .handle_datagram(later, client.addr, &init[0].payload);
    assert_eq!(server.drain().len(), 1, "fresh initiation answered");
    server
        .core
        .handle_datagram(later, client.addr, &init[0].payload);
    assert!(server.drain().is_empty(), "replayed initiation answered");
}

#[test]
fn tampered_data_packet_is_dropped_silently() {
    let (mut server, mut client, now) = connected_pair();
    assert!(client
        .core
        .send(now, &server.identity.public_key(), b"payload"));
    let packet = client.drain().pop().unwrap();
    for i in 0..packet.payload.len() {
        let mut bad = packet.payload.clone();
        bad[i] ^= 0x40;
        server.core.handle_datagram(now, client.addr, &bad);
        assert!(server.drain().is_empty(), "reply to tampered byte {i}");
    }
    assert!(server.received().is_empty());
    server
        .core
        .handle_datagram(now, client.addr, &packet.payload);
    server.drain();
    assert_eq!(server.received(), vec![b"payload".to_vec()]);
    // And the same packet again is a replay.
    server
        .core
        .handle_datagram(now, client.addr, &packet.payload);
    server.drain();
    assert_eq!(server.received().len(), 1);
}

#[test]
fn garbage_of_every_length_gets_no_reply_and_no_session() {
    let (mut server, client, now) = connected_pair();
    let events_before = server.events.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for len in 0..=200usize {
        for first in [None, Some(1u8), Some(2), Some(3), Some(4), Some(5)] {
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let (Some(kind), true) = (first, len >= 4) {
                bytes[0] = kind;
                bytes[1..4].fill(0);
            }
            let stranger: SocketAddr = SocketAddr::from(([192, 0, 2, 9], 999));
            server.core.handle_datagram(now, stranger, &bytes);
            assert!(server.drain().is_empty(), "reply to {len} bytes of garbage");
        }
    }
    assert_eq!(server.events.len(), events_before, "garbage made an event");
    assert_eq!(server.core.online_friends().len(), 1);
    drop(client);
}

#[test]
fn restart_is_detected_and_recovered() {
    let (server, mut client, now) = connected_pair();
    let server_identity = server.identity.clone();
    // Same identity, new process: new instance, no state.
    let mut restarted = Peer {
        addr: server.addr,
        identity: server_identity.clone(),
        core: FriendNet::new(
            server_identity.clone(),
            config(true),
            now,
            Duration::from_secs(1_800_000_010),
            99,
        ),
        events: Vec::new(),
    };
    drop(server);
    run_for(
        &mut [&mut client, &mut restarted],
        now,
        Duration::from_secs(10),
        Duration::from_millis(250),
    );
    let offline = client
        .events
        .iter()
        .position(|e| matches!(e, NetEvent::Offline { .. }));
    let online_again = client
        .events
        .iter()
        .rposition(|e| matches!(e, NetEvent::Online { .. }));
    assert!(
        offline.is_some() && online_again > offline,
        "{:?}",
        client.events
    );
    assert!(client.core.is_online(&server_identity.public_key()));
}
