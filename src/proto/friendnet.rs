//! The friend network as a pure state machine: datagrams and time in,
//! datagrams and events out. No sockets, no clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tracing::{debug, info, trace, warn};

use super::friend::{Attempt, Friend, Slot};
use super::handshake::{self, InitPayload};
use super::record::Record;
use super::session::Session;
use super::wire::{self, Packet};
use crate::id::{PeerRef, PublicKey};
use crate::identity::Identity;

/// A session older than this is replaced by a fresh handshake.
const REKEY_AFTER: Duration = Duration::from_secs(120);
/// And never used past this.
const REJECT_AFTER: Duration = Duration::from_secs(180);
/// The responder waits this much longer than the initiator before rekeying,
/// so the two do not cross.
const RESPONDER_REKEY_GRACE: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct FriendNetConfig {
    /// Send an empty packet when nothing else was sent for this long.
    pub keepalive: Duration,
    /// A friend not heard from for this long is offline.
    pub friend_timeout: Duration,
    pub psk: [u8; 32],
    /// Accept any initiator that proves it knows our nospam, and remember it.
    pub accept_requests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Online {
        friend: PublicKey,
        addr: SocketAddr,
    },
    Offline {
        friend: PublicKey,
        reason: String,
    },
    /// A new friend was accepted by nospam; the driver persists it.
    FriendAdded {
        friend: PublicKey,
    },
    Received {
        friend: PublicKey,
        payload: Vec<u8>,
    },
}

pub struct FriendNet {
    identity: Arc<Identity>,
    config: FriendNetConfig,
    mac1_key: [u8; 32],
    instance: u64,
    start: Instant,
    unix_at_start: Duration,
    friends: HashMap<PublicKey, Friend>,
    /// Local session (or pending initiation) index to its friend.
    indices: HashMap<u32, PublicKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: StdRng,
    scratch: Vec<u8>,
}

impl FriendNet {
    /// `unix_now` is the wall clock at `now`: handshake timestamps are
    /// derived from it, so the core itself never reads a clock.
    pub fn new(
        identity: Arc<Identity>,
        config: FriendNetConfig,
        now: Instant,
        unix_now: Duration,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        FriendNet {
            mac1_key: handshake::mac1_key(&identity.noise_public),
            identity,
            config,
            instance: rng.next_u64(),
            start: now,
            unix_at_start: unix_now,
            friends: HashMap::new(),
            indices: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            scratch: Vec::with_capacity(2048),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Adds a trusted friend. With `dial`, the core connects to it itself
    /// whenever it knows an address.
    pub fn add_friend(
        &mut self,
        now: Instant,
        peer: PeerRef,
        hint: Option<SocketAddr>,
        dial: bool,
    ) {
        let friend = self
            .friends
            .entry(peer.key())
            .or_insert_with(|| Friend::new(now, FIRST_RETRY));
        if let Some(id) = peer.id() {
            friend.id = Some(id);
        }
        if friend.addr.is_none() {
            friend.addr = hint;
        }
        friend.dial |= dial;
        if friend.dial && !friend.online && friend.attempt.is_none() {
            friend.retry_at = Some(now);
        }
    }

    pub fn is_online(&self, friend: &PublicKey) -> bool {
        self.friends.get(friend).is_some_and(|f| f.online)
    }

    pub fn has_address(&self, key: &PublicKey) -> bool {
        self.friends.get(key).is_some_and(|f| f.addr.is_some())
    }

    pub fn is_friend(&self, key: &PublicKey) -> bool {
        self.friends.contains_key(key)
    }

    /// Start connecting now, skipping any backoff (a user is waiting).
    pub fn connect_now(&mut self, now: Instant, friend: &PublicKey) {
        if let Some(f) = self.friends.get_mut(friend) {
            if !f.online && f.attempt.is_none() {
                f.backoff = FIRST_RETRY;
                f.retry_at = Some(now);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match wire::parse(bytes) {
            None => trace!(%from, len = bytes.len(), "dropped malformed packet"),
            Some(Packet::Hello { nonce, asker, hash }) => self.on_hello(from, nonce, asker, hash),
            Some(Packet::HelloReply { nonce, record }) => {
                self.on_hello_reply(now, from, nonce, record)
            }
            Some(Packet::Initiation {
                sender,
                noise,
                covered,
                mac1,
            }) => {
                if handshake::mac1_valid(&self.mac1_key, covered, &mac1) {
                    self.on_initiation(now, from, sender, noise);
                } else {
                    trace!(%from, "dropped handshake with bad mac1");
                }
            }
            Some(Packet::Response {
                sender,
                receiver,
                noise,
                covered,
                mac1,
            }) => {
                if handshake::mac1_valid(&self.mac1_key, covered, &mac1) {
                    self.on_response(now, from, sender, receiver, noise);
                } else {
                    trace!(%from, "dropped response with bad mac1");
                }
            }
            Some(Packet::Data {
                receiver,
                counter,
                ciphertext,
            }) => self.on_data(now, from, receiver, counter, ciphertext),
        }
    }

    fn on_hello(&mut self, from: SocketAddr, nonce: [u8; 16], asker: [u8; 32], hash: [u8; 32]) {
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
            self.transmits.push_back(Transmit {
                dst: from,
                payload: reply,
            });
        }
    }

    fn on_hello_reply(&mut self, now: Instant, from: SocketAddr, nonce: [u8; 16], record: &[u8]) {
        let Some(key) = self.friends.iter().find_map(|(key, f)| match f.attempt {
            Some(Attempt::Hello { nonce: n, .. }) if n == nonce => Some(*key),
            _ => None,
        }) else {
            trace!(%from, "dropped unexpected hello reply");
            return;
        };
        let Some(record) = Record::decode(record).filter(|r| r.identity == key) else {
            debug!(%from, friend = %key.short(), "dropped hello reply with a bad record");
            return;
        };
        let friend = self.friends.get_mut(&key).expect("found above");
        friend.noise_key = Some(record.noise_key);
        friend.attempt = None;
        debug!(friend = %key.short(), %from, "learned noise key; starting handshake");
        self.start_initiation(now, key);
    }

    fn on_initiation(&mut self, now: Instant, from: SocketAddr, sender: u32, noise: &[u8]) {
        let Some(responding) = handshake::read_initiation(&self.identity, &self.config.psk, noise)
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
                self.events.push_back(Event::FriendAdded { friend: key });
            } else {
                warn!(%from, key = %key, "refused handshake: not a friend");
                return;
            }
        }
        let friend = self.friends.get_mut(&key).expect("present");
        if friend
            .last_timestamp
            .is_some_and(|t| payload.timestamp <= t)
        {
            warn!(%from, friend = %key.short(), "refused handshake: replayed or stale timestamp");
            return;
        }
        friend.last_timestamp = Some(payload.timestamp);
        friend.noise_key = Some(responding.remote_noise);
        friend.addr = Some(from);
        self.note_instance(&key, payload.instance);
        if payload.fresh && self.is_online(&key) {
            self.go_offline(&key, "friend reconnected without its tunnels".into());
        }
        let info = handshake::ResponderInfo {
            instance: self.instance,
            fresh: !self.is_online(&key),
        };
        let Some((transport, message)) = handshake::write_response(responding.state, info) else {
            return;
        };
        let local_index = self.new_index(key);
        let friend = self.friends.get_mut(&key).expect("present");
        if let Some(old) =
            friend
                .next
                .replace(Session::new(local_index, sender, transport, now, false))
        {
            self.indices.remove(&old.local_index);
        }
        let mut packet = wire::response_body(local_index, sender, &message);
        let mac = handshake::mac1(&handshake::mac1_key(&responding.remote_noise), &packet);
        packet.extend_from_slice(&mac);
        debug!(friend = %key.short(), %from, "answered handshake");
        self.transmits.push_back(Transmit {
            dst: from,
            payload: packet,
        });
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) {
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped response for an unknown index");
            return;
        };
        let friend = self.friends.get_mut(&key).expect("indexed friend exists");
        let state = match friend.attempt.take() {
            Some(Attempt::Initiation {
                local_index, state, ..
            }) if local_index == receiver => state,
            other => {
                friend.attempt = other;
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
            self.go_offline(&key, "friend lost its tunnels".into());
        }
        let friend = self.friends.get_mut(&key).expect("present");
        friend.addr = Some(from);
        friend.backoff = FIRST_RETRY;
        friend.retry_at = None;
        if let Some(dropped) = friend.install(Session::new(receiver, sender, transport, now, true))
        {
            self.indices.remove(&dropped);
        }
        friend.last_recv = now;
        friend.unanswered_since = None;
        self.mark_online(key, from);
        // Confirms the keys to the responder, which sends nothing until then.
        self.send(now, &key, &[]);
    }

    fn on_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
    ) {
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped data for an unknown index");
            return;
        };
        let friend = self.friends.get_mut(&key).expect("indexed friend exists");
        let Some(slot) = friend.slot_of(receiver) else {
            return;
        };
        let mut plain = std::mem::take(&mut self.scratch);
        let session = friend.session_mut(slot).expect("slot found");
        if !session.open(counter, ciphertext, &mut plain) {
            trace!(%from, friend = %key.short(), "dropped data that did not authenticate or was replayed");
            self.scratch = plain;
            return;
        }
        friend.last_recv = now;
        friend.unanswered_since = None;
        friend.bytes_in += ciphertext.len() as u64;
        if friend.addr != Some(from) {
            debug!(friend = %key.short(), %from, "friend moved to a new address");
            friend.addr = Some(from);
        }
        if slot == Slot::Next {
            let session = friend.next.take().expect("slot found");
            if let Some(dropped) = friend.install(session) {
                self.indices.remove(&dropped);
            }
        }
        self.mark_online(key, from);
        if plain.is_empty() {
            debug!(friend = %key.short(), "keepalive received");
            self.scratch = plain;
        } else {
            self.events.push_back(Event::Received {
                friend: key,
                payload: plain,
            });
        }
    }

    /// A changed instance means the friend restarted: everything we had with
    /// it is gone on its side, so drop ours too.
    fn note_instance(&mut self, key: &PublicKey, instance: u64) {
        let friend = self.friends.get_mut(key).expect("present");
        let previous = friend.remote_instance.replace(instance);
        if previous.is_some_and(|p| p != instance) && friend.online {
            self.go_offline(key, "friend restarted".into());
        }
    }

    fn mark_online(&mut self, key: PublicKey, addr: SocketAddr) {
        let friend = self.friends.get_mut(&key).expect("present");
        if !friend.online && friend.current.is_some() {
            friend.online = true;
            info!(friend = %key, %addr, "friend online");
            self.events.push_back(Event::Online { friend: key, addr });
        }
    }

    fn go_offline(&mut self, key: &PublicKey, reason: String) {
        let friend = self.friends.get_mut(key).expect("present");
        for index in friend.indices() {
            self.indices.remove(&index);
        }
        friend.current = None;
        friend.previous = None;
        friend.next = None;
        friend.attempt = None;
        if friend.dial {
            friend.retry_at = Some(friend.last_recv.max(friend.last_sent));
        }
        if friend.online {
            friend.online = false;
            info!(friend = %key, %reason, "friend offline");
            self.events.push_back(Event::Offline {
                friend: *key,
                reason,
            });
        }
    }

    fn new_index(&mut self, key: PublicKey) -> u32 {
        loop {
            let index = self.rng.gen::<u32>();
            if let std::collections::hash_map::Entry::Vacant(slot) = self.indices.entry(index) {
                slot.insert(key);
                return index;
            }
        }
    }

    fn unix_time(&self, now: Instant) -> Duration {
        self.unix_at_start + now.saturating_duration_since(self.start)
    }

    /// Sends HELLO if we only know the friend's ID, else handshake message 1.
    fn start_initiation(&mut self, now: Instant, key: PublicKey) {
        let friend = self.friends.get_mut(&key).expect("present");
        let Some(addr) = friend.addr else { return };
        if let Some(Attempt::Initiation { local_index, .. }) = friend.attempt.take() {
            self.indices.remove(&local_index);
        }
        let friend = self.friends.get_mut(&key).expect("present");
        let Some(noise_key) = friend.noise_key else {
            let Some(id) = friend.id else { return };
            let mut nonce = [0u8; 16];
            self.rng.fill_bytes(&mut nonce);
            let asker = self.identity.public_key().0;
            let hash = handshake::hello_hash(&id, &nonce, &asker);
            friend.attempt = Some(Attempt::Hello { nonce, sent: now });
            debug!(friend = %key.short(), %addr, "asking for the friend's record");
            self.transmits.push_back(Transmit {
                dst: addr,
                payload: wire::hello(&nonce, &asker, &hash),
            });
            return;
        };
        let nospam = friend.id.map(|id| id.nospam).unwrap_or_default();
        let fresh = !friend.online;
        let payload = InitPayload {
            identity: self.identity.public_key(),
            certificate: self.identity.certificate,
            timestamp: handshake::tai64n(self.unix_time(now)),
            nospam,
            instance: self.instance,
            fresh,
        };
        let Some((state, message)) =
            handshake::initiate(&self.identity, &noise_key, &self.config.psk, &payload)
        else {
            return;
        };
        let local_index = self.new_index(key);
        let mut packet = wire::initiation_body(local_index, &message);
        let mac = handshake::mac1(&handshake::mac1_key(&noise_key), &packet);
        packet.extend_from_slice(&mac);
        let friend = self.friends.get_mut(&key).expect("present");
        friend.attempt = Some(Attempt::Initiation {
            local_index,
            state: Box::new(state),
            sent: now,
        });
        debug!(friend = %key.short(), %addr, "sent handshake");
        self.transmits.push_back(Transmit {
            dst: addr,
            payload: packet,
        });
    }

    /// Encrypts `payload` to the friend on its current session; false if the
    /// friend has none (the caller's reliability layer will retry).
    pub fn send(&mut self, now: Instant, key: &PublicKey, payload: &[u8]) -> bool {
        let Some(friend) = self.friends.get_mut(key) else {
            return false;
        };
        let (Some(session), Some(addr)) = (friend.current.as_mut(), friend.addr) else {
            return false;
        };
        let mut packet = Vec::with_capacity(wire::DATA_MIN_LEN + payload.len());
        if !session.seal(payload, &mut packet) {
            return false;
        }
        let rekey = session.needs_rekey();
        friend.last_sent = now;
        if !payload.is_empty() && friend.unanswered_since.is_none() {
            friend.unanswered_since = Some(now);
        }
        friend.bytes_out += packet.len() as u64;
        self.transmits.push_back(Transmit {
            dst: addr,
            payload: packet,
        });
        if rekey && friend.attempt.is_none() {
            self.start_initiation(now, *key);
        }
        true
    }

    /// When this friend next needs attention, and for what.
    fn friend_deadline(&self, friend: &Friend) -> Option<Instant> {
        let mut deadlines: Vec<Instant> = Vec::with_capacity(5);
        if let Some(attempt) = &friend.attempt {
            deadlines.push(attempt.sent() + friend.backoff);
        } else if let Some(at) = friend.retry_at {
            deadlines.push(at);
        }
        if friend.online {
            if friend.current.is_some() {
                deadlines.push(friend.last_sent + self.config.keepalive);
            }
            deadlines.push(friend.last_recv + self.config.friend_timeout);
            if friend.attempt.is_none() && friend.can_initiate() {
                if let Some(since) = friend.unanswered_since {
                    deadlines.push(since + self.suspect_after());
                }
                if let Some(current) = &friend.current {
                    deadlines.push(current.created + rekey_age(current));
                }
            }
        }
        if let Some(current) = &friend.current {
            deadlines.push(current.created + REJECT_AFTER);
        }
        deadlines.into_iter().min()
    }

    /// Silence after sending data, after which we re-handshake rather than
    /// wait for the timeout: a live friend acknowledges data at once. Idle
    /// friends are never suspected, so differing keepalive settings on the
    /// two sides cannot cause handshake storms.
    fn suspect_after(&self) -> Duration {
        self.config.keepalive + self.config.keepalive / 2
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.friends
            .values()
            .filter_map(|f| self.friend_deadline(f))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PublicKey> = self
            .friends
            .iter()
            .filter(|(_, f)| self.friend_deadline(f).is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.friend_timers(now, key);
        }
    }

    fn friend_timers(&mut self, now: Instant, key: PublicKey) {
        let timeout = self.config.friend_timeout;
        let keepalive = self.config.keepalive;
        let suspect = self.suspect_after();
        let friend = self.friends.get_mut(&key).expect("present");
        if friend
            .current
            .as_ref()
            .is_some_and(|s| now >= s.created + REJECT_AFTER)
        {
            self.go_offline(&key, "session expired without a new handshake".into());
        }
        let friend = self.friends.get_mut(&key).expect("present");
        if friend.online && now >= friend.last_recv + timeout {
            let silent = now.duration_since(friend.last_recv);
            self.go_offline(&key, format!("no packet for {:.1}s", silent.as_secs_f64()));
        }
        let friend = self.friends.get_mut(&key).expect("present");
        let mut initiate = false;
        if let Some(attempt) = &friend.attempt {
            if now >= attempt.sent() + friend.backoff {
                friend.backoff = (friend.backoff * 2)
                    .min(MAX_RETRY)
                    .min(keepalive * 2)
                    .max(FIRST_RETRY);
                initiate = true;
            }
        } else if friend.retry_at.is_some_and(|at| now >= at) {
            friend.retry_at = None;
            initiate = true;
        } else if friend.online && friend.can_initiate() {
            let stale = friend
                .current
                .as_ref()
                .is_some_and(|s| now >= s.created + rekey_age(s));
            let silent = friend
                .unanswered_since
                .is_some_and(|since| now >= since + suspect);
            initiate = stale || silent;
        }
        if initiate && (friend.dial || friend.online) {
            self.start_initiation(now, key);
        }
        let friend = self.friends.get_mut(&key).expect("present");
        if friend.online && now >= friend.last_sent + keepalive {
            self.send(now, &key, &[]);
        }
    }

    /// Counts for `status`: (online, address, bytes in, bytes out).
    pub fn friend_stats(&self) -> Vec<(PublicKey, bool, Option<SocketAddr>, u64, u64)> {
        self.friends
            .iter()
            .map(|(k, f)| (*k, f.online, f.addr, f.bytes_in, f.bytes_out))
            .collect()
    }

    pub fn online_friends(&self) -> HashSet<PublicKey> {
        self.friends
            .iter()
            .filter(|(_, f)| f.online)
            .map(|(k, _)| *k)
            .collect()
    }
}

fn rekey_age(session: &Session) -> Duration {
    if session.initiator {
        REKEY_AFTER
    } else {
        REKEY_AFTER + RESPONDER_REKEY_GRACE
    }
}
