//! What one friend may hold of this node, so that one friend cannot take it
//! down for the others: tunnels (open or being opened, each a descriptor),
//! bytes buffered for its channels, and control messages it has not yet
//! acknowledged. A friend at a limit gets a REFUSE or RESET with the
//! "limit reached" code, and the node logs it once per interval.

use std::collections::BTreeMap;

use crate::id::PublicKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// Tunnels one friend may hold at once, open or being opened.
    pub per_friend: usize,
    /// Tunnels the whole node may hold at once: each holds a descriptor,
    /// so the driver derives this from the descriptors it may open.
    pub node: usize,
    /// Bytes buffered for one friend's channels, in each direction: what
    /// we sent and it has not acknowledged, and what it sent that we have
    /// not yet handed on.
    pub buffer_per_friend: usize,
}

pub const DEFAULT_TUNNELS_PER_FRIEND: usize = 1024;
pub const DEFAULT_BUFFER_PER_FRIEND: usize = 8 * 1024 * 1024;
/// Below this a friend's budget would not hold one channel's burst.
pub const MIN_BUFFER_PER_FRIEND: usize = 64 * 1024;

impl Default for TunnelLimits {
    fn default() -> Self {
        TunnelLimits {
            per_friend: DEFAULT_TUNNELS_PER_FRIEND,
            node: usize::MAX,
            buffer_per_friend: DEFAULT_BUFFER_PER_FRIEND,
        }
    }
}

impl TunnelLimits {
    /// On a server one friend may hold at most half of what the node may,
    /// so that a second friend always finds room. A client's tunnels are
    /// its own local connections, to servers it chose: no such share.
    pub fn effective_per_friend(&self, serving: bool) -> usize {
        let share = if serving { self.node / 2 } else { self.node };
        self.per_friend.min(share).max(1)
    }
}

/// Control messages a friend may leave unacknowledged (or queued behind
/// our window) beyond two for each tunnel it holds: an OPEN or its answer,
/// and a RESET. Past this its OPENs are not answered (an answer would only
/// queue behind the rest). Scaled by tunnels, a burst of local connections
/// (a thousand at once) fits, and a friend that never acknowledges holds
/// at most a few hundred bytes per tunnel it already may hold.
pub const CONTROL_BACKLOG_BEYOND_TUNNELS: usize = 256;

pub fn control_backlog_limit(tunnels_held: usize) -> usize {
    CONTROL_BACKLOG_BEYOND_TUNNELS + 2 * tunnels_held
}

/// Tunnels held, per friend and in all: a tunnel counts from the local
/// connection (client) or the OPEN we act on (server) until it is closed.
#[derive(Debug, Default)]
pub struct TunnelCount {
    per_friend: BTreeMap<PublicKey, usize>,
    total: usize,
}

impl TunnelCount {
    pub fn take(&mut self, friend: PublicKey) {
        *self.per_friend.entry(friend).or_default() += 1;
        self.total += 1;
    }

    pub fn release(&mut self, friend: &PublicKey) {
        let Some(held) = self.per_friend.get_mut(friend) else {
            return;
        };
        *held -= 1;
        if *held == 0 {
            self.per_friend.remove(friend);
        }
        self.total -= 1;
    }

    pub fn held_by(&self, friend: &PublicKey) -> usize {
        self.per_friend.get(friend).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}
