use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::*;
use crate::proto::identity::Identity;
use crate::proto::record::Record;

const UNIX_NOW: u64 = 1_800_000_000;

fn core_at(now: Instant) -> Bootstrap {
    Bootstrap::new(
        BootstrapConfig {
            relay_rate: 10_000,
            relay_burst: 20_000,
            entry_ttl: Duration::from_secs(60),
            max_nodes: 1000,
            seed: 1,
        },
        now,
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 1], port))
}

fn announce_packet(identity: &Identity, sequence: u64) -> Vec<u8> {
    let record = Record::new(identity, sequence, UNIX_NOW + 300, Vec::new()).encode(identity);
    rendezvous::announce(&[9; 8], &record)
}

/// A well-formed DATA packet of `len` bytes, as a relay carries them.
fn data_packet(len: usize) -> Vec<u8> {
    let mut packet = vec![crate::proto::wire::DATA, 0, 0, 0];
    packet.resize(len, 0xAB);
    packet
}

fn drain(core: &mut Bootstrap) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

/// Answers a challenge the way a node does: signs the cookie and sends
/// its record again. Returns what came back.
fn prove(
    core: &mut Bootstrap,
    now: Instant,
    from: SocketAddr,
    identity: &Identity,
    sequence: u64,
) -> Vec<Transmit> {
    let challenge = drain(core).pop().expect("a challenge");
    let Some(Rendezvous::Challenge { nonce, cookie }) = rendezvous::parse(&challenge.payload)
    else {
        panic!("not a challenge: {:?}", challenge.payload);
    };
    assert_eq!(challenge.unicast_addr(), Some(from));
    let signature = identity.sign(&[rendezvous::PROOF_DOMAIN, &cookie].concat());
    let record = Record::new(identity, sequence, UNIX_NOW + 300, Vec::new()).encode(identity);
    let proven = rendezvous::proven_announce(&nonce, &cookie, &signature, &record);
    core.handle_datagram(now, UNIX_NOW, from, &proven);
    drain(core)
}

fn register(core: &mut Bootstrap, now: Instant, from: SocketAddr, identity: &Identity) {
    core.handle_datagram(now, UNIX_NOW, from, &announce_packet(identity, 1));
    let acks = prove(core, now, from, identity, 1);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        rendezvous::parse(&acks[0].payload),
        Some(Rendezvous::AnnounceAck {
            nonce: [9; 8],
            observed: from
        })
    );
}

fn registered(core: &mut Bootstrap, now: Instant, port: u16) -> Identity {
    let identity = Identity::generate();
    register(core, now, addr(port), &identity);
    identity
}

#[test]
fn announce_then_lookup_returns_record_and_observed_address() {
    let now = Instant::now();
    let mut core = core_at(now);
    let node = registered(&mut core, now, 1000);
    core.handle_datagram(
        now,
        UNIX_NOW,
        addr(2000),
        &rendezvous::lookup(&[1; 8], &node.public_key()),
    );
    let reply = drain(&mut core).pop().unwrap();
    assert_eq!(reply.unicast_addr(), Some(addr(2000)));
    match rendezvous::parse(&reply.payload) {
        Some(Rendezvous::LookupReply {
            nonce: [1, ..],
            found: Some((at, record)),
        }) => {
            assert_eq!(at, addr(1000));
            assert_eq!(Record::decode(record).unwrap().identity, node.public_key());
        }
        other => panic!("{other:?}"),
    }
    core.handle_datagram(
        now,
        UNIX_NOW,
        addr(2000),
        &rendezvous::lookup(&[2; 8], &PublicKey([7; 32])),
    );
    let reply = drain(&mut core).pop().unwrap();
    assert_eq!(
        rendezvous::parse(&reply.payload),
        Some(Rendezvous::LookupReply {
            nonce: [2; 8],
            found: None
        })
    );
}

#[test]
fn stale_replayed_or_expired_announcements_move_nothing() {
    let now = Instant::now();
    let mut core = core_at(now);
    let node = Identity::generate();
    register(&mut core, now, addr(1), &node);
    // A newer record from the proven address refreshes without a challenge.
    core.handle_datagram(now, UNIX_NOW, addr(1), &announce_packet(&node, 5));
    let ack = drain(&mut core).pop().unwrap();
    assert!(matches!(
        rendezvous::parse(&ack.payload),
        Some(Rendezvous::AnnounceAck { .. })
    ));
    // The same or an older record replayed from elsewhere only gets a
    // challenge, sent to the replayer, who cannot sign it.
    for sequence in [5, 4] {
        core.handle_datagram(now, UNIX_NOW, addr(2), &announce_packet(&node, sequence));
        let out = drain(&mut core);
        assert_eq!(out.len(), 1);
        assert!(matches!(
            rendezvous::parse(&out[0].payload),
            Some(Rendezvous::Challenge { .. })
        ));
    }
    assert_eq!(core.nodes.get(&node.public_key()).unwrap().addr, addr(1));
    // A proven announcement replayed from elsewhere: the cookie is bound to
    // the address it was sent to.
    core.handle_datagram(now, UNIX_NOW, addr(1), &announce_packet(&node, 3));
    let proof = drain(&mut core).pop().unwrap();
    let Some(Rendezvous::Challenge { nonce, cookie }) = rendezvous::parse(&proof.payload) else {
        panic!("no challenge for an older sequence");
    };
    let signature = node.sign(&[rendezvous::PROOF_DOMAIN, &cookie].concat());
    let record = Record::new(&node, 6, UNIX_NOW + 300, Vec::new()).encode(&node);
    let proven = rendezvous::proven_announce(&nonce, &cookie, &signature, &record);
    core.handle_datagram(now, UNIX_NOW, addr(3), &proven);
    assert!(
        drain(&mut core).is_empty(),
        "a proof replayed from elsewhere"
    );
    assert_eq!(core.nodes.get(&node.public_key()).unwrap().addr, addr(1));
    // A record whose expiry is far beyond any clock skew is refused.
    let far = Record::new(&node, 9, UNIX_NOW + 10 * 24 * 3600, Vec::new()).encode(&node);
    core.handle_datagram(now, UNIX_NOW, addr(1), &rendezvous::announce(&[0; 8], &far));
    assert!(
        drain(&mut core).is_empty(),
        "a record from the far future accepted"
    );
    core.handle_timeout(now + Duration::from_secs(61));
    assert_eq!(core.stats().nodes, 0);
}

#[test]
fn a_node_moves_once_it_proves_its_new_address() {
    let now = Instant::now();
    let mut core = core_at(now);
    let node = Identity::generate();
    register(&mut core, now, addr(1), &node);
    // Its NAT mapping changed: the next announcement comes from port 2.
    core.handle_datagram(now, UNIX_NOW, addr(2), &announce_packet(&node, 7));
    let ack = prove(&mut core, now, addr(2), &node, 7);
    assert_eq!(ack.len(), 1);
    assert_eq!(core.nodes.get(&node.public_key()).unwrap().addr, addr(2));
}

#[test]
fn clocks_a_day_apart_still_meet() {
    let now = Instant::now();
    let mut core = core_at(now);
    for (port, offset) in [(1u16, -86_400i64), (2, 86_400)] {
        let node = Identity::generate();
        let expiry = (UNIX_NOW as i64 + offset + 600) as u64;
        let record = Record::new(&node, 1, expiry, Vec::new()).encode(&node);
        core.handle_datagram(
            now,
            UNIX_NOW,
            addr(port),
            &rendezvous::announce(&[9; 8], &record),
        );
        let challenge = drain(&mut core).pop().unwrap();
        let Some(Rendezvous::Challenge { nonce, cookie }) = rendezvous::parse(&challenge.payload)
        else {
            panic!("no challenge");
        };
        let signature = node.sign(&[rendezvous::PROOF_DOMAIN, &cookie].concat());
        let proven = rendezvous::proven_announce(&nonce, &cookie, &signature, &record);
        core.handle_datagram(now, UNIX_NOW, addr(port), &proven);
        assert_eq!(
            drain(&mut core).len(),
            1,
            "a clock {offset} s off was refused"
        );
    }
}

#[test]
fn a_spoofed_announcement_never_brings_relayed_bytes_to_its_victim() {
    let now = Instant::now();
    let mut core = core_at(now);
    let attacker = registered(&mut core, now, 1);
    let victim = addr(666);
    // The attacker registers a throwaway key "at" the victim's address: the
    // challenge goes to the victim, and nobody there answers it.
    let throwaway = Identity::generate();
    core.handle_datagram(now, UNIX_NOW, victim, &announce_packet(&throwaway, 1));
    let challenges = drain(&mut core);
    assert!(challenges.iter().all(|t| t.payload.len() <= 28));
    let inner = data_packet(1000);
    let mut to_victim = 0;
    for _ in 0..100 {
        let relay = rendezvous::relay(rendezvous::RELAY, &throwaway.public_key(), &inner);
        core.handle_datagram(now, UNIX_NOW, addr(1), &relay);
        to_victim += drain(&mut core)
            .iter()
            .filter(|t| t.unicast_addr() == Some(victim))
            .count();
    }
    assert_eq!(to_victim, 0);
    let _ = attacker;
}

#[test]
fn only_friend_session_packets_are_relayed() {
    let now = Instant::now();
    let mut core = core_at(now);
    let _a = registered(&mut core, now, 1);
    let b = registered(&mut core, now, 2);
    for inner in [vec![0xAB; 1000], vec![rendezvous::RELAY, 0, 0, 0, 1, 2, 3]] {
        let relay = rendezvous::relay(rendezvous::RELAY, &b.public_key(), &inner);
        core.handle_datagram(now, UNIX_NOW, addr(1), &relay);
        assert!(drain(&mut core).is_empty(), "relayed {:?}", &inner[..4]);
    }
}

#[test]
fn the_table_is_capped_and_the_least_recently_seen_goes() {
    let now = Instant::now();
    let mut core = Bootstrap::new(
        BootstrapConfig {
            relay_rate: 10_000,
            relay_burst: 20_000,
            entry_ttl: Duration::from_secs(60),
            max_nodes: 3,
            seed: 1,
        },
        now,
    );
    let first = Identity::generate();
    register(&mut core, now, addr(1), &first);
    for port in 2..=4 {
        let later = now + Duration::from_secs(port.into());
        register(&mut core, later, addr(port), &Identity::generate());
    }
    assert_eq!(core.stats().nodes, 3);
    assert_eq!(core.stats().evicted, 1);
    assert!(core.nodes.get(&first.public_key()).is_none());
}

#[test]
fn connect_is_passed_only_for_a_registered_sender() {
    let now = Instant::now();
    let mut core = core_at(now);
    let a = registered(&mut core, now, 1);
    let b = registered(&mut core, now, 2);
    core.handle_datagram(
        now,
        UNIX_NOW,
        addr(1),
        &rendezvous::connect(&b.public_key(), &a.public_key()),
    );
    let notify = drain(&mut core).pop().unwrap();
    assert_eq!(notify.unicast_addr(), Some(addr(2)));
    assert_eq!(
        rendezvous::parse(&notify.payload),
        Some(Rendezvous::ConnectNotify {
            sender: a.public_key(),
            observed: addr(1)
        })
    );
    // Claiming to be A from elsewhere gets nothing passed on.
    core.handle_datagram(
        now,
        UNIX_NOW,
        addr(3),
        &rendezvous::connect(&b.public_key(), &a.public_key()),
    );
    assert!(drain(&mut core).is_empty());
}

#[test]
fn relay_forwards_between_registered_nodes_within_the_rate() {
    let now = Instant::now();
    let mut core = core_at(now);
    let a = registered(&mut core, now, 1);
    let b = registered(&mut core, now, 2);
    let inner = data_packet(1000);
    for _ in 0..100 {
        core.handle_datagram(
            now,
            UNIX_NOW,
            addr(1),
            &rendezvous::relay(rendezvous::RELAY, &b.public_key(), &inner),
        );
    }
    let out = drain(&mut core);
    assert_eq!(
        out.len(),
        20,
        "burst of 20000 bytes allows 20 packets of 1000"
    );
    assert!(out.iter().all(|t| t.unicast_addr() == Some(addr(2))));
    assert_eq!(
        rendezvous::parse(&out[0].payload),
        Some(Rendezvous::Relayed {
            sender: a.public_key(),
            inner: &inner[..]
        })
    );
    assert_eq!(core.stats().limited_packets, 80);
    let later = now + Duration::from_secs(1);
    for _ in 0..100 {
        core.handle_datagram(
            later,
            UNIX_NOW,
            addr(1),
            &rendezvous::relay(rendezvous::RELAY, &b.public_key(), &inner),
        );
    }
    assert_eq!(drain(&mut core).len(), 10, "10000 bytes a second");
    // Unregistered senders and unknown targets get nothing relayed.
    core.handle_datagram(
        later,
        UNIX_NOW,
        addr(9),
        &rendezvous::relay(rendezvous::RELAY, &b.public_key(), &inner),
    );
    core.handle_datagram(
        later,
        UNIX_NOW,
        addr(2),
        &rendezvous::relay(rendezvous::RELAY, &PublicKey([5; 32]), &inner),
    );
    assert!(drain(&mut core).is_empty());
}

#[test]
fn no_answer_to_an_unauthenticated_source_is_larger_than_its_question() {
    let now = Instant::now();
    let mut core = core_at(now);
    let node = registered(&mut core, now, 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let stranger = addr(4444);
    let mut questions: Vec<Vec<u8>> = vec![
        rendezvous::lookup(&[0; 8], &node.public_key()),
        rendezvous::lookup(&[0; 8], &PublicKey([1; 32])),
        announce_packet(&Identity::generate(), 1),
    ];
    for len in 0..=400usize {
        for kind in 0..=14u8 {
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len >= 4 {
                bytes[0] = kind;
                bytes[1..4].fill(0);
            }
            questions.push(bytes);
        }
    }
    let mut answered = 0;
    for question in &questions {
        core.handle_datagram(now, UNIX_NOW, stranger, question);
        for reply in drain(&mut core) {
            assert_eq!(reply.unicast_addr(), Some(stranger));
            assert!(
                reply.payload.len() <= question.len(),
                "{} bytes answered {}",
                reply.payload.len(),
                question.len()
            );
            answered += 1;
        }
    }
    assert!(answered >= 3, "the valid questions were answered");
}
