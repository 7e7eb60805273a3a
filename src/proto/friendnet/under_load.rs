//! The friend network's side of cookie replies (`proto::cookie_reply`):
//! under load, message 1 must carry a mac2 proving the sender receives at
//! its address, and is otherwise answered with a cookie instead of a
//! Diffie-Hellman; as an initiator, a cookie reply makes us send message 1
//! again with mac2.

use std::time::{Duration, Instant};

use tracing::{debug, info, trace};

use super::friend::Attempt;
use super::FriendNet;
use crate::proto::cookie_reply::{self, SEALED_LEN};
use crate::proto::route::Route;
use crate::proto::wire::{self, COOKIE_NONCE_LEN, MAC1_AT, MAC2_AT, MAC_LEN};

/// Once under load, we stay so until message 1s have come calmly for this
/// long: a flood that lets up for an instant must not get a burst of
/// Diffie-Hellmans out of us.
const LOAD_LINGER: Duration = Duration::from_secs(1);

/// A cookie from a friend is used this long: under the two minutes its
/// secret is current, so the friend still holds it.
pub(super) const COOKIE_FRESH: Duration = Duration::from_secs(110);

/// Appends mac2 to message 1 (its first `MAC2_AT` bytes): a MAC under the
/// cookie, or zeros without one.
pub(super) fn with_mac2(packet: &mut Vec<u8>, cookie: Option<&[u8; 16]>) {
    packet.truncate(MAC2_AT);
    let mac2 = match cookie {
        Some(cookie) => cookie_reply::mac2(cookie, packet),
        None => [0; MAC_LEN],
    };
    packet.extend_from_slice(&mac2);
}

impl FriendNet {
    /// Whether message 1 may go on to a Diffie-Hellman: always while we are
    /// calm; under load only with a mac2 under a cookie we gave its source.
    /// Otherwise the source gets a cookie reply.
    pub(super) fn initiation_passes_load(
        &mut self,
        now: Instant,
        from: Route,
        sender: u32,
        mac1: &[u8; MAC_LEN],
        covered2: &[u8],
        mac2: &[u8; MAC_LEN],
    ) -> bool {
        if !self.handshake_budget.take(now, 1) {
            self.under_load_until = Some(now + LOAD_LINGER);
        }
        if self.under_load_until.is_none_or(|until| now >= until) {
            return true;
        }
        let (addr, bound) = cookie_binding(from);
        let proven = self
            .cookies
            .valid(addr, &bound)
            .iter()
            .any(|cookie| cookie_reply::mac2_valid(cookie, covered2, mac2));
        if proven {
            return true;
        }
        self.send_cookie_reply(now, from, sender, mac1);
        false
    }

    fn send_cookie_reply(&mut self, now: Instant, from: Route, sender: u32, mac1: &[u8; MAC_LEN]) {
        if !self.cookie_limit.allow(now, from.socket_addr().ip()) {
            self.counters.initiations_limited += 1;
            return;
        }
        let (addr, bound) = cookie_binding(from);
        let cookie = self.cookies.mint(&mut self.rng, now, addr, &bound);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        rand::RngCore::fill_bytes(&mut self.rng, &mut nonce);
        let key = cookie_reply::cookie_key(&self.identity.noise_public);
        let sealed = cookie_reply::seal(&key, &nonce, &cookie, mac1);
        self.counters.cookies_sent += 1;
        if let Some(times) = self.logs.under_load.hit(now) {
            info!(%from, times, "under load: answering handshakes with cookies");
        }
        self.push(from.transmit(wire::cookie_reply(sender, &nonce, &sealed)));
    }

    /// The friend is under load and wants our message 1 with mac2: open
    /// its cookie and send the same message 1 again, now with mac2.
    pub(super) fn on_cookie_reply(
        &mut self,
        now: Instant,
        from: Route,
        receiver: u32,
        nonce: [u8; COOKIE_NONCE_LEN],
        sealed: &[u8],
    ) {
        if sealed.len() != SEALED_LEN {
            return;
        }
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped cookie reply for an unknown index");
            return;
        };
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let Some(noise_key) = friend.keys.noise_key else {
            return;
        };
        let Some(Attempt::Initiation {
            local_index,
            packet,
            ..
        }) = &mut friend.connecting.attempt
        else {
            return;
        };
        if *local_index != receiver || packet.len() != wire::INITIATION_LEN {
            return;
        }
        let mac1: [u8; MAC_LEN] = packet[MAC1_AT..MAC2_AT].try_into().expect("mac1");
        let key_for_us = cookie_reply::cookie_key(&noise_key);
        let Some(cookie) = cookie_reply::open(&key_for_us, &nonce, sealed, &mac1) else {
            debug!(%from, friend = %key.short(), "dropped cookie reply that did not open");
            return;
        };
        let already = friend.connecting.cookie.is_some_and(|(c, _)| c == cookie);
        friend.connecting.cookie = Some((cookie, now));
        if already {
            return;
        }
        with_mac2(packet, Some(&cookie));
        let again = packet.clone();
        debug!(friend = %key.short(), %from, "friend under load: sending handshake with mac2");
        self.send_handshake(key, from, again);
    }
}

/// A cookie proves the address a packet came from; through a relay, that
/// is the relay's, so the relayed sender's key is bound in too.
fn cookie_binding(from: Route) -> (std::net::SocketAddr, Vec<u8>) {
    match from {
        Route::Direct(addr) => (addr, Vec::new()),
        Route::Relay { via, peer } => (via, peer.0.to_vec()),
    }
}
