//! Getting a session with a friend: HELLO (to learn its Noise key from its
//! ID), handshake message 1 and 2, and what a changed instance means.

use std::time::Instant;

use tracing::{debug, info, trace, warn};

use super::friend::{Attempt, Friend};
use super::path::Evidence;
use super::{FriendNet, NetEvent, OfflineReason, FIRST_RETRY};
use crate::id::PublicKey;
use crate::proto::handshake::{self, InitPayload};
use crate::proto::record::Record;
use crate::proto::route::Route;
use crate::proto::session::Session;
use crate::proto::wire;

impl FriendNet {
    pub(super) fn on_hello(
        &mut self,
        from: Route,
        nonce: [u8; 16],
        asker: [u8; 32],
        hash: [u8; 32],
    ) {
        if !handshake::hello_hash_valid(&self.identity.id(), &nonce, &asker, &hash) {
            trace!(%from, "dropped hello for another ID");
            return;
        }
        if !self.config.accept_requests && !self.is_friend(&PublicKey(asker)) {
            info!(%from, asker = %PublicKey(asker).short(), "refused hello: not a friend");
            return;
        }
        let record = Record::new(&self.identity, 0, 0, Vec::new()).encode(&self.identity);
        if let Some(reply) = wire::hello_reply(&nonce, &record) {
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
        debug!(friend = %key.short(), %from, "learned noise key; starting handshake");
        self.start_initiation(now, key);
    }

    pub(super) fn on_initiation(&mut self, now: Instant, from: Route, sender: u32, noise: &[u8]) {
        let seed = self.noise_seed();
        let Some(responding) =
            handshake::read_initiation(&self.identity, &self.config.psk, noise, seed)
        else {
            debug!(%from, "dropped handshake that did not decrypt");
            return;
        };
        let payload = responding.payload;
        let key = payload.identity;
        if !self.friends.contains_key(&key) {
            if self.config.accept_requests && payload.nospam == self.identity.nospam {
                info!(friend = %key, %from, "accepted friend request (nospam proved); remembering it");
                self.friends.insert(key, Friend::new(now, FIRST_RETRY));
                self.events.push_back(NetEvent::FriendAdded { friend: key });
            } else {
                warn!(%from, key = %key, "refused handshake: not a friend");
                return;
            }
        }
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if friend
            .keys
            .last_timestamp
            .is_some_and(|t| payload.timestamp <= t)
        {
            warn!(%from, friend = %key.short(), "refused handshake: replayed or stale timestamp");
            return;
        }
        friend.keys.last_timestamp = Some(payload.timestamp);
        friend.keys.noise_key = Some(responding.remote_noise);
        friend.path.note(from, now, Evidence::Other);
        self.note_instance(&key, payload.instance);
        if payload.fresh && self.is_online(&key) {
            self.go_offline(&key, OfflineReason::ReconnectedFresh);
        }
        let info = handshake::ResponderInfo {
            instance: self.instance,
            fresh: !self.is_online(&key),
        };
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
        let mut packet = wire::response_body(local_index, sender, &message);
        let mac = handshake::mac1(&handshake::mac1_key(&responding.remote_noise), &packet);
        packet.extend_from_slice(&mac);
        debug!(friend = %key.short(), %from, "answered handshake");
        self.push(from.transmit(packet));
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
        let state = match friend.connecting.attempt.take() {
            Some(Attempt::Initiation {
                local_index,
                state,
                sent,
            }) if local_index == receiver => {
                friend.stats.rtt = Some(now.saturating_duration_since(sent));
                state
            }
            other => {
                friend.connecting.attempt = other;
                trace!(%from, "dropped response for a finished handshake");
                return;
            }
        };
        let Some((transport, info)) = handshake::finish_initiation(*state, noise) else {
            self.indices.remove(&receiver);
            debug!(%from, friend = %key.short(), "dropped response that did not decrypt");
            return;
        };
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
        self.mark_online(key, from);
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
            let Some(id) = friend.keys.id else { return };
            let mut nonce = [0u8; 16];
            rand::RngCore::fill_bytes(&mut self.rng, &mut nonce);
            let asker = self.identity.public_key().0;
            let hash = handshake::hello_hash(&id, &nonce, &asker);
            friend.connecting.attempt = Some(Attempt::Hello { nonce, sent: now });
            debug!(friend = %key.short(), %addr, "asking for the friend's record");
            self.push(addr.transmit(wire::hello(&nonce, &asker, &hash)));
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
        friend.connecting.attempt = Some(Attempt::Initiation {
            local_index,
            state: Box::new(state),
            sent: now,
        });
        debug!(friend = %key.short(), %addr, "sent handshake");
        self.push(addr.transmit(packet));
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
