//! LAN discovery, so two nodes on one network need no bootstrap node. A
//! node looking for an offline friend broadcasts a query naming the friend's
//! key to the LAN port; the friend answers from its own UDP socket, and the
//! source of that answer is where the handshake then goes (it proves
//! nothing by itself: only the handshake authenticates).
//!
//! Both packets are the same fixed size, so an answer is never larger than
//! the query that caused it, nor the handshake larger than the answer.

use crate::id::PublicKey;

pub const QUERY: u8 = 14;
pub const HERE: u8 = 15;
/// As large as a HELLO, the largest packet an answer makes us send.
pub const LEN: usize = 256;
/// Queries are broadcast to this port; each node listens on it with
/// SO_REUSEPORT beside its own UDP socket.
pub const PORT: u16 = 33446;
const MAGIC: &[u8; 4] = b"TXLN";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lan {
    /// "Is the node with this key here?"
    Query(PublicKey),
    /// "I am the node with this key, at the address this came from."
    Here(PublicKey),
}

fn packet(kind: u8, key: &PublicKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN);
    out.push(kind);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.resize(LEN, 0);
    out
}

pub fn query(key: &PublicKey) -> Vec<u8> {
    packet(QUERY, key)
}

pub fn here(key: &PublicKey) -> Vec<u8> {
    packet(HERE, key)
}

/// Where a probe carries its sender's instance number, in what is
/// otherwise padding (so nodes that do not know probes read a query).
const INSTANCE: std::ops::Range<usize> = 37..45;

/// A query for the sender's own key, carrying the number of the running
/// process: the sender knows its own probe when it comes back, and any
/// other node on the same key answers it, so two nodes on one key are
/// found out.
pub fn probe(key: &PublicKey, instance: u64) -> Vec<u8> {
    let mut out = query(key);
    out[INSTANCE].copy_from_slice(&instance.to_le_bytes());
    out
}

/// The instance number a probe carries; 0 for a plain query.
pub fn instance_of(bytes: &[u8]) -> u64 {
    bytes
        .get(INSTANCE)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

pub fn parse(bytes: &[u8]) -> Option<Lan> {
    if bytes.len() != LEN || &bytes[1..5] != MAGIC {
        return None;
    }
    let key = PublicKey(bytes[5..37].try_into().ok()?);
    match bytes[0] {
        QUERY => Some(Lan::Query(key)),
        HERE => Some(Lan::Here(key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let key = PublicKey([7; 32]);
        assert_eq!(parse(&query(&key)), Some(Lan::Query(key)));
        assert_eq!(parse(&here(&key)), Some(Lan::Here(key)));
        let mut short = query(&key);
        short.pop();
        assert_eq!(parse(&short), None);
        let mut bad_magic = here(&key);
        bad_magic[1] ^= 1;
        assert_eq!(parse(&bad_magic), None);
        let mut bad_kind = here(&key);
        bad_kind[0] = 99;
        assert_eq!(parse(&bad_kind), None);
    }

    #[test]
    fn a_probe_is_a_query_that_carries_its_instance() {
        let key = PublicKey([7; 32]);
        let probe = probe(&key, 0x0102_0304_0506_0708);
        assert_eq!(parse(&probe), Some(Lan::Query(key)));
        assert_eq!(instance_of(&probe), 0x0102_0304_0506_0708);
        assert_eq!(instance_of(&query(&key)), 0);
    }
}
