//! Announcements. A node's entry is stored or moved only after the node
//! proved the address it announces from: the first announcement from an
//! address gets a cookie bound to that address and the key, and the node
//! sends it back signed. A record replayed from elsewhere, or an
//! announcement with a forged source, never gets past the cookie. From the
//! address already proven, a record with a higher sequence refreshes the
//! entry. Signatures are checked only after the cheap checks and within a
//! rate per source.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info};

use super::table::Entry;
use super::Bootstrap;
use crate::id::PublicKey;
use crate::proto::identity::verify_signature;
use crate::proto::record::Record;
use crate::proto::rendezvous::{self, ADDR_LEN, COOKIE_LEN, LOOKUP_LEN, PROOF_DOMAIN};
use crate::token_bucket::TokenBucket;

/// Records larger than this would not fit a lookup reply.
const MAX_RECORD: usize = LOOKUP_LEN - 4 - 8 - ADDR_LEN;
/// How far a record's expiry may be from our own clock, either way, beyond
/// its lifetime: nodes without a real-time clock, behind firewalls that
/// block NTP, are common, and freshness is judged by sequence and address
/// proof, not by the two clocks agreeing.
pub const CLOCK_SKEW: u64 = 2 * 24 * 3600;
/// The longest lifetime a record may claim (nodes use 600 s).
const MAX_LIFETIME: u64 = 3600;

impl Bootstrap {
    pub(super) fn on_announce(
        &mut self,
        now: Instant,
        unix_now: u64,
        from: SocketAddr,
        nonce: [u8; 8],
        bytes: &[u8],
    ) {
        if bytes.len() > MAX_RECORD {
            return;
        }
        let Some(key) = Record::claimed_identity(bytes) else {
            return;
        };
        let request_len = 4 + 8 + bytes.len();
        let stored = self
            .nodes
            .get(&key)
            .filter(|e| e.addr == from)
            .map(|e| e.sequence);
        let Some(stored) = stored else {
            self.challenge(now, from, nonce, key, request_len);
            return;
        };
        if !self.may_verify(now, from) {
            return;
        }
        let Some(record) = self.checked_record(unix_now, bytes, &key) else {
            return;
        };
        // From the proven address a newer record refreshes the entry. An
        // older one is a replay, or a node whose clock went back: either
        // way it must prove the address again, which only the node can.
        if record.sequence <= stored {
            self.challenge(now, from, nonce, key, request_len);
            return;
        }
        if let Some(entry) = self.nodes.get_mut(&key) {
            entry.record = bytes.to_vec();
            entry.sequence = record.sequence;
        }
        self.nodes.touch(&key, now);
        self.ack(from, nonce, request_len);
    }

    /// Asks the source to prove it receives at `from`, with an answer
    /// smaller than the announcement.
    fn challenge(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: [u8; 8],
        key: PublicKey,
        request_len: usize,
    ) {
        if !self.challenge_limit.allow(now, from.ip()) {
            self.limited(now, from);
            return;
        }
        let cookie = self.cookies.mint(&mut self.rng, now, from, &key.0);
        self.stats.challenges += 1;
        self.reply(from, rendezvous::challenge(&nonce, &cookie), request_len);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_proven_announce(
        &mut self,
        now: Instant,
        unix_now: u64,
        from: SocketAddr,
        nonce: [u8; 8],
        cookie: [u8; COOKIE_LEN],
        signature: [u8; 64],
        bytes: &[u8],
    ) {
        if bytes.len() > MAX_RECORD {
            return;
        }
        let Some(key) = Record::claimed_identity(bytes) else {
            return;
        };
        // The cookie costs one hash: it rules out replays from elsewhere
        // and forged sources before any signature is checked.
        if !self.cookies.check(from, &key.0, &cookie) || !self.may_verify(now, from) {
            return;
        }
        let proof = [PROOF_DOMAIN, &cookie].concat();
        if !verify_signature(&key, &proof, &signature) {
            if let Some(times) = self.logs.bad_proof.hit(now) {
                debug!(%from, times, "dropped address proofs that did not verify");
            }
            return;
        }
        let Some(record) = self.checked_record(unix_now, bytes, &key) else {
            return;
        };
        match self.nodes.get(&key) {
            Some(entry) if entry.addr != from => {
                info!(node = %key.short(), %from, "node moved (address proven)")
            }
            Some(_) => {}
            None => info!(node = %key, %from, "node announced (address proven)"),
        }
        let entry = Entry {
            addr: from,
            record: bytes.to_vec(),
            sequence: record.sequence,
            last_seen: now,
            bucket: TokenBucket::new(self.config.relay_rate, self.config.relay_burst, now),
            limited: 0,
            last_limit_log: None,
        };
        if let Some(evicted) = self.nodes.insert(key, entry) {
            self.stats.evicted += 1;
            if let Some(times) = self.logs.evicted.hit(now) {
                info!(node = %evicted.short(), times, limit = self.config.max_nodes, "table full: forgot the least recently seen node");
            }
        }
        self.ack(from, nonce, 4 + 8 + COOKIE_LEN + 64 + bytes.len());
    }

    fn ack(&mut self, to: SocketAddr, nonce: [u8; 8], request_len: usize) {
        self.reply(to, rendezvous::announce_ack(&nonce, &to), request_len);
    }

    /// A signature check for `from`, within its rate and the total.
    fn may_verify(&mut self, now: Instant, from: SocketAddr) -> bool {
        if self.verify_limit.allow(now, from.ip()) {
            self.stats.verifications += 1;
            true
        } else {
            self.limited(now, from);
            false
        }
    }

    fn limited(&mut self, now: Instant, from: SocketAddr) {
        self.stats.announces_limited += 1;
        if let Some(times) = self.logs.announce_limited.hit(now) {
            info!(%from, times, "announcements dropped: over the rate limit");
        }
    }

    /// The record, if its signature and certificate hold, it names `key`,
    /// and its expiry is within the horizon of our clock.
    fn checked_record(&self, unix_now: u64, bytes: &[u8], key: &PublicKey) -> Option<Record> {
        let record = Record::decode(bytes).filter(|r| r.identity == *key)?;
        let earliest = unix_now.saturating_sub(CLOCK_SKEW);
        let latest = unix_now + CLOCK_SKEW + MAX_LIFETIME;
        (earliest..=latest)
            .contains(&record.expiry)
            .then_some(record)
    }
}
