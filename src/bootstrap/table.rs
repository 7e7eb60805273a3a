//! The nodes a bootstrap node knows: found by key and by address, and kept
//! in the order they were last refreshed, so that the next expiry and the
//! entry to evict at the cap are found without looking at the others. Work
//! per packet does not grow with the table.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use crate::id::PublicKey;
use crate::token_bucket::TokenBucket;

pub struct Entry {
    /// Proven by a signed cookie.
    pub addr: SocketAddr,
    pub record: Vec<u8>,
    pub sequence: u64,
    pub last_seen: Instant,
    pub bucket: TokenBucket,
    /// Packets over the relay limit since we last said so in the log.
    pub limited: u64,
    pub last_limit_log: Option<Instant>,
}

pub struct Table {
    entries: HashMap<PublicKey, Entry>,
    by_addr: HashMap<SocketAddr, PublicKey>,
    by_seen: BTreeSet<(Instant, PublicKey)>,
    cap: usize,
}

impl Table {
    pub fn new(cap: usize) -> Self {
        Table {
            entries: HashMap::new(),
            by_addr: HashMap::new(),
            by_seen: BTreeSet::new(),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &PublicKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &PublicKey) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    /// The node registered at `addr`.
    pub fn at(&self, addr: &SocketAddr) -> Option<PublicKey> {
        self.by_addr.get(addr).copied()
    }

    /// When the least recently seen entry was seen.
    pub fn oldest(&self) -> Option<Instant> {
        self.by_seen.first().map(|(at, _)| *at)
    }

    /// Stores `entry` for `key`, moving it (and evicting whoever held its
    /// address). At the cap, the least recently seen entry makes room;
    /// returns the key evicted that way, if any.
    pub fn insert(&mut self, key: PublicKey, entry: Entry) -> Option<PublicKey> {
        self.remove(&key);
        if let Some(holder) = self.by_addr.get(&entry.addr).copied() {
            self.remove(&holder);
        }
        let evicted = if self.entries.len() >= self.cap {
            let oldest = self.by_seen.first().map(|(_, k)| *k);
            oldest.inspect(|k| {
                self.remove(k);
            })
        } else {
            None
        };
        self.by_addr.insert(entry.addr, key);
        self.by_seen.insert((entry.last_seen, key));
        self.entries.insert(key, entry);
        evicted
    }

    /// The entry was refreshed at `now`.
    pub fn touch(&mut self, key: &PublicKey, now: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            self.by_seen.remove(&(entry.last_seen, *key));
            entry.last_seen = now;
            self.by_seen.insert((now, *key));
        }
    }

    pub fn remove(&mut self, key: &PublicKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.by_seen.remove(&(entry.last_seen, *key));
        if self.by_addr.get(&entry.addr) == Some(key) {
            self.by_addr.remove(&entry.addr);
        }
        Some(entry)
    }

    /// Removes and returns the least recently seen entry if it was last
    /// seen at or before `cutoff`.
    pub fn pop_seen_by(&mut self, cutoff: Instant) -> Option<PublicKey> {
        let &(at, key) = self.by_seen.first()?;
        if at > cutoff {
            return None;
        }
        self.remove(&key);
        Some(key)
    }
}
