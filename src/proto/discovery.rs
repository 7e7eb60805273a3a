//! What a node knows about its bootstrap nodes: when to announce next, the
//! measured round trip, the public address each one sees us at, and the
//! lookups in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::id::{PublicKey, ToxId};

pub struct BootstrapNode {
    pub addr: SocketAddr,
    pub id: ToxId,
    pub rtt: Option<Duration>,
    pub last_ack: Option<Instant>,
    /// Announcement sent and not yet acknowledged: its nonce and send time.
    pub pending: Option<([u8; 8], Instant)>,
    pub next_announce: Instant,
    /// Our address as this bootstrap node sees it.
    pub public_addr: Option<SocketAddr>,
    /// Announcements sent since the last acknowledgement.
    pub unanswered: u32,
}

#[derive(Default)]
pub struct Discovery {
    pub nodes: Vec<BootstrapNode>,
    /// Lookup nonce to the friend looked up and the bootstrap node asked.
    pub lookups: HashMap<[u8; 8], (PublicKey, SocketAddr)>,
}

/// Unanswered announcements after which a bootstrap node counts as down.
const DOWN_AFTER: u32 = 3;
/// Unanswered announcements after which we also try it over TCP.
const TCP_AFTER: u32 = 2;

impl Discovery {
    pub fn add(&mut self, addr: SocketAddr, id: ToxId, now: Instant) {
        self.nodes.push(BootstrapNode {
            addr,
            id,
            rtt: None,
            last_ack: None,
            pending: None,
            next_announce: now,
            public_addr: None,
            unanswered: 0,
        });
    }

    pub fn is_up(node: &BootstrapNode) -> bool {
        node.unanswered < DOWN_AFTER
    }

    /// Bootstrap nodes that answer, nearest (by measured round trip) first;
    /// ones not measured yet come after measured ones.
    pub fn nearest(&self) -> Vec<SocketAddr> {
        let mut up: Vec<&BootstrapNode> = self.nodes.iter().filter(|n| Self::is_up(n)).collect();
        up.sort_by_key(|n| n.rtt.unwrap_or(Duration::MAX));
        up.into_iter().map(|n| n.addr).collect()
    }

    pub fn wanting_tcp(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.unanswered >= TCP_AFTER)
            .map(|n| n.addr)
    }

    pub fn is_up_at(&self, addr: SocketAddr) -> bool {
        self.nodes.iter().any(|n| n.addr == addr && Self::is_up(n))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.nodes.iter().map(|n| n.next_announce).min()
    }

    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut BootstrapNode> {
        self.nodes.iter_mut().find(|n| n.addr == addr)
    }
}
