//! Packets between nodes and bootstrap nodes (doc/protocol.md, "Bootstrap").
//! Like the friend packets: type byte, three zero bytes, fixed layouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::id::PublicKey;

pub const ANNOUNCE: u8 = 6;
pub const ANNOUNCE_ACK: u8 = 7;
pub const LOOKUP: u8 = 8;
pub const LOOKUP_REPLY: u8 = 9;
pub const CONNECT: u8 = 10;
pub const CONNECT_NOTIFY: u8 = 11;
pub const RELAY: u8 = 12;
pub const RELAYED: u8 = 13;
/// Types 14 and 15 are LAN discovery's.
pub const CHALLENGE: u8 = 16;
pub const PROVEN_ANNOUNCE: u8 = 17;

/// Whether a packet of this type is one of these.
pub fn is_rendezvous(kind: u8) -> bool {
    (ANNOUNCE..=RELAYED).contains(&kind) || kind == CHALLENGE || kind == PROVEN_ANNOUNCE
}

/// A cookie a bootstrap node binds to an address and a key.
pub const COOKIE_LEN: usize = 16;
/// What an address proof signs: the domain, then the cookie.
pub const PROOF_DOMAIN: &[u8] = b"toxtun address proof v1";

pub const ADDR_LEN: usize = 19;
/// A lookup is padded to this so the reply (a record) is never larger.
pub const LOOKUP_LEN: usize = 320;
pub const CONNECT_LEN: usize = 4 + 32 + 32;
const HEADER: usize = 4;

#[derive(Debug, PartialEq, Eq)]
pub enum Rendezvous<'a> {
    Announce {
        nonce: [u8; 8],
        record: &'a [u8],
    },
    /// "Prove you receive at the address this came from": sign the cookie.
    Challenge {
        nonce: [u8; 8],
        cookie: [u8; COOKIE_LEN],
    },
    /// An announcement with the signed cookie: the address is proven.
    ProvenAnnounce {
        nonce: [u8; 8],
        cookie: [u8; COOKIE_LEN],
        signature: [u8; 64],
        record: &'a [u8],
    },
    AnnounceAck {
        nonce: [u8; 8],
        observed: SocketAddr,
    },
    Lookup {
        nonce: [u8; 8],
        key: PublicKey,
    },
    LookupReply {
        nonce: [u8; 8],
        found: Option<(SocketAddr, &'a [u8])>,
    },
    Connect {
        target: PublicKey,
        sender: PublicKey,
    },
    ConnectNotify {
        sender: PublicKey,
        observed: SocketAddr,
    },
    Relay {
        target: PublicKey,
        inner: &'a [u8],
    },
    Relayed {
        sender: PublicKey,
        inner: &'a [u8],
    },
}

pub fn encode_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    let mut ip = [0u8; 16];
    match addr.ip() {
        IpAddr::V4(v4) => {
            out.push(4);
            ip[..4].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            ip = v6.octets();
        }
    }
    out.extend_from_slice(&ip);
    out.extend_from_slice(&addr.port().to_le_bytes());
}

pub fn decode_addr(bytes: &[u8]) -> Option<SocketAddr> {
    let bytes = bytes.get(..ADDR_LEN)?;
    let port = u16::from_le_bytes([bytes[17], bytes[18]]);
    let ip = match bytes[0] {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[1], bytes[2], bytes[3], bytes[4])),
        6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[1..17]).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn key_at(bytes: &[u8], at: usize) -> Option<PublicKey> {
    Some(PublicKey(bytes.get(at..at + 32)?.try_into().ok()?))
}

fn nonce(bytes: &[u8]) -> Option<[u8; 8]> {
    bytes.get(HEADER..HEADER + 8)?.try_into().ok()
}

pub fn parse(bytes: &[u8]) -> Option<Rendezvous<'_>> {
    if bytes.len() < HEADER || bytes[1..4] != [0, 0, 0] {
        return None;
    }
    let body = &bytes[HEADER..];
    match bytes[0] {
        ANNOUNCE if body.len() > 8 => Some(Rendezvous::Announce {
            nonce: nonce(bytes)?,
            record: &body[8..],
        }),
        CHALLENGE if body.len() == 8 + COOKIE_LEN => Some(Rendezvous::Challenge {
            nonce: nonce(bytes)?,
            cookie: body[8..].try_into().ok()?,
        }),
        PROVEN_ANNOUNCE if body.len() > 8 + COOKIE_LEN + 64 => Some(Rendezvous::ProvenAnnounce {
            nonce: nonce(bytes)?,
            cookie: body[8..8 + COOKIE_LEN].try_into().ok()?,
            signature: body[8 + COOKIE_LEN..8 + COOKIE_LEN + 64].try_into().ok()?,
            record: &body[8 + COOKIE_LEN + 64..],
        }),
        ANNOUNCE_ACK if body.len() == 8 + ADDR_LEN => Some(Rendezvous::AnnounceAck {
            nonce: nonce(bytes)?,
            observed: decode_addr(&body[8..])?,
        }),
        LOOKUP if bytes.len() == LOOKUP_LEN => Some(Rendezvous::Lookup {
            nonce: nonce(bytes)?,
            key: key_at(body, 8)?,
        }),
        LOOKUP_REPLY if body.len() == 8 => Some(Rendezvous::LookupReply {
            nonce: nonce(bytes)?,
            found: None,
        }),
        LOOKUP_REPLY if body.len() > 8 + ADDR_LEN => Some(Rendezvous::LookupReply {
            nonce: nonce(bytes)?,
            found: Some((decode_addr(&body[8..])?, &body[8 + ADDR_LEN..])),
        }),
        CONNECT if bytes.len() == CONNECT_LEN => Some(Rendezvous::Connect {
            target: key_at(body, 0)?,
            sender: key_at(body, 32)?,
        }),
        CONNECT_NOTIFY if body.len() == 32 + ADDR_LEN => Some(Rendezvous::ConnectNotify {
            sender: key_at(body, 0)?,
            observed: decode_addr(&body[32..])?,
        }),
        RELAY if body.len() > 32 => Some(Rendezvous::Relay {
            target: key_at(body, 0)?,
            inner: &body[32..],
        }),
        RELAYED if body.len() > 32 => Some(Rendezvous::Relayed {
            sender: key_at(body, 0)?,
            inner: &body[32..],
        }),
        _ => None,
    }
}

fn header(kind: u8, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out
}

pub fn announce(nonce: &[u8; 8], record: &[u8]) -> Vec<u8> {
    let mut out = header(ANNOUNCE, HEADER + 8 + record.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(record);
    out
}

pub fn challenge(nonce: &[u8; 8], cookie: &[u8; COOKIE_LEN]) -> Vec<u8> {
    let mut out = header(CHALLENGE, HEADER + 8 + COOKIE_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(cookie);
    out
}

pub fn proven_announce(
    nonce: &[u8; 8],
    cookie: &[u8; COOKIE_LEN],
    signature: &[u8; 64],
    record: &[u8],
) -> Vec<u8> {
    let mut out = header(PROVEN_ANNOUNCE, HEADER + 8 + COOKIE_LEN + 64 + record.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(cookie);
    out.extend_from_slice(signature);
    out.extend_from_slice(record);
    out
}

pub fn announce_ack(nonce: &[u8; 8], observed: &SocketAddr) -> Vec<u8> {
    let mut out = header(ANNOUNCE_ACK, HEADER + 8 + ADDR_LEN);
    out.extend_from_slice(nonce);
    encode_addr(observed, &mut out);
    out
}

pub fn lookup(nonce: &[u8; 8], key: &PublicKey) -> Vec<u8> {
    let mut out = header(LOOKUP, LOOKUP_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&key.0);
    out.resize(LOOKUP_LEN, 0);
    out
}

pub fn lookup_reply(nonce: &[u8; 8], found: Option<(&SocketAddr, &[u8])>) -> Vec<u8> {
    let mut out = header(LOOKUP_REPLY, LOOKUP_LEN);
    out.extend_from_slice(nonce);
    if let Some((addr, record)) = found {
        encode_addr(addr, &mut out);
        out.extend_from_slice(record);
    }
    out
}

pub fn connect(target: &PublicKey, sender: &PublicKey) -> Vec<u8> {
    let mut out = header(CONNECT, CONNECT_LEN);
    out.extend_from_slice(&target.0);
    out.extend_from_slice(&sender.0);
    out
}

pub fn connect_notify(sender: &PublicKey, observed: &SocketAddr) -> Vec<u8> {
    let mut out = header(CONNECT_NOTIFY, HEADER + 32 + ADDR_LEN);
    out.extend_from_slice(&sender.0);
    encode_addr(observed, &mut out);
    out
}

/// `kind` is RELAY (node to bootstrap) or RELAYED (bootstrap to node).
pub fn relay(kind: u8, key: &PublicKey, inner: &[u8]) -> Vec<u8> {
    let mut out = header(kind, HEADER + 32 + inner.len());
    out.extend_from_slice(&key.0);
    out.extend_from_slice(inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = PublicKey([1; 32]);
        let b = PublicKey([2; 32]);
        let v4: SocketAddr = "203.0.113.5:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:9".parse().unwrap();
        assert_eq!(
            parse(&announce(&[3; 8], b"rec")),
            Some(Rendezvous::Announce {
                nonce: [3; 8],
                record: b"rec"
            })
        );
        assert_eq!(
            parse(&challenge(&[3; 8], &[4; COOKIE_LEN])),
            Some(Rendezvous::Challenge {
                nonce: [3; 8],
                cookie: [4; COOKIE_LEN]
            })
        );
        assert_eq!(
            parse(&proven_announce(
                &[3; 8],
                &[4; COOKIE_LEN],
                &[5; 64],
                b"rec"
            )),
            Some(Rendezvous::ProvenAnnounce {
                nonce: [3; 8],
                cookie: [4; COOKIE_LEN],
                signature: [5; 64],
                record: b"rec"
            })
        );
        assert_eq!(
            parse(&announce_ack(&[3; 8], &v6)),
            Some(Rendezvous::AnnounceAck {
                nonce: [3; 8],
                observed: v6
            })
        );
        assert_eq!(
            parse(&lookup(&[4; 8], &a)),
            Some(Rendezvous::Lookup {
                nonce: [4; 8],
                key: a
            })
        );
        assert_eq!(
            parse(&lookup_reply(&[4; 8], Some((&v4, b"record")))),
            Some(Rendezvous::LookupReply {
                nonce: [4; 8],
                found: Some((v4, &b"record"[..]))
            })
        );
        assert_eq!(
            parse(&lookup_reply(&[4; 8], None)),
            Some(Rendezvous::LookupReply {
                nonce: [4; 8],
                found: None
            })
        );
        assert_eq!(
            parse(&connect(&a, &b)),
            Some(Rendezvous::Connect {
                target: a,
                sender: b
            })
        );
        assert_eq!(
            parse(&connect_notify(&b, &v4)),
            Some(Rendezvous::ConnectNotify {
                sender: b,
                observed: v4
            })
        );
        assert_eq!(
            parse(&relay(RELAY, &a, b"x")),
            Some(Rendezvous::Relay {
                target: a,
                inner: b"x"
            })
        );
        assert_eq!(
            parse(&relay(RELAYED, &b, b"y")),
            Some(Rendezvous::Relayed {
                sender: b,
                inner: b"y"
            })
        );
    }

    #[test]
    fn truncated_fixed_size_packets_are_rejected() {
        let a = PublicKey([1; 32]);
        let v4: SocketAddr = "203.0.113.5:4000".parse().unwrap();
        for packet in [
            challenge(&[1; 8], &[2; COOKIE_LEN]),
            announce_ack(&[1; 8], &v4),
            lookup(&[1; 8], &a),
            connect(&a, &a),
            connect_notify(&a, &v4),
        ] {
            for len in 0..packet.len() {
                assert_eq!(
                    parse(&packet[..len]),
                    None,
                    "type {} cut to {len}",
                    packet[0]
                );
            }
        }
        let mut bad_family = announce_ack(&[1; 8], &v4);
        bad_family[12] = 5;
        assert_eq!(parse(&bad_family), None);
    }
}
