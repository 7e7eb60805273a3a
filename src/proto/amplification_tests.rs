//! A node never answers a source it has not authenticated with more bytes
//! than that source sent: it cannot be used to amplify a spoofed flood.

use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::pair_tests::{config, Peer};
use super::{lan, wire};
use crate::id::{PeerRef, PublicKey};

/// Random bytes behind every packet type, at the lengths that matter.
fn junk(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for kind in 0..=20u8 {
        for len in [1, 2, 16, 64, 85, 100, 241, 256, 320, 400, 1400] {
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes[..]);
            bytes[0] = kind;
            inputs.push(bytes);
        }
    }
    inputs
}

/// Feeds each input as a datagram and as a LAN datagram; returns how many
/// inputs were answered at all, after checking every answer's size.
fn feed(node: &mut Peer, now: Instant, inputs: &[Vec<u8>]) -> usize {
    let stranger: SocketAddr = "192.0.2.99:4000".parse().unwrap();
    node.drain();
    let mut answered = 0;
    for input in inputs {
        node.core.handle_datagram(now, stranger, input);
        node.core.handle_lan_datagram(now, stranger, input);
        let out = node.drain();
        for answer in &out {
            assert!(
                answer.payload.len() <= input.len(),
                "{} bytes answered with {} (type {})",
                input.len(),
                answer.payload.len(),
                input[0]
            );
        }
        answered += usize::from(!out.is_empty());
    }
    answered
}

#[test]
fn answers_to_strangers_are_never_larger_than_what_they_sent() {
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(4);
    let lan_on = || {
        let mut c = config(true);
        c.lan_discovery = true;
        c
    };

    let mut server = Peer::with_config(1, now, lan_on());
    let server_key = server.identity.public_key();
    let nonce = [5u8; 16];
    let mut inputs = vec![
        wire::hello(&nonce, &server_key.0),
        lan::query(&server_key),
        lan::here(&PublicKey([9; 32])),
    ];
    inputs.extend(junk(&mut rng));
    // The well-formed HELLO and LAN query must be answered, or the size
    // check above proved nothing.
    assert!(feed(&mut server, now, &inputs) >= 2);

    // A client looking for a friend: a spoofed "here" makes it send a HELLO.
    let mut client = Peer::with_config(2, now, lan_on());
    client
        .core
        .add_friend(now, PeerRef::Id(server.identity.id()), None, true);
    client.core.handle_timeout(now);
    let mut inputs = vec![lan::here(&server_key)];
    inputs.extend(junk(&mut rng));
    assert!(feed(&mut client, now, &inputs) >= 1);
}
