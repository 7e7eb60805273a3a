//! What a stranger can learn and make a node do: the nospam cannot be
//! tested offline, guesses online are capped per source, and a replayed
//! message 1 moves nothing.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::sim::{addr, identity, net_config, Host, UNIX_START};
use toxtun::id::{PeerRef, ToxId};
use toxtun::proto::handshake::{self, InitPayload};
use toxtun::proto::identity::Identity;
use toxtun::proto::{wire, FriendNet, NetEvent};

/// Where message 1's encrypted payload starts: header, sender index, the
/// ephemeral key and the encrypted static key come before it.
const PAYLOAD_AT: usize = 4 + 4 + 32 + 48;
const MAC1_AT: usize = wire::MAC1_AT;
const MAC2_AT: usize = wire::MAC2_AT;

/// The HELLO and message 1 a client sends to a server it names with
/// `nospam`; seeded, so only the nospam differs between two calls.
fn first_messages(nospam: [u8; 4]) -> (Vec<u8>, Vec<u8>) {
    let now = Instant::now();
    let mut server = Host::new(1, now, true, 1);
    let mut client = Host::new(2, now, false, 2);
    let id = ToxId::new(server.identity.public_key(), nospam);
    client
        .core
        .net_mut()
        .add_friend(now, PeerRef::Id(id), Some(server.addr), true);
    client.core.handle_timeout(now);
    let hello = client.core.poll_transmit(now).expect("a hello").payload;
    assert_eq!(hello[0], 1, "not a HELLO");
    server.core.handle_datagram(now, client.addr, &hello);
    let reply = server
        .core
        .poll_transmit(now)
        .expect("a hello reply")
        .payload;
    client.core.handle_datagram(now, server.addr, &reply);
    let initiation = client.core.poll_transmit(now).expect("message 1").payload;
    assert_eq!(initiation.len(), wire::INITIATION_LEN);
    (hello, initiation)
}

#[test]
fn nothing_outside_the_encrypted_payload_depends_on_the_nospam() {
    let (hello_a, init_a) = first_messages([1, 2, 3, 4]);
    let (hello_b, init_b) = first_messages([9, 9, 9, 9]);
    assert_eq!(hello_a, hello_b, "HELLO depends on the nospam");
    assert_eq!(
        init_a[..PAYLOAD_AT],
        init_b[..PAYLOAD_AT],
        "message 1 differs before its encrypted payload"
    );
    assert_ne!(init_a[PAYLOAD_AT..MAC1_AT], init_b[PAYLOAD_AT..MAC1_AT]);
    assert_ne!(init_a[MAC1_AT..MAC2_AT], init_b[MAC1_AT..MAC2_AT]);
    // No cookie was asked for: mac2 is zeros in both.
    assert_eq!(init_a[MAC2_AT..], init_b[MAC2_AT..]);
    // And the same nospam gives the same bytes: the difference above is
    // the nospam's, not chance's.
    assert_eq!(first_messages([1, 2, 3, 4]).1, init_a);
}

/// Message 1 from `from_identity` naming `nospam`, as a guesser sends it.
fn guess(guesser: &Identity, server: &Identity, nospam: [u8; 4], sender: u32) -> Vec<u8> {
    let payload = InitPayload {
        identity: guesser.public_key(),
        certificate: guesser.certificate,
        timestamp: handshake::tai64n(UNIX_START + Duration::from_secs(sender.into())),
        nospam,
        instance: 1,
        fresh: true,
    };
    let seed = [sender as u8; 32];
    let (_, msg1) =
        handshake::initiate(guesser, &server.noise_public, &[0; 32], &payload, seed).unwrap();
    let mut packet = wire::initiation_body(sender, &msg1);
    let mac = handshake::mac1(&handshake::mac1_key(&server.noise_public), &packet);
    packet.extend_from_slice(&mac);
    packet.extend_from_slice(&[0; wire::MAC_LEN]);
    packet
}

#[test]
fn guesses_from_one_source_are_capped_and_add_no_friend() {
    let now = Instant::now();
    let server_identity = identity(1);
    let mut server = FriendNet::new(
        server_identity.clone(),
        net_config(true),
        now,
        UNIX_START,
        1,
    );
    let guesser = identity(66);
    let source: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    for i in 0..1000u32 {
        let nospam = (i ^ 0xA5A5_0000).to_be_bytes();
        assert_ne!(nospam, server_identity.nospam);
        let packet = guess(&guesser, &server_identity, nospam, i);
        server.handle_datagram(now, source, &packet);
    }
    let counters = server.counters();
    // The documented per-source burst: 5, all at one instant. Past the
    // first 32 the node is under load and asks for cookies instead (16 at
    // once per source), so the rest cost no Diffie-Hellman at all.
    assert_eq!(counters.dh, 5, "{counters:?}");
    assert_eq!(counters.cookies_sent, 16, "{counters:?}");
    assert_eq!(counters.initiations_limited, 1000 - 5 - 16, "{counters:?}");
    assert!(!server.is_friend(&guesser.public_key()));
    assert!(std::iter::from_fn(|| server.poll_event())
        .all(|e| !matches!(e, NetEvent::FriendAdded { .. })));
    for answer in std::iter::from_fn(|| server.poll_transmit()) {
        assert_eq!(
            answer.payload[0],
            wire::COOKIE_REPLY,
            "a guess was answered"
        );
        assert!(answer.payload.len() < wire::INITIATION_LEN);
    }

    // A genuine new friend at another address is not held up by that
    // flood: it is asked for a cookie too, proves its address with mac2,
    // and is through.
    let friend_identity = identity(67);
    let mut friend = FriendNet::new(
        friend_identity.clone(),
        net_config(false),
        now,
        UNIX_START,
        67,
    );
    let friend_addr = addr(9);
    let server_addr = addr(1);
    friend.add_friend(
        now,
        PeerRef::Id(server_identity.id()),
        Some(server_addr),
        true,
    );
    friend.handle_timeout(now);
    for _ in 0..6 {
        while let Some(t) = friend.poll_transmit() {
            server.handle_datagram(now, friend_addr, &t.payload);
        }
        while let Some(t) = server.poll_transmit() {
            friend.handle_datagram(now, server_addr, &t.payload);
        }
    }
    assert!(server.is_friend(&friend_identity.public_key()));
    assert!(friend.is_online(&server_identity.public_key()));
    assert_eq!(
        server.counters().cookies_sent,
        17,
        "the friend was not asked for a cookie"
    );
}

#[test]
fn a_replayed_message_1_moves_nothing_before_key_confirmation() {
    let now = Instant::now();
    let server_identity = identity(1);
    let client_identity = identity(2);
    let client_addr = addr(2);
    let attacker: SocketAddr = "203.0.113.66:999".parse().unwrap();
    // A server that dials its friend at the friend's [peers] address.
    let mut server = FriendNet::new(
        server_identity.clone(),
        net_config(false),
        now,
        UNIX_START,
        1,
    );
    server.add_friend(
        now,
        PeerRef::Key(client_identity.public_key()),
        Some(client_addr),
        true,
    );
    std::iter::from_fn(|| server.poll_transmit()).count();
    // A message 1 the friend sent once, replayed from elsewhere (after a
    // server restart nothing remembers its timestamp).
    let packet = guess(
        &client_identity,
        &server_identity,
        server_identity.nospam,
        77,
    );
    server.handle_datagram(now, attacker, &packet);
    let answered: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
    assert_eq!(
        answered.len(),
        1,
        "message 2 goes back the way message 1 came"
    );
    // The replayer cannot confirm the keys; the server's own handshakes
    // still go to its friend's address, never to the replayer's.
    let mut at = now;
    for _ in 0..20 {
        at += Duration::from_millis(500);
        server.handle_timeout(at);
        for t in std::iter::from_fn(|| server.poll_transmit()) {
            assert_eq!(t.unicast_addr(), Some(client_addr), "sent to {:?}", t.dst);
        }
    }
    assert!(!server.is_online(&client_identity.public_key()));
}

#[test]
fn a_friend_request_without_the_psk_is_never_remembered() {
    let now = Instant::now();
    let server_identity = identity(1);
    let mut with_psk = net_config(true);
    with_psk.psk = [7; 32];
    let mut server = FriendNet::new(server_identity.clone(), with_psk, now, UNIX_START, 1);
    // It knows the whole ID, nospam included, but not the psk.
    let stranger_identity = identity(68);
    let mut stranger = FriendNet::new(
        stranger_identity.clone(),
        net_config(false),
        now,
        UNIX_START,
        68,
    );
    let (server_addr, stranger_addr) = (addr(1), addr(68));
    stranger.add_friend(
        now,
        PeerRef::Id(server_identity.id()),
        Some(server_addr),
        true,
    );
    let mut at = now;
    for _ in 0..40 {
        stranger.handle_timeout(at);
        server.handle_timeout(at);
        while let Some(t) = stranger.poll_transmit() {
            server.handle_datagram(at, stranger_addr, &t.payload);
        }
        while let Some(t) = server.poll_transmit() {
            stranger.handle_datagram(at, server_addr, &t.payload);
        }
        at += Duration::from_millis(500);
    }
    assert!(
        server.counters().dh > 0,
        "the stranger never got as far as a handshake"
    );
    assert!(std::iter::from_fn(|| server.poll_event())
        .all(|e| !matches!(e, NetEvent::FriendAdded { .. })));
    assert!(!stranger.is_online(&server_identity.public_key()));
    // Once it stops asking, what it made the server hold goes.
    server.handle_timeout(at + Duration::from_secs(11));
    assert!(
        !server.is_friend(&stranger_identity.public_key()),
        "still held"
    );
}

#[test]
fn friend_requests_beyond_the_limit_are_refused() {
    let now = Instant::now();
    let server_identity = identity(1);
    let mut config = net_config(true);
    config.max_friends = 2;
    let mut server = FriendNet::new(server_identity.clone(), config, now, UNIX_START, 1);
    let nospam = server_identity.nospam;
    for (i, seed) in [70u64, 71, 72].into_iter().enumerate() {
        let friend = identity(seed);
        let packet = guess(&friend, &server_identity, nospam, i as u32);
        server.handle_datagram(now, addr(10 + i as u16), &packet);
        let answered = std::iter::from_fn(|| server.poll_transmit()).count();
        assert_eq!(answered, usize::from(i < 2), "request {i}");
        assert_eq!(server.is_friend(&friend.public_key()), i < 2, "request {i}");
    }
}
