//! Data packets: sealing a payload for a friend, and opening what a friend
//! sent (which is also where key confirmation, roaming and probes land).

use std::time::Instant;

use tracing::{debug, trace};

use super::fragments::FRAME_FRAGMENT;
use super::friend::Slot;
use super::path::{Evidence, FRAME_PROBE, FRAME_PROBE_ACK, FRAME_PUNCH_READY};
use super::path_mtu::{FRAME_MTU_ACK, FRAME_MTU_PROBE};
use super::{FriendNet, NetEvent};
use crate::id::PublicKey;
use crate::proto::reason::OfflineReason;
use crate::proto::route::Route;
use crate::proto::tunnel::kcp_settings::MAX_KCP_MTU;
use crate::proto::wire;

/// A frame that says "I am stopping": the friend marks us offline at once.
const FRAME_GOODBYE: u8 = 9;
/// Copies of each goodbye sent.
const GOODBYE_COPIES: usize = 3;

impl FriendNet {
    pub(super) fn on_data(
        &mut self,
        now: Instant,
        from: Route,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
    ) {
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped data for an unknown index");
            return;
        };
        // Larger than any node sends (a frame type and the largest KCP
        // packet): not worth decrypting.
        if ciphertext.len() > 1 + MAX_KCP_MTU + wire::TAG_LEN {
            trace!(%from, len = ciphertext.len(), "dropped oversized data");
            return;
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let Some(slot) = friend.sessions.slot_of(receiver) else {
            return;
        };
        let Some(session) = friend.sessions.get_mut(slot) else {
            return;
        };
        let mut plain = std::mem::take(&mut self.scratch);
        if !session.open(counter, ciphertext, &mut plain) {
            trace!(%from, friend = %key.short(), "dropped data that did not authenticate or was replayed");
            self.scratch = plain;
            return;
        }
        friend.liveness.last_recv = now;
        friend.liveness.unanswered_since = None;
        friend.stats.bytes_in += ciphertext.len() as u64;
        let frame = plain.first().copied();
        if frame == Some(FRAME_GOODBYE) {
            self.scratch = plain;
            self.go_offline(&key, OfflineReason::PeerStopping);
            return;
        }
        let probe = matches!(
            frame,
            Some(
                FRAME_PROBE | FRAME_PROBE_ACK | FRAME_PUNCH_READY | FRAME_MTU_PROBE | FRAME_MTU_ACK
            )
        );
        let evidence = match frame {
            Some(FRAME_PROBE) => Evidence::Probe,
            Some(FRAME_PROBE_ACK) => Evidence::ProbeAck,
            _ => Evidence::Other,
        };
        if frame == Some(FRAME_PUNCH_READY) {
            friend.path.peer_ready = true;
        }
        if evidence == Evidence::ProbeAck {
            if let Some(sent) = friend.path.last_probe_sent {
                friend.stats.rtt = Some(now.saturating_duration_since(sent));
            }
        }
        if slot == Slot::Next {
            self.confirm(now, key);
        }
        if let Some(friend) = self.friends.get_mut(&key) {
            friend.path.note(from, now, evidence);
        }
        self.prove_source(key, from);
        self.mark_online(now, key, from);
        if frame == Some(FRAME_PROBE) {
            if let Route::Direct(addr) = from {
                // Answer on the path the probe came by: that proves it both ways.
                self.send_on(now, &key, Route::Direct(addr), &[FRAME_PROBE_ACK], None);
            }
        }
        match frame {
            Some(FRAME_MTU_PROBE) => self.answer_mtu_probe(now, key, from, plain.len()),
            Some(FRAME_MTU_ACK) => self.on_mtu_ack(now, key, &plain[1..]),
            _ => {}
        }
        if frame == Some(FRAME_FRAGMENT) {
            let whole = self
                .friends
                .get_mut(&key)
                .and_then(|f| f.fragments.add(&plain));
            self.scratch = plain;
            if let Some(payload) = whole {
                self.events.push_back(NetEvent::Received {
                    friend: key,
                    payload,
                });
            }
            return;
        }
        if plain.is_empty() || probe {
            debug!(friend = %key.short(), "keepalive received");
            self.scratch = plain;
        } else {
            self.events.push_back(NetEvent::Received {
                friend: key,
                payload: plain,
            });
        }
    }

    /// The caller gave the friend something that needs an answer (data an
    /// acknowledgement must follow): if nothing comes back from the friend
    /// for a few round trips, it is suspected of having lost our session.
    /// Acknowledgements, keepalives and probes need no answer and must not
    /// be reported here.
    pub fn expect_answer(&mut self, now: Instant, key: &PublicKey) {
        if let Some(friend) = self.friends.get_mut(key) {
            friend.liveness.unanswered_since.get_or_insert(now);
            friend.mtu.note_data_sent(now);
        }
    }

    /// Tells every online friend we are stopping, so that it closes our
    /// tunnels and marks us offline now rather than after its friend
    /// timeout. Each goodbye goes `GOODBYE_COPIES` times: the process ends
    /// right after, so there is no waiting for an acknowledgement, and one
    /// lost datagram must not undo it.
    pub fn say_goodbye(&mut self, now: Instant) {
        let online: Vec<PublicKey> = self
            .friends
            .iter()
            .filter(|(_, f)| f.liveness.online)
            .map(|(key, _)| *key)
            .collect();
        for key in online {
            for _ in 0..GOODBYE_COPIES {
                self.send(now, &key, &[FRAME_GOODBYE]);
            }
        }
    }

    /// Encrypts `payload` to the friend on its current session; false if the
    /// friend has none (the caller's reliability layer will retry).
    /// A payload larger than the path carries (queued before it shrank)
    /// goes in pieces.
    pub fn send(&mut self, now: Instant, key: &PublicKey, payload: &[u8]) -> bool {
        let Some(route) = self.route_to(now, key) else {
            return false;
        };
        let Some(friend) = self.friends.get_mut(key) else {
            return false;
        };
        let limit = friend.mtu.payload();
        if payload.len() <= limit {
            return self.send_on(now, key, route, payload, None);
        }
        let pieces = friend.fragments.split(payload, limit);
        pieces
            .iter()
            .all(|piece| self.send_on(now, key, route, piece, None))
    }

    pub(super) fn send_on(
        &mut self,
        now: Instant,
        key: &PublicKey,
        route: Route,
        payload: &[u8],
        ttl: Option<u32>,
    ) -> bool {
        let Some(friend) = self.friends.get_mut(key) else {
            return false;
        };
        let Some(session) = friend.sessions.current.as_mut() else {
            return false;
        };
        let mut packet = Vec::with_capacity(wire::DATA_MIN_LEN + payload.len());
        if !session.seal(payload, &mut packet) {
            return false;
        }
        let rekey = session.needs_rekey();
        friend.liveness.last_sent = now;
        friend.stats.bytes_out += packet.len() as u64;
        let rekey_now = rekey && friend.connecting.attempt.is_none();
        let mut transmit = route.transmit(packet);
        transmit.ttl = ttl;
        self.push(transmit);
        if rekey_now {
            self.start_initiation(now, *key);
        }
        true
    }
}
