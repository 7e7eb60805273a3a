//! The Tox-shaped node ID: 32-byte ed25519 public key, 4-byte nospam and a
//! 2-byte checksum, written as 76 hex characters.

use std::fmt;
use std::str::FromStr;

pub const KEY_LEN: usize = 32;
pub const NOSPAM_LEN: usize = 4;
pub const ID_LEN: usize = KEY_LEN + NOSPAM_LEN + 2;
pub const ID_HEX_LEN: usize = ID_LEN * 2;

/// An ed25519 identity public key: the part of the ID that names a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

impl PublicKey {
    /// A short form for logs: enough to tell friends apart at a glance.
    pub fn short(&self) -> String {
        hex::encode_upper(&self.0[..4])
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ToxId {
    pub key: PublicKey,
    pub nospam: [u8; NOSPAM_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an ID has {ID_HEX_LEN} hex characters, this one has {0}")]
    Length(usize),
    #[error("'{0}' is not a hex digit")]
    NotHex(char),
    #[error("checksum mismatch (expected {expected:04X}, found {found:04X}): the ID was mistyped")]
    Checksum { expected: u16, found: u16 },
    #[error("a key has 64 hex characters and an ID {ID_HEX_LEN}, this has {0}")]
    KeyOrIdLength(usize),
}

impl ToxId {
    pub fn new(key: PublicKey, nospam: [u8; NOSPAM_LEN]) -> Self {
        ToxId { key, nospam }
    }

    pub fn to_bytes(&self) -> [u8; ID_LEN] {
        let mut out = [0u8; ID_LEN];
        out[..KEY_LEN].copy_from_slice(&self.key.0);
        out[KEY_LEN..KEY_LEN + NOSPAM_LEN].copy_from_slice(&self.nospam);
        let sum = checksum(&out[..KEY_LEN + NOSPAM_LEN]);
        out[KEY_LEN + NOSPAM_LEN..].copy_from_slice(&sum.to_be_bytes());
        out
    }
}

/// Tox's checksum: XOR of the 2-byte chunks of key and nospam.
pub fn checksum(body: &[u8]) -> u16 {
    let mut sum = [0u8; 2];
    for (i, b) in body.iter().enumerate() {
        sum[i % 2] ^= b;
    }
    u16::from_be_bytes(sum)
}

fn decode_hex(text: &str, expected_len: usize) -> Result<Vec<u8>, IdError> {
    if let Some(bad) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(IdError::NotHex(bad));
    }
    if text.len() != expected_len {
        return Err(IdError::Length(text.len()));
    }
    Ok(hex::decode(text).expect("checked hex digits of even length"))
}

impl FromStr for ToxId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let bytes = decode_hex(text.trim(), ID_HEX_LEN)?;
        let body = &bytes[..KEY_LEN + NOSPAM_LEN];
        let expected = checksum(body);
        let found = u16::from_be_bytes([bytes[ID_LEN - 2], bytes[ID_LEN - 1]]);
        if expected != found {
            return Err(IdError::Checksum { expected, found });
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&bytes[..KEY_LEN]);
        let mut nospam = [0u8; NOSPAM_LEN];
        nospam.copy_from_slice(&bytes[KEY_LEN..KEY_LEN + NOSPAM_LEN]);
        Ok(ToxId::new(PublicKey(key), nospam))
    }
}

impl fmt::Display for ToxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.to_bytes()))
    }
}

impl fmt::Debug for ToxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ToxId({self})")
    }
}

/// How config names a friend: a full ID (which also proves we know its
/// nospam) or just its 64-hex public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerRef {
    Id(ToxId),
    Key(PublicKey),
}

impl PeerRef {
    pub fn key(&self) -> PublicKey {
        match self {
            PeerRef::Id(id) => id.key,
            PeerRef::Key(key) => *key,
        }
    }

    pub fn id(&self) -> Option<ToxId> {
        match self {
            PeerRef::Id(id) => Some(*id),
            PeerRef::Key(_) => None,
        }
    }
}

impl FromStr for PeerRef {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let text = text.trim();
        match text.len() {
            ID_HEX_LEN => text.parse().map(PeerRef::Id),
            n if n == KEY_LEN * 2 => {
                let bytes = decode_hex(text, KEY_LEN * 2)?;
                let mut key = [0u8; KEY_LEN];
                key.copy_from_slice(&bytes);
                Ok(PeerRef::Key(PublicKey(key)))
            }
            n => {
                if let Some(bad) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
                    return Err(IdError::NotHex(bad));
                }
                Err(IdError::KeyOrIdLength(n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ToxId {
        let mut key = [0u8; KEY_LEN];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        ToxId::new(PublicKey(key), [0xDE, 0xAD, 0xBE, 0xEF])
    }

    #[test]
    fn round_trip_is_upper_case_and_76_chars() {
        let id = sample();
        let text = id.to_string();
        assert_eq!(text.len(), ID_HEX_LEN);
        assert_eq!(text, text.to_uppercase());
        assert_eq!(text.parse::<ToxId>().unwrap(), id);
        assert_eq!(text.to_lowercase().parse::<ToxId>().unwrap(), id);
    }

    #[test]
    fn checksum_is_xor_of_two_byte_chunks() {
        let body = [0x12, 0x34, 0x56, 0x78, 0x9A];
        assert_eq!(checksum(&body), (0x12 ^ 0x56 ^ 0x9A) << 8 | (0x34 ^ 0x78));
    }

    #[test]
    fn go_toxtun_readme_id_parses() {
        let text = "A5A02FECA08E3EAC7E646B89C0507A8AAF9136E05DC756FF09F86230951820670F908F2E7719";
        let id: ToxId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn every_single_digit_change_breaks_the_checksum() {
        let text = sample().to_string();
        for pos in 0..ID_HEX_LEN {
            let mut chars: Vec<char> = text.chars().collect();
            chars[pos] = if chars[pos] == '0' { '1' } else { '0' };
            let mutated: String = chars.into_iter().collect();
            assert!(
                matches!(mutated.parse::<ToxId>(), Err(IdError::Checksum { .. })),
                "position {pos}"
            );
        }
    }

    #[test]
    fn wrong_length_and_non_hex_are_named() {
        let text = sample().to_string();
        assert_eq!(text[..75].parse::<ToxId>(), Err(IdError::Length(75)));
        let mut bad = text.clone();
        bad.replace_range(10..11, "G");
        assert_eq!(bad.parse::<ToxId>(), Err(IdError::NotHex('G')));
    }

    #[test]
    fn peer_ref_takes_key_or_id() {
        let id = sample();
        let key_text = hex::encode(id.key.0);
        assert_eq!(key_text.parse::<PeerRef>().unwrap(), PeerRef::Key(id.key));
        assert_eq!(id.to_string().parse::<PeerRef>().unwrap(), PeerRef::Id(id));
        assert_eq!("abc".parse::<PeerRef>(), Err(IdError::KeyOrIdLength(3)));
    }
}
