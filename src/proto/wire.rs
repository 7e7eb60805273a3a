//! Outer packet layouts (doc/protocol.md). Parsing never allocates and never
//! trusts a length it has not checked.

pub const HELLO: u8 = 1;
pub const HELLO_REPLY: u8 = 2;
pub const INITIATION: u8 = 3;
pub const RESPONSE: u8 = 4;
pub const DATA: u8 = 5;
/// "Prove your address first": the answer to a message 1 under load.
pub const COOKIE_REPLY: u8 = 18;

pub const NONCE_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
pub const TAG_LEN: usize = 16;

/// HELLO is padded to this size so a HELLO_REPLY can never be larger.
pub const HELLO_LEN: usize = 256;

/// Handshake payload inside Noise message 1: identity key, certificate,
/// TAI64N timestamp, nospam, instance, fresh flag.
pub const INIT_PAYLOAD_LEN: usize = 32 + 64 + 12 + 4 + 8 + 1;
/// Noise IK message 1: ephemeral, encrypted static, encrypted payload.
pub const NOISE_MSG1_LEN: usize = 32 + (32 + TAG_LEN) + (INIT_PAYLOAD_LEN + TAG_LEN);
/// Header, sender index, Noise message 1, mac1, mac2.
pub const INITIATION_LEN: usize = 8 + NOISE_MSG1_LEN + MAC_LEN + MAC_LEN;
/// Where mac1 starts; mac2 follows it.
pub const MAC1_AT: usize = 8 + NOISE_MSG1_LEN;
pub const MAC2_AT: usize = MAC1_AT + MAC_LEN;
/// Receiver index, 24-byte nonce, the encrypted 16-byte cookie and its tag.
pub const COOKIE_NONCE_LEN: usize = 24;
pub const COOKIE_REPLY_LEN: usize = 8 + COOKIE_NONCE_LEN + 16 + TAG_LEN;
/// Message 2 payload: the responder's instance and fresh flag.
pub const RESPONSE_PAYLOAD_LEN: usize = 8 + 1;
pub const NOISE_MSG2_LEN: usize = 32 + RESPONSE_PAYLOAD_LEN + TAG_LEN;
pub const RESPONSE_LEN: usize = 12 + NOISE_MSG2_LEN + MAC_LEN;
pub const DATA_HEADER_LEN: usize = 16;
pub const DATA_MIN_LEN: usize = DATA_HEADER_LEN + TAG_LEN;

#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// "Send me the record of the node with key `target`": nothing in it
    /// depends on the target's nospam.
    Hello {
        nonce: [u8; NONCE_LEN],
        target: [u8; 32],
    },
    HelloReply {
        nonce: [u8; NONCE_LEN],
        record: &'a [u8],
    },
    Initiation {
        sender: u32,
        noise: &'a [u8],
        /// Everything before mac1, which mac1 covers.
        covered: &'a [u8],
        mac1: [u8; MAC_LEN],
        /// Everything before mac2 (mac1 included), which mac2 covers.
        covered2: &'a [u8],
        /// All zeros unless the initiator holds a cookie from us.
        mac2: [u8; MAC_LEN],
    },
    Response {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
        covered: &'a [u8],
        mac1: [u8; MAC_LEN],
    },
    Data {
        receiver: u32,
        counter: u64,
        ciphertext: &'a [u8],
    },
    CookieReply {
        receiver: u32,
        nonce: [u8; COOKIE_NONCE_LEN],
        sealed: &'a [u8],
    },
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("caller checked the length")
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(&bytes[at..at + 4]))
}

/// Parses an outer packet; None for anything malformed (which gets no reply).
pub fn parse(bytes: &[u8]) -> Option<Packet<'_>> {
    if bytes.len() < 4 || bytes[1..4] != [0, 0, 0] {
        return None;
    }
    match bytes[0] {
        HELLO if bytes.len() == HELLO_LEN => Some(Packet::Hello {
            nonce: array(&bytes[4..20]),
            target: array(&bytes[20..52]),
        }),
        HELLO_REPLY if bytes.len() > 4 + NONCE_LEN && bytes.len() <= HELLO_LEN => {
            Some(Packet::HelloReply {
                nonce: array(&bytes[4..20]),
                record: &bytes[20..],
            })
        }
        INITIATION if bytes.len() == INITIATION_LEN => Some(Packet::Initiation {
            sender: u32_at(bytes, 4),
            noise: &bytes[8..MAC1_AT],
            covered: &bytes[..MAC1_AT],
            mac1: array(&bytes[MAC1_AT..MAC2_AT]),
            covered2: &bytes[..MAC2_AT],
            mac2: array(&bytes[MAC2_AT..]),
        }),
        COOKIE_REPLY if bytes.len() == COOKIE_REPLY_LEN => Some(Packet::CookieReply {
            receiver: u32_at(bytes, 4),
            nonce: array(&bytes[8..8 + COOKIE_NONCE_LEN]),
            sealed: &bytes[8 + COOKIE_NONCE_LEN..],
        }),
        RESPONSE if bytes.len() == RESPONSE_LEN => {
            let mac_at = RESPONSE_LEN - MAC_LEN;
            Some(Packet::Response {
                sender: u32_at(bytes, 4),
                receiver: u32_at(bytes, 8),
                noise: &bytes[12..mac_at],
                covered: &bytes[..mac_at],
                mac1: array(&bytes[mac_at..]),
            })
        }
        DATA if bytes.len() >= DATA_MIN_LEN => Some(Packet::Data {
            receiver: u32_at(bytes, 4),
            counter: u64::from_le_bytes(array(&bytes[8..16])),
            ciphertext: &bytes[16..],
        }),
        _ => None,
    }
}

fn header(kind: u8, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out
}

pub fn hello(nonce: &[u8; NONCE_LEN], target: &[u8; 32]) -> Vec<u8> {
    let mut out = header(HELLO, HELLO_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(target);
    out.resize(HELLO_LEN, 0);
    out
}

pub fn hello_reply(nonce: &[u8; NONCE_LEN], record: &[u8]) -> Option<Vec<u8>> {
    let mut out = header(HELLO_REPLY, HELLO_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(record);
    (out.len() <= HELLO_LEN).then_some(out)
}

/// Initiation without mac1 and mac2; the caller appends them.
pub fn initiation_body(sender: u32, noise: &[u8]) -> Vec<u8> {
    let mut out = header(INITIATION, INITIATION_LEN);
    out.extend_from_slice(&sender.to_le_bytes());
    out.extend_from_slice(noise);
    out
}

pub fn cookie_reply(receiver: u32, nonce: &[u8; COOKIE_NONCE_LEN], sealed: &[u8]) -> Vec<u8> {
    let mut out = header(COOKIE_REPLY, COOKIE_REPLY_LEN);
    out.extend_from_slice(&receiver.to_le_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

pub fn response_body(sender: u32, receiver: u32, noise: &[u8]) -> Vec<u8> {
    let mut out = header(RESPONSE, RESPONSE_LEN);
    out.extend_from_slice(&sender.to_le_bytes());
    out.extend_from_slice(&receiver.to_le_bytes());
    out.extend_from_slice(noise);
    out
}

/// Writes the data header into `out`, which the caller then fills with
/// ciphertext from offset DATA_HEADER_LEN.
pub fn data_header(out: &mut [u8], receiver: u32, counter: u64) {
    out[..4].copy_from_slice(&[DATA, 0, 0, 0]);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..16].copy_from_slice(&counter.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_protocol_doc() {
        assert_eq!(INITIATION_LEN, 257);
        assert_eq!(COOKIE_REPLY_LEN, 64);
        const {
            assert!(
                COOKIE_REPLY_LEN < INITIATION_LEN,
                "a cookie reply must not amplify"
            )
        };
        assert_eq!(RESPONSE_LEN, 85);
        assert_eq!(HELLO_LEN, 256);
        const { assert!(RESPONSE_LEN < INITIATION_LEN, "a response must not amplify") };
    }

    #[test]
    fn data_header_bytes() {
        let mut buf = [0u8; DATA_MIN_LEN];
        data_header(&mut buf, 0x0403_0201, 0x0807_0605_0403_0201);
        assert_eq!(
            &buf[..16],
            &[5, 0, 0, 0, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            parse(&buf),
            Some(Packet::Data {
                receiver: 0x0403_0201,
                counter: 0x0807_0605_0403_0201,
                ciphertext: &[0; 16]
            })
        );
    }

    #[test]
    fn hello_round_trip_and_fixed_length() {
        let bytes = hello(&[1; 16], &[2; 32]);
        assert_eq!(bytes.len(), HELLO_LEN);
        assert_eq!(
            parse(&bytes),
            Some(Packet::Hello {
                nonce: [1; 16],
                target: [2; 32],
            })
        );
        assert_eq!(parse(&bytes[..HELLO_LEN - 1]), None);
    }

    #[test]
    fn reserved_bytes_must_be_zero() {
        let mut buf = [0u8; DATA_MIN_LEN];
        data_header(&mut buf, 1, 1);
        buf[2] = 1;
        assert_eq!(parse(&buf), None);
    }

    #[test]
    fn garbage_of_every_short_length_is_rejected() {
        for len in 0..DATA_MIN_LEN {
            let buf = vec![DATA; len];
            assert_eq!(parse(&buf), None, "length {len}");
        }
    }
}
