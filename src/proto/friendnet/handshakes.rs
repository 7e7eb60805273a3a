//! Getting a session with a friend: HELLO (to learn its Noise key from its
//! ID), handshake message 1 and 2, and what a changed instance means.

use std::time::{Duration, Instant};

use tracing::{debug, info, trace, warn};

use super::friend::{Attempt, Confirming, Friend};
use super::path::Evidence;
use super::under_load::{with_mac2, COOKIE_FRESH};
use super::{FriendNet, NetEvent, OfflineReason, FIRST_RETRY};
use crate::id::PublicKey;
use crate::proto::handshake::{self, InitPayload};
use crate::proto::record::Record;
use crate::proto::route::Route;
use crate::proto::session::Session;
use crate::proto::transmit::Transmit;
use crate::proto::wire;

/// An initiator whose handshake goes unconfirmed this long has given up
/// on it (it retries well within this), so it no longer blocks another.
const CONFIRM_WITHIN: Duration = Duration::from_secs(5);
/// Unanswered message 1s after a HELLO answered within `HELLO_FRESH`, or
/// answered ones never confirmed, that make a warning.
const UNANSWERED_WARNING: u32 = 3;
const HELLO_FRESH: Duration = Duration::from_secs(60);

impl FriendNet {
    /// Anyone may ask for our record: it is public (bootstrap nodes hand
    /// it out too) and nothing in the question depends on our nospam, so a
    /// sniffed HELLO gives no way to test a guess of it offline.
    pub(super) fn on_hello(
        &mut self,
        now: Instant,
        from: Route,
        nonce: [u8; 16],
        target: [u8; 32],
    ) {
        if PublicKey(target) != self.identity.public_key() {
            trace!(%from, "dropped hello for another node");
            return;
        }
        if !self.hello_limit.allow(now, from.socket_addr().ip()) {
            self.counters.hellos_limited += 1;
            if let Some(times) = self.logs.hello_limited.hit(now) {
                info!(%from, times, "hellos dropped: over the rate limit");
            }
            return;
        }
        if let Some(reply) = wire::hello_reply(&nonce, &self.hello_record) {
            self.counters.hellos_answered += 1;
            self.push(from.transmit(reply));
        }
    }

    pub(super) fn on_hello_reply(
        &mut self,
        now: Instant,
        from: Route,
        nonce: [u8; 16],
        record: &[u8],
    ) {
        let Some(key) = self
            .friends
            .iter()
            .find_map(|(key, f)| match f.connecting.attempt {
                Some(Attempt::Hello { nonce: n, .. }) if n == nonce => Some(*key),
                _ => None,
            })
        else {
            trace!(%from, "dropped unexpected hello reply");
            return;
        };
        let Some(record) = Record::decode(record).filter(|r| r.identity == key) else {
            debug!(%from, friend = %key.short(), "dropped hello reply with a bad record");
            return;
        };
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        friend.keys.noise_key = Some(record.noise_key);
        friend.connecting.attempt = None;
        friend.connecting.hello_answered = Some(now);
        // The answer to our nonce came from the address we trust: the
        // friend is there, and addresses only rumoured need no more tries.
        if friend.path.addr_trusted && friend.path.addr.map(Route::Direct) == Some(from) {
            friend.path.candidates.clear();
        }
        debug!(friend = %key.short(), %from, "learned noise key; starting handshake");
        self.start_initiation(now, key);
    }

    /// Message 1. Its identity, nospam and timestamp are checked after one
    /// Diffie-Hellman; what it says about the path and the initiator's
    /// instance waits for key confirmation (`on_data`).
    pub(super) fn on_initiation(&mut self, now: Instant, from: Route, sender: u32, noise: &[u8]) {
        if !self.initiation_allowed(now, from) {
            return;
        }
        let seed = self.noise_seed();
        self.counters.dh += 1;
        let Some(responding) =
            handshake::read_initiation(&self.identity, &self.config.psk, noise, seed)
        else {
            if let Some(times) = self.logs.undecryptable.hit(now) {
                debug!(%from, times, "dropped handshakes that did not decrypt");
            }
            return;
        };
        let payload = responding.payload;
        let key = payload.identity;
        if !self.friends.contains_key(&key) {
            let proved = self.config.accept_requests && payload.nospam == self.identity.nospam;
            if proved && self.friends.len() >= self.config.max_friends {
                if let Some(times) = self.logs.friends_full.hit(now) {
                    warn!(%from, key = %key, times, limit = self.config.max_friends, "refused friend request: friend limit reached");
                }
                return;
            }
            if proved {
                // Remembered only once its first data packet confirms the
                // keys: with a psk set, that is where the psk is proven.
                debug!(friend = %key, %from, "friend request (nospam proved); awaiting key confirmation");
                let mut friend = Friend::new(now, FIRST_RETRY);
                friend.keys.unconfirmed_since = Some(now);
                self.friends.insert(key, friend);
            } else {
                if let Some(times) = self.logs.not_a_friend.hit(now) {
                    warn!(%from, key = %key, times, "refused handshake: not a friend");
                }
                return;
            }
        }
        let online = self.is_online(&key);
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        // A timestamp no newer than the last is a replay, or a friend that
        // restarted with its clock set back (by NTP, say): refusing it would
        // lock that friend out until its clock caught up, an hour maybe.
        // Nothing a message 1 says takes effect before key confirmation,
        // which a replay cannot give, so it is answered; only a handshake
        // awaiting confirmation (and not yet given up) is not displaced.
        let stale = friend
            .keys
            .last_timestamp
            .is_some_and(|t| payload.timestamp <= t);
        let pending = friend
            .sessions
            .next
            .as_ref()
            .is_some_and(|s| now < s.created + CONFIRM_WITHIN);
        if stale && pending {
            if let Some(times) = self.logs.stale_timestamp.hit(now) {
                warn!(%from, friend = %key.short(), times, "refused handshake: replayed or stale timestamp while another awaits confirmation");
            }
            return;
        }
        if !stale {
            friend.keys.last_timestamp = Some(payload.timestamp);
        }
        friend.keys.noise_key = Some(responding.remote_noise);
        // An initiator that holds no tunnels makes us drop ours at
        // confirmation: say so now, as if we held none.
        let info = handshake::ResponderInfo {
            instance: self.instance,
            fresh: payload.fresh || !online,
        };
        self.counters.dh += 1;
        let Some((transport, message)) = handshake::write_response(responding.state, info) else {
            return;
        };
        let local_index = self.new_index(key);
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let session = Session::new(local_index, sender, transport, now, false);
        if let Some(old) = friend.sessions.next.replace(session) {
            self.indices.remove(&old.local_index);
        }
        friend.keys.answered_unconfirmed += 1;
        if friend.keys.answered_unconfirmed == UNANSWERED_WARNING {
            warn!(friend = %key, answered = UNANSWERED_WARNING, "friend confirms none of the handshakes we answer: our answers do not reach it, or its psk differs from ours (it must be the same on both sides)");
        }
        friend.sessions.confirming = Some(Confirming {
            route: from,
            instance: payload.instance,
            fresh: payload.fresh,
            answered_at: now,
        });
        let mut packet = wire::response_body(local_index, sender, &message);
        let mac = handshake::mac1(&handshake::mac1_key(&responding.remote_noise), &packet);
        packet.extend_from_slice(&mac);
        debug!(friend = %key.short(), %from, "answered handshake");
        self.push(from.transmit(packet));
    }

    /// Message 1 from an address no session has proven, or relayed for a
    /// key that is no friend of ours, may be a stranger guessing our
    /// nospam: it is held to a rate per source and in total.
    fn initiation_allowed(&mut self, now: Instant, from: Route) -> bool {
        let known = match from {
            Route::Direct(addr) => self.proven.contains_key(&addr),
            Route::Relay { peer, .. } => self.friends.contains_key(&peer),
        };
        if known || self.guess_limit.allow(now, from.socket_addr().ip()) {
            return true;
        }
        self.counters.initiations_limited += 1;
        if let Some(times) = self.logs.initiation_limited.hit(now) {
            info!(%from, times, "handshakes dropped: over the rate limit for unproven sources");
        }
        false
    }

    /// Key confirmation: the initiator used the keys of `next`. Only now do
    /// the path and instance its message 1 named take effect.
    pub(super) fn confirm(&mut self, now: Instant, key: PublicKey) {
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        friend.keys.answered_unconfirmed = 0;
        if friend.keys.unconfirmed_since.take().is_some() {
            info!(friend = %key, "accepted friend request (nospam and keys proved); remembering it");
            self.events.push_back(NetEvent::FriendAdded { friend: key });
        }
        let (Some(session), confirming) = (
            friend.sessions.next.take(),
            friend.sessions.confirming.take(),
        ) else {
            return;
        };
        if let Some(confirming) = confirming {
            let restarted = friend
                .keys
                .remote_instance
                .is_some_and(|i| i != confirming.instance);
            if restarted {
                self.go_offline(&key, OfflineReason::Restarted);
            } else if confirming.fresh && friend.liveness.online {
                self.go_offline(&key, OfflineReason::ReconnectedFresh);
            }
            let Some(friend) = self.friends.get_mut(&key) else {
                return;
            };
            friend.keys.remote_instance = Some(confirming.instance);
            friend.path.note(confirming.route, now, Evidence::Other);
            // The responder's round trip: the initiator confirms as soon as
            // our answer reaches it.
            friend.stats.rtt = Some(now.saturating_duration_since(confirming.answered_at));
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if let Some(dropped) = friend.sessions.install(session) {
            self.indices.remove(&dropped);
        }
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: Route,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) {
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped response for an unknown index");
            return;
        };
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let (state, sent) = match &mut friend.connecting.attempt {
            Some(Attempt::Initiation {
                local_index,
                state,
                sent,
                ..
            }) if *local_index == receiver => (state.take(), *sent),
            _ => {
                trace!(%from, "dropped response for a finished handshake");
                return;
            }
        };
        let Some(state) = state else {
            trace!(%from, "dropped response for a spent handshake");
            return;
        };
        self.counters.dh += 1;
        // A response that does not decrypt spends the state (snow keeps
        // none after an error) but not the attempt: anyone who saw our
        // index can send one, and the retry timer must still fire.
        let Some((transport, info)) = handshake::finish_initiation(*state, noise) else {
            if let Some(times) = self.logs.unreadable_response.hit(now) {
                warn!(%from, friend = %key, times, "dropped a handshake response that did not decrypt: the friend's psk differs from ours (it must be the same on both sides), or the response was forged");
            }
            return;
        };
        if let Some(friend) = self.friends.get_mut(&key) {
            friend.connecting.attempt = None;
            friend.connecting.unanswered = 0;
            friend.stats.rtt = Some(now.saturating_duration_since(sent));
        }
        self.note_instance(&key, info.instance);
        if info.fresh && self.is_online(&key) {
            self.go_offline(&key, OfflineReason::LostTunnels);
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        friend.path.note(from, now, Evidence::Other);
        friend.connecting.backoff = FIRST_RETRY;
        friend.connecting.retry_at = None;
        let session = Session::new(receiver, sender, transport, now, true);
        if let Some(dropped) = friend.sessions.install(session) {
            self.indices.remove(&dropped);
        }
        friend.liveness.last_recv = now;
        friend.liveness.unanswered_since = None;
        self.prove_source(key, from);
        self.mark_online(now, key, from);
        // Confirms the keys to the responder, which sends nothing until then.
        self.send(now, &key, &[]);
    }

    /// A changed instance means the friend restarted: everything we had with
    /// it is gone on its side, so drop ours too.
    fn note_instance(&mut self, key: &PublicKey, instance: u64) {
        let Some(friend) = self.friends.get_mut(key) else {
            return;
        };
        let previous = friend.keys.remote_instance.replace(instance);
        if previous.is_some_and(|p| p != instance) && friend.liveness.online {
            self.go_offline(key, OfflineReason::Restarted);
        }
    }

    /// Sends HELLO if we only know the friend's ID, else handshake message 1.
    pub(super) fn start_initiation(&mut self, now: Instant, key: PublicKey) {
        self.lan_query(now, key);
        let Some(addr) = self.route_to(now, &key) else {
            self.start_lookup(now, key);
            return;
        };
        let timestamp = handshake::tai64n(self.unix_time(now));
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if let Some(index) = friend.pending_index() {
            friend.connecting.attempt = None;
            self.indices.remove(&index);
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let Some(noise_key) = friend.keys.noise_key else {
            if friend.keys.id.is_none() {
                return;
            }
            let mut nonce = [0u8; 16];
            rand::RngCore::fill_bytes(&mut self.rng, &mut nonce);
            friend.connecting.attempt = Some(Attempt::Hello { nonce, sent: now });
            debug!(friend = %key.short(), %addr, "asking for the friend's record");
            self.send_handshake(key, addr, wire::hello(&nonce, &key.0));
            return;
        };
        let payload = InitPayload {
            identity: self.identity.public_key(),
            certificate: self.identity.certificate,
            timestamp,
            nospam: friend.keys.id.map(|id| id.nospam).unwrap_or_default(),
            instance: self.instance,
            fresh: !friend.liveness.online,
        };
        let seed = self.noise_seed();
        self.counters.dh += 1;
        let Some((state, message)) =
            handshake::initiate(&self.identity, &noise_key, &self.config.psk, &payload, seed)
        else {
            return;
        };
        let local_index = self.new_index(key);
        let mut packet = wire::initiation_body(local_index, &message);
        let mac = handshake::mac1(&handshake::mac1_key(&noise_key), &packet);
        packet.extend_from_slice(&mac);
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let cookie = friend
            .connecting
            .cookie
            .filter(|(_, at)| now < *at + COOKIE_FRESH)
            .map(|(cookie, _)| cookie);
        with_mac2(&mut packet, cookie.as_ref());
        friend.connecting.attempt = Some(Attempt::Initiation {
            local_index,
            state: Some(Box::new(state)),
            sent: now,
            packet: packet.clone(),
        });
        debug!(friend = %key.short(), %addr, "sent handshake");
        self.note_unanswered(now, key);
        self.send_handshake(key, addr, packet);
    }

    /// Counts a message 1 about to go; the third in a row unanswered by a
    /// friend that answered our HELLO in the last minute is a warning:
    /// the friend is there, but will not talk to us.
    fn note_unanswered(&mut self, now: Instant, key: PublicKey) {
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let connecting = &mut friend.connecting;
        connecting.unanswered += 1;
        let hello_recent = connecting
            .hello_answered
            .is_some_and(|at| now.saturating_duration_since(at) < HELLO_FRESH);
        if connecting.unanswered == UNANSWERED_WARNING && hello_recent {
            warn!(friend = %key, tries = UNANSWERED_WARNING, "friend answers our HELLO but none of our handshakes: it does not take us for a friend (not in its friends list, or it has another ID of ours)");
        }
    }

    /// Sends a HELLO or message 1 by `route`, and a copy to each address
    /// only unauthenticated word points at: whichever answers proves it.
    pub(super) fn send_handshake(&mut self, key: PublicKey, route: Route, packet: Vec<u8>) {
        let candidates = self
            .friends
            .get(&key)
            .map(|f| f.path.candidates.clone())
            .unwrap_or_default();
        for candidate in candidates {
            if Route::Direct(candidate) != route {
                self.push(Transmit::to(candidate, packet.clone()));
            }
        }
        self.push(route.transmit(packet));
    }

    fn new_index(&mut self, key: PublicKey) -> u32 {
        loop {
            let index = rand::Rng::gen::<u32>(&mut self.rng);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.indices.entry(index) {
                slot.insert(key);
                return index;
            }
        }
    }
}
