//! The bootstrap node as a pure state machine: it learns where nodes are
//! (from their signed announcements and the address they came from), answers
//! lookups, passes connect requests so both sides punch at once, and relays
//! ciphertext between registered nodes within a per-node byte rate.

pub(crate) mod driver;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::id::PublicKey;
use crate::proto::record::Record;
use crate::proto::rendezvous::{self, Rendezvous, ADDR_LEN, LOOKUP_LEN};
use crate::proto::Transmit;
use crate::token_bucket::TokenBucket;

/// A node held to its relay limit is logged this often at most.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Records larger than this would not fit a lookup reply.
const MAX_RECORD: usize = LOOKUP_LEN - 4 - 8 - ADDR_LEN;

#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    /// Relayed bytes a second each node may send.
    pub relay_rate: u64,
    /// Bytes a node may relay in one burst.
    pub relay_burst: u64,
    /// A node that has not announced for this long is forgotten.
    pub entry_ttl: Duration,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BootstrapStats {
    pub nodes: usize,
    pub relayed_packets: u64,
    pub relayed_bytes: u64,
    pub limited_packets: u64,
}

struct Entry {
    addr: SocketAddr,
    record: Vec<u8>,
    sequence: u64,
    last_seen: Instant,
    bucket: TokenBucket,
    /// Packets over the limit since we last said so in the log.
    limited: u64,
    last_limit_log: Option<Instant>,
}

pub struct Bootstrap {
    config: BootstrapConfig,
    nodes: HashMap<PublicKey, Entry>,
    by_addr: HashMap<SocketAddr, PublicKey>,
    transmits: VecDeque<Transmit>,
    stats: BootstrapStats,
}

impl Bootstrap {
    pub fn new(config: BootstrapConfig) -> Self {
        Bootstrap {
            config,
            nodes: HashMap::new(),
            by_addr: HashMap::new(),
            transmits: VecDeque::new(),
            stats: BootstrapStats::default(),
        }
    }

    /// What tests measure the core by.
    #[cfg(test)]
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
        self.nodes
            .values()
            .map(|e| e.last_seen + self.config.entry_ttl)
            .min()
    }

    /// Call when the time `poll_timeout` named has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ttl = self.config.entry_ttl;
        let expired: Vec<PublicKey> = self
            .nodes
            .iter()
            .filter(|(_, e)| now >= e.last_seen + ttl)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(entry) = self.nodes.remove(&key) {
                self.by_addr.remove(&entry.addr);
                debug!(node = %key.short(), "forgot node: no announcement");
            }
        }
    }

    /// Call for every datagram that arrives, over UDP or a stream link.
    /// `unix_now` (seconds) checks record expiry; the core reads no clock.
    pub fn handle_datagram(&mut self, now: Instant, unix_now: u64, from: SocketAddr, bytes: &[u8]) {
        match rendezvous::parse(bytes) {
            Some(Rendezvous::Announce { nonce, record }) => {
                self.on_announce(now, unix_now, from, nonce, record)
            }
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

    fn on_announce(
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
        let Some(record) = Record::decode(bytes) else {
            return;
        };
        if record.expiry <= unix_now {
            return;
        }
        let key = record.identity;
        if let Some(entry) = self.nodes.get_mut(&key) {
            if record.sequence < entry.sequence {
                return;
            }
            if entry.addr != from {
                self.by_addr.remove(&entry.addr);
                info!(node = %key.short(), %from, "node moved");
            }
            entry.addr = from;
            entry.record = bytes.to_vec();
            entry.sequence = record.sequence;
            entry.last_seen = now;
        } else {
            info!(node = %key, %from, "node announced");
            let bucket = TokenBucket::new(self.config.relay_rate, self.config.relay_burst, now);
            self.nodes.insert(
                key,
                Entry {
                    addr: from,
                    record: bytes.to_vec(),
                    sequence: record.sequence,
                    last_seen: now,
                    bucket,
                    limited: 0,
                    last_limit_log: None,
                },
            );
        }
        if let Some(old) = self.by_addr.insert(from, key) {
            if old != key {
                self.nodes.remove(&old);
            }
        }
        let request_len = 4 + 8 + bytes.len();
        self.reply(from, rendezvous::announce_ack(&nonce, &from), request_len);
    }

    /// The sender of a CONNECT or RELAY must be a node registered at the
    /// address the packet came from: a spoofed source gets nothing sent on.
    fn registered_sender(
        &mut self,
        now: Instant,
        from: SocketAddr,
        cost: u64,
    ) -> Option<PublicKey> {
        let key = *self.by_addr.get(&from)?;
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

    fn on_relay(&mut self, now: Instant, from: SocketAddr, target: PublicKey, inner: &[u8]) {
        if !self.nodes.contains_key(&target) {
            return;
        }
        let Some(sender) = self.registered_sender(now, from, inner.len() as u64) else {
            return;
        };
        let dst = self.nodes[&target].addr;
        self.stats.relayed_packets += 1;
        self.stats.relayed_bytes += inner.len() as u64;
        let payload = rendezvous::relay(rendezvous::RELAYED, &sender, inner);
        self.transmits.push_back(Transmit::to(dst, payload));
    }
}

#[cfg(test)]
mod tests;
