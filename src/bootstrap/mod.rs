//! The bootstrap node as a pure state machine: it learns where nodes are
//! (from their signed announcements and an address each proved by signing
//! a cookie sent there), answers lookups, passes connect requests so both
//! sides punch at once, and relays friend packets between proven addresses
//! within a per-node byte rate.

mod announce;
pub(crate) mod driver;
mod table;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tracing::{debug, info};

use crate::id::PublicKey;
use crate::proto::cookie::Cookies;
use crate::proto::log_limit::LogLimit;
use crate::proto::rendezvous::{self, Rendezvous};
use crate::proto::source_limit::{Rates, SourceLimit};
use crate::proto::{wire, Transmit};
use table::Table;

/// A node held to its relay limit is logged this often at most.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Signature checks (an announcement's record, an address proof) a source
/// may make us do: the expensive part of the work a stranger can cause.
const VERIFY_RATES: Rates = Rates {
    per_source: (4, 8),
    total: (2000, 2000),
    sources: 65_536,
};
/// Challenges sent: each is an answer to a source that proved nothing yet,
/// smaller than what it answers, held to a rate so we reflect little.
const CHALLENGE_RATES: Rates = Rates {
    per_source: (4, 8),
    total: (20_000, 20_000),
    sources: 65_536,
};

#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    /// Relayed bytes a second each node may send.
    pub relay_rate: u64,
    /// Bytes a node may relay in one burst.
    pub relay_burst: u64,
    /// A node that has not announced for this long is forgotten.
    pub entry_ttl: Duration,
    /// Nodes registered at once; at the cap the least recently seen goes.
    pub max_nodes: usize,
    /// Seeds the cookie secrets: the same seed and inputs, the same output.
    pub seed: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapStats {
    pub nodes: usize,
    pub relayed_packets: u64,
    pub relayed_bytes: u64,
    pub limited_packets: u64,
    /// Signatures checked (records, address proofs).
    pub verifications: u64,
    pub challenges: u64,
    /// Announcements dropped before any check by the per-source limits.
    pub announces_limited: u64,
    /// Entries evicted at the cap.
    pub evicted: u64,
}

/// One log line per interval for each kind of refusal.
#[derive(Default)]
struct RefusalLogs {
    announce_limited: LogLimit,
    bad_proof: LogLimit,
    evicted: LogLimit,
}

pub struct Bootstrap {
    config: BootstrapConfig,
    nodes: Table,
    transmits: VecDeque<Transmit>,
    stats: BootstrapStats,
    rng: StdRng,
    cookies: Cookies,
    verify_limit: SourceLimit,
    challenge_limit: SourceLimit,
    logs: RefusalLogs,
}

impl Bootstrap {
    pub fn new(config: BootstrapConfig, now: Instant) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        Bootstrap {
            nodes: Table::new(config.max_nodes),
            cookies: Cookies::new(&mut rng, now),
            rng,
            config,
            transmits: VecDeque::new(),
            stats: BootstrapStats::default(),
            verify_limit: SourceLimit::new(VERIFY_RATES, now),
            challenge_limit: SourceLimit::new(CHALLENGE_RATES, now),
            logs: RefusalLogs::default(),
        }
    }

    /// What `toxtun status` shows, and tests measure the core by.
    pub fn stats(&self) -> BootstrapStats {
        BootstrapStats {
            nodes: self.nodes.len(),
            ..self.stats.clone()
        }
    }

    /// The next datagram to send. Call after every input, until None.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When `handle_timeout` must next be called (an entry expires); None:
    /// only input wakes it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.nodes.oldest().map(|at| at + self.config.entry_ttl)
    }

    /// Call when the time `poll_timeout` named has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.config.entry_ttl) else {
            return;
        };
        while let Some(key) = self.nodes.pop_seen_by(cutoff) {
            debug!(node = %key.short(), "forgot node: no announcement");
        }
    }

    /// Call for every datagram that arrives, over UDP or a stream link.
    /// `unix_now` (seconds) bounds how far off a record's expiry may be;
    /// the core reads no clock.
    pub fn handle_datagram(&mut self, now: Instant, unix_now: u64, from: SocketAddr, bytes: &[u8]) {
        match rendezvous::parse(bytes) {
            Some(Rendezvous::Announce { nonce, record }) => {
                self.on_announce(now, unix_now, from, nonce, record)
            }
            Some(Rendezvous::ProvenAnnounce {
                nonce,
                cookie,
                signature,
                record,
            }) => self.on_proven_announce(now, unix_now, from, nonce, cookie, signature, record),
            Some(Rendezvous::Lookup { nonce, key }) => {
                let reply = match self.nodes.get(&key) {
                    Some(entry) => {
                        rendezvous::lookup_reply(&nonce, Some((&entry.addr, &entry.record)))
                    }
                    None => rendezvous::lookup_reply(&nonce, None),
                };
                self.reply(from, reply, bytes.len());
            }
            Some(Rendezvous::Connect { target, sender }) => {
                self.on_connect(now, from, target, sender)
            }
            Some(Rendezvous::Relay { target, inner }) => self.on_relay(now, from, target, inner),
            _ => {}
        }
    }

    /// Answers an unauthenticated source only if the answer is no larger
    /// than what it sent: the bootstrap node never amplifies.
    fn reply(&mut self, dst: SocketAddr, payload: Vec<u8>, request_len: usize) {
        if payload.len() <= request_len {
            self.transmits.push_back(Transmit::to(dst, payload));
        }
    }

    /// The sender of a CONNECT or RELAY must be a node registered at the
    /// address the packet came from, an address it proved: a spoofed
    /// source gets nothing sent on.
    fn registered_sender(
        &mut self,
        now: Instant,
        from: SocketAddr,
        cost: u64,
    ) -> Option<PublicKey> {
        let key = self.nodes.at(&from)?;
        let entry = self.nodes.get_mut(&key)?;
        if entry.bucket.take(now, cost) {
            return Some(key);
        }
        self.stats.limited_packets += 1;
        entry.limited += 1;
        let quiet = entry
            .last_limit_log
            .is_none_or(|at| now >= at + LIMIT_LOG_EVERY);
        if quiet {
            info!(node = %key.short(), dropped = entry.limited, "relay limit reached: dropping this node's packets");
            entry.limited = 0;
            entry.last_limit_log = Some(now);
        }
        None
    }

    fn on_connect(&mut self, now: Instant, from: SocketAddr, target: PublicKey, sender: PublicKey) {
        if self.registered_sender(now, from, rendezvous::CONNECT_LEN as u64) != Some(sender) {
            return;
        }
        let Some(entry) = self.nodes.get(&target) else {
            return;
        };
        debug!(from = %sender.short(), to = %target.short(), "passing connect request");
        let payload = rendezvous::connect_notify(&sender, &from);
        self.transmits.push_back(Transmit::to(entry.addr, payload));
    }

    /// Relays only what a friend session is made of (HELLO, the handshake,
    /// DATA), well formed, between proven addresses: nothing else can be
    /// bounced off us at a third party.
    fn on_relay(&mut self, now: Instant, from: SocketAddr, target: PublicKey, inner: &[u8]) {
        if self.nodes.get(&target).is_none() || wire::parse(inner).is_none() {
            return;
        }
        let Some(sender) = self.registered_sender(now, from, inner.len() as u64) else {
            return;
        };
        let Some(dst) = self.nodes.get(&target).map(|e| e.addr) else {
            return;
        };
        self.stats.relayed_packets += 1;
        self.stats.relayed_bytes += inner.len() as u64;
        let payload = rendezvous::relay(rendezvous::RELAYED, &sender, inner);
        self.transmits.push_back(Transmit::to(dst, payload));
    }
}

#[cfg(test)]
mod tests;
