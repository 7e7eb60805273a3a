//! WireGuard's answer to a handshake flood. Under load a node answers a
//! message 1 that carries no valid mac2 with a cookie reply instead of a
//! Diffie-Hellman: a cookie bound to the source address, encrypted so that
//! only the initiator (which knows our Noise key and the mac1 it sent) can
//! read it. The initiator sends message 1 again with mac2, a MAC under that
//! cookie: only a sender that receives at its address can, so a replayed
//! or source-forged flood costs us a hash per packet, never a
//! Diffie-Hellman.

use blake2::digest::consts::U16;
use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::rendezvous::COOKIE_LEN;
use super::wire::{COOKIE_NONCE_LEN, MAC_LEN, TAG_LEN};

const COOKIE_LABEL: &[u8] = b"cookie--";

/// Sealed cookie: the cookie and its tag.
pub const SEALED_LEN: usize = COOKIE_LEN + TAG_LEN;

/// The key cookie replies to us are sealed under: anyone may compute it
/// from our Noise public key, which is what makes the reply readable by
/// the initiator alone together with the mac1 binding below.
pub fn cookie_key(noise_public: &[u8; 32]) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(COOKIE_LABEL)
        .chain_update(noise_public)
        .finalize()
        .into()
}

/// Seals `cookie`, bound to the mac1 of the message 1 it answers.
pub fn seal(
    key: &[u8; 32],
    nonce: &[u8; COOKIE_NONCE_LEN],
    cookie: &[u8; COOKIE_LEN],
    mac1: &[u8; MAC_LEN],
) -> [u8; SEALED_LEN] {
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: cookie,
                aad: mac1,
            },
        )
        .expect("sealing 16 bytes cannot fail");
    sealed.try_into().expect("cookie and tag")
}

pub fn open(
    key: &[u8; 32],
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed: &[u8],
    mac1: &[u8; MAC_LEN],
) -> Option<[u8; COOKIE_LEN]> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let cookie = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: mac1,
            },
        )
        .ok()?;
    cookie.try_into().ok()
}

fn mac2_state(cookie: &[u8; COOKIE_LEN], covered: &[u8]) -> Blake2sMac<U16> {
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(cookie).expect("16-byte key");
    mac.update(covered);
    mac
}

pub fn mac2(cookie: &[u8; COOKIE_LEN], covered: &[u8]) -> [u8; MAC_LEN] {
    mac2_state(cookie, covered).finalize().into_bytes().into()
}

pub fn mac2_valid(cookie: &[u8; COOKIE_LEN], covered: &[u8], received: &[u8; MAC_LEN]) -> bool {
    mac2_state(cookie, covered).verify_slice(received).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_mac1_opens_a_cookie() {
        let key = cookie_key(&[3; 32]);
        let sealed = seal(
            &key,
            &[1; COOKIE_NONCE_LEN],
            &[7; COOKIE_LEN],
            &[9; MAC_LEN],
        );
        assert_eq!(
            open(&key, &[1; COOKIE_NONCE_LEN], &sealed, &[9; MAC_LEN]),
            Some([7; COOKIE_LEN])
        );
        assert_eq!(
            open(&key, &[1; COOKIE_NONCE_LEN], &sealed, &[8; MAC_LEN]),
            None
        );
        let other = cookie_key(&[4; 32]);
        assert_eq!(
            open(&other, &[1; COOKIE_NONCE_LEN], &sealed, &[9; MAC_LEN]),
            None
        );
        let tag = mac2(&[7; COOKIE_LEN], b"message");
        assert!(mac2_valid(&[7; COOKIE_LEN], b"message", &tag));
        assert!(!mac2_valid(&[6; COOKIE_LEN], b"message", &tag));
    }
}
