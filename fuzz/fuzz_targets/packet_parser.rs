//! Every wire parser on arbitrary bytes (outer packets, rendezvous and LAN
//! packets, records, control messages): no panic, a parsed packet keeps its
//! slices inside the input, and what parses encodes back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toxtun::proto::record::Record;
use toxtun::proto::tunnel::control::Control;
use toxtun::proto::wire::{self, Packet};
use toxtun::proto::{lan, rendezvous};

fuzz_target!(|data: &[u8]| {
    if let Some(packet) = wire::parse(data) {
        let inside = |s: &[u8]| s.len() <= data.len();
        match packet {
            Packet::HelloReply { record, .. } => {
                assert!(inside(record));
                let _ = Record::decode(record);
            }
            Packet::Initiation {
                noise,
                covered,
                covered2,
                ..
            } => {
                assert!(inside(noise) && inside(covered) && inside(covered2));
            }
            Packet::Response { noise, covered, .. } => {
                assert!(inside(noise) && inside(covered));
            }
            Packet::CookieReply { sealed, .. } => assert!(inside(sealed)),
            Packet::Data { ciphertext, .. } => assert!(inside(ciphertext)),
            Packet::Hello { .. } => {}
        }
    }
    let _ = Record::decode(data);
    if let Some(message) = Control::decode(data) {
        assert_eq!(Control::decode(&message.encode()), Some(message));
    }
    let _ = Record::claimed_identity(data);
    let _ = rendezvous::parse(data);
    if let Some(found) = lan::parse(data) {
        let again = match found {
            lan::Lan::Query(key) => lan::query(&key),
            lan::Lan::Here(key) => lan::here(&key),
        };
        assert_eq!(lan::parse(&again), Some(found));
    }
});
