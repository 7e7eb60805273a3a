//! The friend network's side of LAN discovery (wire format in `proto::lan`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, trace};

use super::FriendNet;
use crate::id::PublicKey;
use crate::proto::lan::{self, Lan};
use crate::proto::transmit::Transmit;

/// Answers to LAN queries a second at most: a spoofed query makes us send
/// an answer of its own size to someone, so cap how often.
pub(super) const ANSWERS_PER_SECOND: u64 = 16;
const QUERY_EVERY: Duration = Duration::from_secs(1);

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
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if friend.liveness.online || !friend.connecting.dial || !friend.path.suggest(from) {
            return;
        }
        info!(friend = %key.short(), addr = %from, "found friend on the LAN");
        self.start_initiation(now, key);
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
