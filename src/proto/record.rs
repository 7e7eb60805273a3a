//! A node's signed record: who it is, its Noise key and where it might be.
//! Records are hints; only the handshake authenticates.

use std::net::{IpAddr, SocketAddr};

use super::identity::{verify_certificate, verify_signature, Identity};
use crate::id::PublicKey;

const VERSION: u8 = 1;
const SIGN_DOMAIN: &[u8] = b"toxtun record v1";
const FIXED_LEN: usize = 1 + 32 + 32 + 64 + 8 + 8 + 1;
const SIGNATURE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub identity: PublicKey,
    pub noise_key: [u8; 32],
    pub certificate: [u8; 64],
    pub sequence: u64,
    /// Unix seconds after which the record is stale.
    pub expiry: u64,
    pub addresses: Vec<SocketAddr>,
}

impl Record {
    pub fn new(
        identity: &Identity,
        sequence: u64,
        expiry: u64,
        addresses: Vec<SocketAddr>,
    ) -> Self {
        Record {
            identity: identity.public_key(),
            noise_key: identity.noise_public,
            certificate: identity.certificate,
            sequence,
            expiry,
            addresses,
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 19 * self.addresses.len() + SIGNATURE_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.identity.0);
        out.extend_from_slice(&self.noise_key);
        out.extend_from_slice(&self.certificate);
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.expiry.to_le_bytes());
        out.push(self.addresses.len() as u8);
        for addr in &self.addresses {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_le_bytes());
        }
        out
    }

    pub fn encode(&self, identity: &Identity) -> Vec<u8> {
        let mut out = self.body();
        let signature = identity.sign(&[SIGN_DOMAIN, &out].concat());
        out.extend_from_slice(&signature);
        out
    }

    /// The identity key a record names, read without checking anything:
    /// for deciding what to do with it before any signature is verified.
    pub fn claimed_identity(bytes: &[u8]) -> Option<PublicKey> {
        if bytes.len() < FIXED_LEN + SIGNATURE_LEN || bytes[0] != VERSION {
            return None;
        }
        Some(PublicKey(bytes[1..33].try_into().ok()?))
    }

    /// Parses and verifies signature and certificate; None if anything is off.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        if bytes.len() < FIXED_LEN + SIGNATURE_LEN || bytes[0] != VERSION {
            return None;
        }
        let (body, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let identity = PublicKey(body[1..33].try_into().ok()?);
        let noise_key: [u8; 32] = body[33..65].try_into().ok()?;
        let certificate: [u8; 64] = body[65..129].try_into().ok()?;
        let sequence = u64::from_le_bytes(body[129..137].try_into().ok()?);
        let expiry = u64::from_le_bytes(body[137..145].try_into().ok()?);
        let count = body[145] as usize;
        let mut rest = &body[FIXED_LEN..];
        let mut addresses = Vec::with_capacity(count.min(8));
        for _ in 0..count {
            let (ip, used): (IpAddr, usize) = match *rest.first()? {
                4 if rest.len() >= 7 => (<[u8; 4]>::try_from(&rest[1..5]).ok()?.into(), 5),
                6 if rest.len() >= 19 => (<[u8; 16]>::try_from(&rest[1..17]).ok()?.into(), 17),
                _ => return None,
            };
            let port = u16::from_le_bytes(rest[used..used + 2].try_into().ok()?);
            addresses.push(SocketAddr::new(ip, port));
            rest = &rest[used + 2..];
        }
        if !rest.is_empty() {
            return None;
        }
        let signature: [u8; 64] = signature.try_into().ok()?;
        if !verify_signature(&identity, &[SIGN_DOMAIN, body].concat(), &signature)
            || !verify_certificate(&identity, &noise_key, &certificate)
        {
            return None;
        }
        Some(Record {
            identity,
            noise_key,
            certificate,
            sequence,
            expiry,
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let identity = Identity::generate();
        let record = Record::new(
            &identity,
            7,
            1_900_000_000,
            vec![
                "192.0.2.1:33445".parse().unwrap(),
                "[2001:db8::1]:9".parse().unwrap(),
            ],
        );
        let bytes = record.encode(&identity);
        assert_eq!(Record::decode(&bytes), Some(record));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert_eq!(Record::decode(&bad), None, "flip at {i} accepted");
        }
        assert_eq!(Record::decode(&bytes[..bytes.len() - 1]), None);
    }
}
