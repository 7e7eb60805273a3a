//! Cookies that prove an address: a MAC over the address (and whatever
//! else the caller binds in) under a secret that changes every two
//! minutes. Only a sender that receives at the address gets the cookie:
//! a packet replayed from elsewhere, or sent with a forged source, cannot
//! carry one. A bootstrap node binds the key that claims the address (the
//! key's holder then signs the cookie back); a node under a handshake flood
//! binds nothing more (the initiator MACs its message 1 with it: mac2).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac;
use rand::rngs::StdRng;
use rand::RngCore;

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

    /// A cookie for `addr`, bound to `bound` too.
    pub fn mint(
        &mut self,
        rng: &mut StdRng,
        now: Instant,
        addr: SocketAddr,
        bound: &[u8],
    ) -> [u8; COOKIE_LEN] {
        self.rotate(rng, now);
        keyed(&self.current, addr, bound)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The cookies `addr` and `bound` may hold now: under the current
    /// secret and the one before it.
    pub fn valid(&self, addr: SocketAddr, bound: &[u8]) -> [[u8; COOKIE_LEN]; 2] {
        [&self.current, &self.previous]
            .map(|secret| keyed(secret, addr, bound).finalize().into_bytes().into())
    }

    /// Whether `cookie` was minted for `addr` and `bound` lately.
    pub fn check(&self, addr: SocketAddr, bound: &[u8], cookie: &[u8; COOKIE_LEN]) -> bool {
        [&self.current, &self.previous]
            .into_iter()
            .any(|secret| keyed(secret, addr, bound).verify_slice(cookie).is_ok())
    }
}

fn keyed(secret: &[u8; 32], addr: SocketAddr, bound: &[u8]) -> Blake2sMac<U16> {
    let mut input = Vec::with_capacity(19 + bound.len());
    encode_addr(&addr, &mut input);
    input.extend_from_slice(bound);
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(secret).expect("32-byte key");
    mac.update(&input);
    mac
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
        let key = [1; 32];
        let cookie = cookies.mint(&mut rng, now, a, &key);
        assert!(cookies.check(a, &key, &cookie));
        assert!(!cookies.check(b, &key, &cookie), "another address");
        assert!(!cookies.check(a, &[2; 32], &cookie), "another key");
        assert!(cookies.valid(a, &key).contains(&cookie));
        cookies.mint(&mut rng, now + ROTATE_EVERY, a, &key);
        assert!(cookies.check(a, &key, &cookie), "one rotation later");
        cookies.mint(&mut rng, now + ROTATE_EVERY * 2, a, &key);
        assert!(!cookies.check(a, &key, &cookie), "two rotations later");
    }
}
