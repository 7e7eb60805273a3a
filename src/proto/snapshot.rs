//! What the core can say about itself at one instant, as typed data: the
//! driver renders it (`toxtun status`), the core never formats it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::id::{PublicKey, ToxId};
use crate::proto::tunnel::control::Transport;
use crate::proto::ConnId;

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: ToxId,
    pub bootstrap: Vec<BootstrapSnapshot>,
    /// Ordered by key, so two snapshots of the same state are equal.
    pub friends: Vec<FriendSnapshot>,
    pub counters: Counters,
    pub datagrams_dropped: DatagramCounts,
    /// Tunnels open now (a UDP tunnel's flows each count), oldest first.
    pub connections: Vec<ConnectionSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSnapshot {
    pub conn: ConnId,
    pub friend: PublicKey,
    pub target: String,
    pub transport: Transport,
    pub age: Duration,
    /// From the friend, to our local side.
    pub bytes_in: u64,
    /// From our local side, to the friend.
    pub bytes_out: u64,
}

/// Datagrams of UDP tunnels this node dropped, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramCounts {
    /// Larger than a UDP tunnel carries (`datagram::MAX_DATAGRAM`), from
    /// a local source or from a friend.
    pub too_large: u64,
}

/// Work strangers can make a node do, and what it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Handshake messages that cost a Diffie-Hellman (read or written).
    pub dh: u64,
    pub hellos_answered: u64,
    /// HELLOs and message 1s dropped by the per-source and total limits.
    pub hellos_limited: u64,
    pub initiations_limited: u64,
    /// Cookie replies sent: message 1s answered under load without a
    /// Diffie-Hellman.
    pub cookies_sent: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapSnapshot {
    pub addr: SocketAddr,
    pub id: ToxId,
    pub up: bool,
    pub rtt: Option<Duration>,
    /// Our address as this bootstrap node sees it.
    pub public_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Straight to the friend at this address.
    Direct(SocketAddr),
    /// Through the relay of the bootstrap node at this address.
    Relayed(SocketAddr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FriendSnapshot {
    pub key: PublicKey,
    /// Its name in `[friends]`, if it has one.
    pub name: Option<String>,
    pub online: bool,
    /// None while offline.
    pub path: Option<PathKind>,
    pub rtt: Option<Duration>,
    /// Since the last authenticated packet from it; None if it never sent one.
    pub last_seen: Option<Duration>,
    /// The largest UDP payload the path was found to carry.
    pub path_mtu: Option<usize>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Tunnelled connections open with this friend.
    pub tunnels: usize,
    /// The path's congestion controller; None when off or offline.
    pub congestion: Option<CongestionSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CongestionSnapshot {
    pub phase: &'static str,
    /// Bytes a second the path is estimated to deliver.
    pub bandwidth: Option<f64>,
    pub min_rtt: Option<Duration>,
    /// The lowest round trip of the last rounds: above the path's while a
    /// queue stays at the bottleneck.
    pub recent_rtt: Option<Duration>,
    pub pacing_rate: Option<f64>,
    /// Bytes that may be in flight, and that are.
    pub window: u64,
    pub in_flight: u64,
    /// Bytes waiting in the pacer.
    pub queued: usize,
    /// Data segments sent again since the friend came online.
    pub resent: u64,
}
