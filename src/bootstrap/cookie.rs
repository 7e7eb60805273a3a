//! Cookies that prove an address: a MAC over the address and the key that
//! claims it, under a secret that changes every two minutes. Only a node
//! that receives at the address gets the cookie, and only the key's holder
//! can sign it back, so an announcement replayed from elsewhere, or sent
//! with a victim's address as its source, proves nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac;
use rand::rngs::StdRng;
use rand::RngCore;

use crate::id::PublicKey;
use crate::proto::rendezvous::{encode_addr, COOKIE_LEN};

/// A cookie is good for one to two of these.
const ROTATE_EVERY: Duration = Duration::from_secs(120);

pub struct Cookies {
    current: [u8; 32],
    previous: [u8; 32],
    rotated_at: Instant,
}

impl Cookies {
    pub fn new(rng: &mut StdRng, now: Instant) -> Self {
        let mut current = [0u8; 32];
        rng.fill_bytes(&mut current);
        Cookies {
            current,
            previous: current,
            rotated_at: now,
        }
    }

    fn rotate(&mut self, rng: &mut StdRng, now: Instant) {
        if now >= self.rotated_at + ROTATE_EVERY {
            self.previous = self.current;
            rng.fill_bytes(&mut self.current);
            self.rotated_at = now;
        }
    }

    pub fn mint(
        &mut self,
        rng: &mut StdRng,
        now: Instant,
        addr: SocketAddr,
        key: &PublicKey,
    ) -> [u8; COOKIE_LEN] {
        self.rotate(rng, now);
        mac(&self.current, addr, key)
    }

    /// Whether `cookie` was minted for `addr` and `key` lately.
    pub fn check(&self, addr: SocketAddr, key: &PublicKey, cookie: &[u8; COOKIE_LEN]) -> bool {
        [&self.current, &self.previous]
            .into_iter()
            .any(|secret| verify(secret, addr, key, cookie))
    }
}

fn keyed(secret: &[u8; 32], addr: SocketAddr, key: &PublicKey) -> Blake2sMac<U16> {
    let mut input = Vec::with_capacity(19 + 32);
    encode_addr(&addr, &mut input);
    input.extend_from_slice(&key.0);
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(secret).expect("32-byte key");
    mac.update(&input);
    mac
}

fn mac(secret: &[u8; 32], addr: SocketAddr, key: &PublicKey) -> [u8; COOKIE_LEN] {
    keyed(secret, addr, key).finalize().into_bytes().into()
}

fn verify(secret: &[u8; 32], addr: SocketAddr, key: &PublicKey, cookie: &[u8; COOKIE_LEN]) -> bool {
    keyed(secret, addr, key).verify_slice(cookie).is_ok()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_cookie_holds_for_its_address_and_key_for_two_rotations_at_most() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut cookies = Cookies::new(&mut rng, now);
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:2".parse().unwrap();
        let key = PublicKey([1; 32]);
        let cookie = cookies.mint(&mut rng, now, a, &key);
        assert!(cookies.check(a, &key, &cookie));
        assert!(!cookies.check(b, &key, &cookie), "another address");
        assert!(
            !cookies.check(a, &PublicKey([2; 32]), &cookie),
            "another key"
        );
        cookies.mint(&mut rng, now + ROTATE_EVERY, a, &key);
        assert!(cookies.check(a, &key, &cookie), "one rotation later");
        cookies.mint(&mut rng, now + ROTATE_EVERY * 2, a, &key);
        assert!(!cookies.check(a, &key, &cookie), "two rotations later");
    }
}
