use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::*;
use crate::proto::identity::Identity;

const UNIX_NOW: u64 = 1_800_000_000;

fn core() -> Bootstrap {
    Bootstrap::new(BootstrapConfig {
        relay_rate: 10_000,
        relay_burst: 20_000,
        entry_ttl: Duration::from_secs(60),
    })
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 1], port))
}

fn announce_packet(identity: &Identity, sequence: u64) -> Vec<u8> {
    let record = Record::new(identity, sequence, UNIX_NOW + 300, Vec::new()).encode(identity);
    rendezvous::announce(&[9; 8], &record)
}

fn drain(core: &mut Bootstrap) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn registered(core: &mut Bootstrap, now: Instant, port: u16) -> Identity {
    let identity = Identity::generate();
    core.handle_datagram(now, UNIX_NOW, addr(port), &announce_packet(&identity, 1));
    let acks = drain(core);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        rendezvous::parse(&acks[0].payload),
        Some(Rendezvous::AnnounceAck {
            nonce: [9; 8],
            observed: addr(port)
        })
    );
    identity
}

#[test]
fn announce_then_lookup_returns_record_and_observed_address() {
    let now = Instant::now();
    let mut core = core();
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
fn stale_or_expired_announcements_are_ignored() {
    let now = Instant::now();
    let mut core = core();
    let node = Identity::generate();
    core.handle_datagram(now, UNIX_NOW, addr(1), &announce_packet(&node, 5));
    drain(&mut core);
    core.handle_datagram(now, UNIX_NOW, addr(2), &announce_packet(&node, 4));
    assert!(drain(&mut core).is_empty(), "older sequence accepted");
    let expired = Record::new(&node, 9, UNIX_NOW - 1, Vec::new()).encode(&node);
    core.handle_datagram(
        now,
        UNIX_NOW,
        addr(3),
        &rendezvous::announce(&[0; 8], &expired),
    );
    assert!(drain(&mut core).is_empty(), "expired record accepted");
    core.handle_timeout(now + Duration::from_secs(61));
    assert_eq!(core.stats().nodes, 0);
}

#[test]
fn connect_is_passed_only_for_a_registered_sender() {
    let now = Instant::now();
    let mut core = core();
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
    let mut core = core();
    let a = registered(&mut core, now, 1);
    let b = registered(&mut core, now, 2);
    let inner = vec![0xAB; 1000];
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
    let mut core = core();
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
