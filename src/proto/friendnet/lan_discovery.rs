//! The friend network's side of LAN discovery (wire format in `proto::lan`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, trace, warn};

use super::FriendNet;
use crate::id::PublicKey;
use crate::proto::lan::{self, Lan};
use crate::proto::log_limit::LogLimit;
use crate::proto::transmit::Transmit;

/// Answers to LAN queries a second at most: a spoofed query makes us send
/// an answer of its own size to someone, so cap how often.
pub(super) const ANSWERS_PER_SECOND: u64 = 16;
const QUERY_EVERY: Duration = Duration::from_secs(1);
/// How often a node asks the LAN whether another runs on its key.
const SELF_PROBE_EVERY: Duration = Duration::from_secs(300);
/// An answer for our own key later than this after a probe is not taken
/// as one: anyone on the LAN can send an answer unasked.
const PROBE_ANSWERS_WITHIN: Duration = Duration::from_secs(5);

/// The probe for our own key: when it is next due, and the warnings it
/// brought.
pub(super) struct SelfProbe {
    next: Instant,
    /// When the last probe went out: only answers soon after it count.
    asked_at: Option<Instant>,
    ours: Option<SocketAddr>,
    duplicates: LogLimit,
}

impl SelfProbe {
    pub(super) fn new(now: Instant) -> Self {
        SelfProbe {
            next: now,
            asked_at: None,
            ours: None,
            duplicates: LogLimit::default(),
        }
    }
}

impl FriendNet {
    /// Call for every datagram that arrives on the LAN discovery port. A
    /// query for our own key is answered from our own socket, so the asker
    /// learns where we are.
    pub fn handle_lan_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.config.lan_discovery {
            return;
        }
        let Some(Lan::Query(key)) = lan::parse(bytes) else {
            return;
        };
        if key != self.identity.public_key() || from.port() == 0 {
            return;
        }
        let instance = lan::instance_of(bytes);
        if instance != 0 && instance == self.instance {
            return;
        }
        if !self.lan_answers.take(now, 1) {
            trace!(%from, "LAN query not answered: over the rate limit");
            return;
        }
        debug!(%from, "answering a LAN query for us");
        self.transmits
            .push_back(Transmit::to(from, lan::here(&key)));
    }

    /// A friend we dial answered our LAN query: handshake with it there.
    /// The answer is unauthenticated, so it only says where else to try.
    pub(super) fn on_lan_here(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.config.lan_discovery {
            return;
        }
        let Some(Lan::Here(key)) = lan::parse(bytes) else {
            return;
        };
        if key == self.identity.public_key() {
            return self.another_node_on_our_key(now, from);
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if friend.liveness.online || !friend.connecting.dial || !friend.path.suggest(from) {
            return;
        }
        info!(friend = %key.short(), addr = %from, "found friend on the LAN");
        self.start_initiation(now, key);
    }

    /// When the next probe for our own key is due.
    pub(super) fn self_probe_deadline(&self) -> Option<Instant> {
        self.config.lan_discovery.then_some(self.self_probe.next)
    }

    /// Asks the LAN whether another node answers for our key: at start,
    /// then every few minutes.
    pub(super) fn probe_for_own_key(&mut self, now: Instant) {
        if !self.config.lan_discovery || now < self.self_probe.next {
            return;
        }
        self.self_probe.next = now + SELF_PROBE_EVERY;
        self.self_probe.asked_at = Some(now);
        let probe = lan::probe(&self.identity.public_key(), self.instance);
        self.transmits
            .push_back(Transmit::lan_broadcast(lan::PORT, probe));
    }

    /// The UDP address this node is bound to, for the warning that names
    /// both nodes on one key.
    pub fn set_udp_addr(&mut self, addr: SocketAddr) {
        self.self_probe.ours = Some(addr);
    }

    /// Friends would reach one node or the other, unpredictably, and each
    /// would drop the other's sessions as it rekeys: say so, naming both.
    fn another_node_on_our_key(&mut self, now: Instant, other: SocketAddr) {
        let asked_lately = self
            .self_probe
            .asked_at
            .is_some_and(|at| now <= at + PROBE_ANSWERS_WITHIN);
        if !asked_lately {
            return;
        }
        let Some(times) = self.self_probe.duplicates.hit(now) else {
            return;
        };
        let ours = self
            .self_probe
            .ours
            .map_or("-".to_string(), |a| a.to_string());
        warn!(
            %other,
            %ours,
            key = %self.identity.public_key(),
            times,
            "another node runs on this node's key: it answered our LAN probe; friends reach one \
             or the other, unpredictably; stop one, or give it a key of its own"
        );
    }

    /// Asks the LAN for an offline friend we dial, once per handshake
    /// retry at most; the driver sends this to the broadcast address of
    /// every interface.
    pub(super) fn lan_query(&mut self, now: Instant, key: PublicKey) {
        if !self.config.lan_discovery {
            return;
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let asked_lately = friend
            .path
            .last_lan_query
            .is_some_and(|at| now < at + QUERY_EVERY);
        if friend.liveness.online || !friend.connecting.dial || asked_lately {
            return;
        }
        friend.path.last_lan_query = Some(now);
        self.transmits
            .push_back(Transmit::lan_broadcast(lan::PORT, lan::query(&key)));
    }
}
