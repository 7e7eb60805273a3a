//! Bootstrap nodes as a friend network uses them: announcing our record,
//! looking friends up, passing connect requests, and falling back to a TCP
//! stream link when a node does not answer over UDP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, trace};

use super::friend::Attempt;
use super::{FriendNet, NetEvent};
use crate::id::{PublicKey, ToxId};
use crate::proto::record::Record;
use crate::proto::rendezvous::{self, Rendezvous};
use crate::proto::route::Route;
use crate::proto::transmit::Transmit;

/// Unanswered announcements after which a bootstrap node counts as down.
const DOWN_AFTER: u32 = 3;
/// Unanswered announcements after which we also try it over TCP.
const STREAM_AFTER: u32 = 2;
/// A stream link that failed or closed is asked for again after this.
pub const STREAM_LINK_RETRY: Duration = Duration::from_secs(5);
/// First retry of an unanswered announcement; doubles up to 2 s.
const ANNOUNCE_RETRY: Duration = Duration::from_millis(250);
/// Records we announce stay valid this long at a bootstrap node.
const RECORD_LIFETIME: Duration = Duration::from_secs(600);

/// A TCP link carrying datagrams to a bootstrap node, for networks that
/// block UDP. The core decides when one is wanted; the driver makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamLink {
    /// None, and none wanted before `retry_at` (if set).
    Down {
        retry_at: Option<Instant>,
    },
    /// Asked the driver for one; it answers up or down.
    Asked,
    Up,
}

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
    pub stream: StreamLink,
}

impl BootstrapNode {
    pub fn is_up(&self) -> bool {
        self.unanswered < DOWN_AFTER
    }

    /// When a stream link should next be asked for; None while one is up,
    /// asked for, or UDP works.
    fn stream_wanted_at(&self) -> Option<Instant> {
        match self.stream {
            // At once the first time: the unanswered announcement was sent.
            StreamLink::Down { retry_at } if self.unanswered >= STREAM_AFTER => {
                retry_at.or(self.pending.map(|(_, sent)| sent))
            }
            _ => None,
        }
    }
}

#[derive(Default)]
pub struct Discovery {
    pub nodes: Vec<BootstrapNode>,
    /// Lookup nonce to the friend looked up and the bootstrap node asked.
    pub lookups: HashMap<[u8; 8], (PublicKey, SocketAddr)>,
}

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
            stream: StreamLink::Down { retry_at: None },
        });
    }

    /// Bootstrap nodes that answer, nearest (by measured round trip) first;
    /// ones not measured yet come after measured ones.
    pub fn nearest(&self) -> Vec<SocketAddr> {
        let mut up: Vec<&BootstrapNode> = self.nodes.iter().filter(|n| n.is_up()).collect();
        up.sort_by_key(|n| n.rtt.unwrap_or(Duration::MAX));
        up.into_iter().map(|n| n.addr).collect()
    }

    pub fn is_up_at(&self, addr: SocketAddr) -> bool {
        self.nodes.iter().any(|n| n.addr == addr && n.is_up())
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.nodes
            .iter()
            .flat_map(|n| [Some(n.next_announce), n.stream_wanted_at()])
            .flatten()
            .min()
    }

    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut BootstrapNode> {
        self.nodes.iter_mut().find(|n| n.addr == addr)
    }
}

impl FriendNet {
    /// A bootstrap node to announce to, look friends up at and relay through.
    pub fn add_bootstrap(&mut self, now: Instant, addr: SocketAddr, id: ToxId) {
        self.discovery.add(addr, id, now);
    }

    /// The stream link the core asked for (`NetEvent::StreamLinkWanted`) is
    /// up: the driver sends this node's datagrams over it from now on. Call
    /// once it is connected.
    pub fn stream_link_up(&mut self, now: Instant, addr: SocketAddr) {
        let Some(node) = self.discovery.node_mut(addr) else {
            return;
        };
        node.stream = StreamLink::Up;
        node.unanswered = 0;
        node.pending = None;
        node.next_announce = now;
        self.announce(now);
        let looking: Vec<PublicKey> = self
            .friends
            .iter()
            .filter(|(_, f)| matches!(f.connecting.attempt, Some(Attempt::Lookup { .. })))
            .map(|(k, _)| *k)
            .collect();
        for key in looking {
            self.start_lookup(now, key);
        }
    }

    /// The stream link to `addr` could not be made, or it closed: call when
    /// either happens. Datagrams go over UDP again, and a link is asked for
    /// again after `STREAM_LINK_RETRY` if UDP still goes unanswered.
    pub fn stream_link_down(&mut self, now: Instant, addr: SocketAddr) {
        if let Some(node) = self.discovery.node_mut(addr) {
            debug!(bootstrap = %addr, "stream link down");
            node.stream = StreamLink::Down {
                retry_at: Some(now + STREAM_LINK_RETRY),
            };
        }
    }

    pub(super) fn discovery_timers(&mut self, now: Instant) {
        if self.discovery.nodes.iter().any(|n| n.next_announce <= now) {
            self.announce(now);
        }
        for node in &mut self.discovery.nodes {
            if node.stream_wanted_at().is_some_and(|at| at <= now) {
                debug!(bootstrap = %node.addr, "no answer over UDP; asking for a stream link");
                node.stream = StreamLink::Asked;
                self.events
                    .push_back(NetEvent::StreamLinkWanted { addr: node.addr });
            }
        }
    }

    pub(super) fn on_rendezvous(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.discovery.nodes.iter().any(|n| n.addr == from) {
            trace!(%from, "dropped bootstrap packet from a node we did not configure");
            return;
        }
        match rendezvous::parse(bytes) {
            Some(Rendezvous::Relayed { sender, inner }) => self.on_friend_packet(
                now,
                Route::Relay {
                    via: from,
                    peer: sender,
                },
                inner,
            ),
            Some(Rendezvous::AnnounceAck { nonce, observed }) => {
                self.on_announce_ack(now, from, nonce, observed)
            }
            Some(Rendezvous::Challenge { nonce, cookie }) => {
                self.on_challenge(now, from, nonce, cookie)
            }
            Some(Rendezvous::LookupReply { nonce, found }) => {
                self.on_lookup_reply(now, from, nonce, found)
            }
            Some(Rendezvous::ConnectNotify { sender, observed }) => {
                let Some(friend) = self.friends.get_mut(&sender) else {
                    return;
                };
                debug!(friend = %sender.short(), public = %observed, "friend wants a direct path");
                friend.path.relay = Some(from);
                // Only a new address restarts probing: the friend repeats its
                // request while it probes, and each repeat must not reset ours.
                // The notice is unauthenticated: the address is probed beside
                // any we trust, never instead.
                if friend.path.direct_confirmed.is_none() && friend.path.suggest(observed) {
                    friend.path.restart_probing(now);
                }
            }
            _ => {}
        }
    }

    fn on_announce_ack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: [u8; 8],
        observed: SocketAddr,
    ) {
        let keepalive = self.config.keepalive;
        let Some(node) = self.discovery.node_mut(from) else {
            return;
        };
        // Only an answer to the announcement in flight counts: anyone can
        // send a packet from the bootstrap node's address.
        let Some((_, sent)) = node.pending.filter(|(n, _)| *n == nonce) else {
            trace!(bootstrap = %from, "dropped an announce ack we did not ask for");
            return;
        };
        node.rtt = Some(now.saturating_duration_since(sent));
        node.pending = None;
        node.last_ack = Some(now);
        node.unanswered = 0;
        node.next_announce = now + keepalive;
        if node.public_addr != Some(observed) {
            info!(bootstrap = %from, public = %observed, "bootstrap node sees us at");
            node.public_addr = Some(observed);
        }
    }

    fn on_lookup_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: [u8; 8],
        found: Option<(SocketAddr, &[u8])>,
    ) {
        let Some((key, via)) = self.discovery.lookups.remove(&nonce) else {
            return;
        };
        let Some((observed, record)) = found else {
            debug!(friend = %key.short(), bootstrap = %from, "friend not known to bootstrap node");
            return;
        };
        let Some(record) = Record::decode(record).filter(|r| r.identity == key) else {
            return;
        };
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        // The first answer wins: it came from the nearest node, whose relay
        // we then use. Later answers find no lookup left.
        self.discovery.lookups.retain(|_, (k, _)| *k != key);
        friend.keys.noise_key = Some(record.noise_key);
        friend.path.relay = Some(via);
        if friend.path.direct_confirmed.is_none() {
            friend.path.suggest(observed);
        }
        friend.connecting.attempt = None;
        info!(friend = %key.short(), public = %observed, bootstrap = %via, "found friend");
        // Sent again once the session is up: a friend that knows us only by
        // our handshake drops this one.
        let me = self.identity.public_key();
        self.push(Transmit::to(via, rendezvous::connect(&key, &me)));
        self.start_initiation(now, key);
    }

    /// The bootstrap node asks us to prove we receive at the address our
    /// announcement came from: sign its cookie, with the announcement.
    fn on_challenge(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: [u8; 8],
        cookie: [u8; rendezvous::COOKIE_LEN],
    ) {
        let asked = self
            .discovery
            .node_mut(from)
            .is_some_and(|node| node.pending.is_some_and(|(n, _)| n == nonce));
        if !asked {
            trace!(bootstrap = %from, "dropped a challenge we did not ask for");
            return;
        }
        let signature = self
            .identity
            .sign(&[rendezvous::PROOF_DOMAIN, &cookie].concat());
        let record = self.own_record(now);
        self.push(Transmit::to(
            from,
            rendezvous::proven_announce(&nonce, &cookie, &signature, &record),
        ));
    }

    /// Our record as we announce it: the sequence is our clock in
    /// milliseconds, so it rises from one announcement to the next.
    fn own_record(&self, now: Instant) -> Vec<u8> {
        let unix = self.unix_time(now);
        Record::new(
            &self.identity,
            unix.as_millis() as u64,
            (unix + RECORD_LIFETIME).as_secs(),
            Vec::new(),
        )
        .encode(&self.identity)
    }

    fn announce(&mut self, now: Instant) {
        let keepalive = self.config.keepalive;
        let record = self.own_record(now);
        for node in self
            .discovery
            .nodes
            .iter_mut()
            .filter(|n| n.next_announce <= now)
        {
            if node.pending.is_some() {
                node.unanswered += 1;
            }
            let mut nonce = [0u8; 8];
            rand::RngCore::fill_bytes(&mut self.rng, &mut nonce);
            node.pending = Some((nonce, now));
            // Retried quickly until answered: an unanswered node soon counts
            // as down (failover) or as unreachable by UDP (stream link).
            let retry = ANNOUNCE_RETRY * (1 << node.unanswered.min(3));
            node.next_announce = now + retry.min(keepalive);
            self.transmits.push_back(Transmit::to(
                node.addr,
                rendezvous::announce(&nonce, &record),
            ));
        }
    }

    /// Asks every bootstrap node that answers at once: redundancy, and the
    /// first answer marks the nearest one.
    pub(super) fn start_lookup(&mut self, now: Instant, key: PublicKey) {
        let nearest = self.discovery.nearest();
        if nearest.is_empty() {
            return;
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        friend.connecting.attempt = Some(Attempt::Lookup { sent: now });
        self.discovery.lookups.retain(|_, (k, _)| *k != key);
        for via in nearest {
            let mut nonce = [0u8; 8];
            rand::RngCore::fill_bytes(&mut self.rng, &mut nonce);
            self.discovery.lookups.insert(nonce, (key, via));
            debug!(friend = %key.short(), bootstrap = %via, "looking up friend");
            self.push(Transmit::to(via, rendezvous::lookup(&nonce, &key)));
        }
    }
}
