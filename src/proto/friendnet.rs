//! The friend network as a pure state machine: datagrams and time in,
//! datagrams and events out. No sockets, no clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tracing::{debug, info, trace, warn};

mod lan_discovery;

use super::discovery::Discovery;
use super::friend::{Attempt, Friend, Slot};
use super::handshake::{self, InitPayload};
use super::identity::Identity;
use super::lan;
use super::record::Record;
use super::rendezvous::{self, Rendezvous};
use super::route::Route;
use super::session::Session;
use super::snapshot::{BootstrapSnapshot, FriendSnapshot};
use super::transmit::Transmit;
use super::wire::{self, Packet};
use crate::id::{PeerRef, PublicKey, ToxId};
use crate::token_bucket::TokenBucket;

/// A session older than this is replaced by a fresh handshake.
const REKEY_AFTER: Duration = Duration::from_secs(120);
/// And never used past this.
const REJECT_AFTER: Duration = Duration::from_secs(180);
/// The responder waits this much longer than the initiator before rekeying,
/// so the two do not cross.
const RESPONDER_REKEY_GRACE: Duration = Duration::from_secs(10);
/// An unanswered handshake is sent again after this, doubling each time: a
/// lost packet on a lossy path costs a quarter second of the first byte,
/// and on a path slower than that the doubling soon waits long enough.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Direct probes are sent this often at first, then once a keepalive.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const QUICK_PROBES: u32 = 20;
/// Until the friend says its NAT has a mapping towards us, probes leave our
/// NAT (opening its mapping towards the friend) but die before the friend's:
/// a probe that reached a NAT before its own side had sent would make that
/// NAT move its mapping to another port, and cone-to-cone punching would
/// never meet (measured; doc/nat.md).
const LOW_TTL: u32 = 2;
/// First retry of an unanswered announcement; doubles up to 2 s.
const ANNOUNCE_RETRY: Duration = Duration::from_millis(250);
/// Records we announce stay valid this long at a bootstrap node.
const RECORD_LIFETIME: Duration = Duration::from_secs(600);

/// Frames that the friend network handles itself (KCP output is frame 1).
const FRAME_PROBE: u8 = 2;
const FRAME_PROBE_ACK: u8 = 3;
/// Sent through the relay: "my NAT has a mapping towards you".
const FRAME_PUNCH_READY: u8 = 4;

#[derive(Debug, Clone)]
pub struct FriendNetConfig {
    /// Send an empty packet when nothing else was sent for this long.
    pub keepalive: Duration,
    /// A friend not heard from for this long is offline.
    pub friend_timeout: Duration,
    pub psk: [u8; 32],
    /// Accept any initiator that proves it knows our nospam, and remember it.
    pub accept_requests: bool,
    /// Broadcast LAN queries for offline friends and answer those for us.
    pub lan_discovery: bool,
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
    discovery: Discovery,
    lan_answers: TokenBucket,
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
            discovery: Discovery::default(),
            lan_answers: TokenBucket::new(
                lan_discovery::ANSWERS_PER_SECOND,
                lan_discovery::ANSWERS_PER_SECOND,
                now,
            ),
        }
    }

    /// A bootstrap node to announce to, look friends up at and relay through.
    pub fn add_bootstrap(&mut self, now: Instant, addr: SocketAddr, id: ToxId) {
        self.discovery.add(addr, id, now);
    }

    /// Bootstrap nodes that do not answer over UDP: the driver tries them
    /// over TCP, and says so with `bootstrap_link_up`.
    pub fn bootstraps_wanting_tcp(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.discovery.wanting_tcp()
    }

    /// A TCP link to the bootstrap node at `addr` is up: announce and look
    /// up over it at once rather than at the next retry.
    pub fn bootstrap_link_up(&mut self, now: Instant, addr: SocketAddr) {
        let Some(node) = self.discovery.node_mut(addr) else {
            return;
        };
        node.unanswered = 0;
        node.pending = None;
        node.next_announce = now;
        self.announce(now);
        let looking: Vec<PublicKey> = self
            .friends
            .iter()
            .filter(|(_, f)| matches!(f.attempt, Some(Attempt::Lookup { .. })))
            .map(|(k, _)| *k)
            .collect();
        for key in looking {
            self.start_lookup(now, key);
        }
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
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
        if hint.is_some() {
            friend.hint = hint;
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

    /// We have an address for the friend, or a bootstrap node to ask.
    /// Whether there is any way to find the friend: an address, a relay,
    /// bootstrap nodes to look it up at, or the LAN to ask.
    pub fn has_address(&self, key: &PublicKey) -> bool {
        self.friends.get(key).is_some_and(|f| {
            f.addr.is_some()
                || f.relay.is_some()
                || !self.discovery.nodes.is_empty()
                || self.config.lan_discovery
        })
    }

    /// Whether traffic to the friend goes through a bootstrap node's relay.
    pub fn is_relayed(&self, now: Instant, key: &PublicKey) -> bool {
        matches!(self.route_to(now, key), Some(Route::Relay { .. }))
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
        let kind = bytes.first().copied().unwrap_or(0);
        if (rendezvous::ANNOUNCE..=rendezvous::RELAYED).contains(&kind) {
            self.on_rendezvous(now, from, bytes);
        } else if kind == lan::HERE {
            self.on_lan_here(now, from, bytes);
        } else {
            self.on_friend_packet(now, Route::Direct(from), bytes);
        }
    }

    fn on_friend_packet(&mut self, now: Instant, from: Route, bytes: &[u8]) {
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

    fn on_hello(&mut self, from: Route, nonce: [u8; 16], asker: [u8; 32], hash: [u8; 32]) {
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
            self.transmits.push_back(from.transmit(reply));
        }
    }

    fn on_hello_reply(&mut self, now: Instant, from: Route, nonce: [u8; 16], record: &[u8]) {
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

    fn on_initiation(&mut self, now: Instant, from: Route, sender: u32, noise: &[u8]) {
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
        note_route(friend, from, now, Evidence::Other);
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
        self.transmits.push_back(from.transmit(packet));
    }

    fn on_response(&mut self, now: Instant, from: Route, sender: u32, receiver: u32, noise: &[u8]) {
        let Some(&key) = self.indices.get(&receiver) else {
            trace!(%from, "dropped response for an unknown index");
            return;
        };
        let friend = self.friends.get_mut(&key).expect("indexed friend exists");
        let state = match friend.attempt.take() {
            Some(Attempt::Initiation {
                local_index,
                state,
                sent,
            }) if local_index == receiver => {
                friend.rtt = Some(now.saturating_duration_since(sent));
                state
            }
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
        note_route(friend, from, now, Evidence::Other);
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
        from: Route,
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
        let frame = plain.first().copied();
        let probe = matches!(
            frame,
            Some(FRAME_PROBE | FRAME_PROBE_ACK | FRAME_PUNCH_READY)
        );
        let evidence = match frame {
            Some(FRAME_PROBE) => Evidence::Probe,
            Some(FRAME_PROBE_ACK) => Evidence::ProbeAck,
            _ => Evidence::Other,
        };
        if frame == Some(FRAME_PUNCH_READY) {
            friend.peer_ready = true;
        }
        if evidence == Evidence::ProbeAck {
            if let Some(sent) = friend.last_probe_sent {
                friend.rtt = Some(now.saturating_duration_since(sent));
            }
        }
        note_route(friend, from, now, evidence);
        if slot == Slot::Next {
            let session = friend.next.take().expect("slot found");
            if let Some(dropped) = friend.install(session) {
                self.indices.remove(&dropped);
            }
        }
        self.mark_online(key, from);
        if frame == Some(FRAME_PROBE) {
            if let Route::Direct(addr) = from {
                // Answer on the path the probe came by: that proves it both ways.
                self.send_on(now, &key, Route::Direct(addr), &[FRAME_PROBE_ACK], None);
            }
        }
        if plain.is_empty() || probe {
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

    fn mark_online(&mut self, key: PublicKey, route: Route) {
        let addr = route.socket_addr();
        let friend = self.friends.get_mut(&key).expect("present");
        if !friend.online && friend.current.is_some() {
            friend.online = true;
            info!(friend = %key, path = %route, "friend online");
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
        friend.direct_confirmed = None;
        friend.next_probe = None;
        if friend.dial {
            friend.retry_at = Some(friend.last_recv.max(friend.last_sent));
        }
        // What a bootstrap node told us may be stale now; ask again.
        if !self.discovery.nodes.is_empty() {
            friend.addr = friend.hint;
            friend.relay = None;
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
        self.lan_query(now, key);
        let Some(addr) = self.route_to(now, &key) else {
            self.start_lookup(now, key);
            return;
        };
        let friend = self.friends.get_mut(&key).expect("present");
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
            self.transmits
                .push_back(addr.transmit(wire::hello(&nonce, &asker, &hash)));
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
        self.transmits.push_back(addr.transmit(packet));
    }

    /// Asks the nearest bootstrap node (a further one on each retry) where
    /// the friend is.
    /// Asks every bootstrap node that answers at once: redundancy, and the
    /// first answer marks the nearest one.
    fn start_lookup(&mut self, now: Instant, key: PublicKey) {
        let nearest = self.discovery.nearest();
        if nearest.is_empty() {
            return;
        }
        let friend = self.friends.get_mut(&key).expect("present");
        friend.attempt = Some(Attempt::Lookup { sent: now });
        self.discovery.lookups.retain(|_, (k, _)| *k != key);
        for via in nearest {
            let mut nonce = [0u8; 8];
            self.rng.fill_bytes(&mut nonce);
            self.discovery.lookups.insert(nonce, (key, via));
            debug!(friend = %key.short(), bootstrap = %via, "looking up friend");
            self.transmits
                .push_back(Transmit::to(via, rendezvous::lookup(&nonce, &key)));
        }
    }

    /// Direct while the direct path is proven; else through a bootstrap
    /// node's relay; else the only address we have.
    fn route_to(&self, now: Instant, key: &PublicKey) -> Option<Route> {
        let friend = self.friends.get(key)?;
        let direct_fresh = friend
            .direct_confirmed
            .is_some_and(|at| now < at + self.direct_lifetime());
        // A relay whose bootstrap node went down is replaced by the nearest
        // one still up: the friend announces to it too.
        let relay = match friend.relay {
            Some(via) if self.discovery.is_up_at(via) => Some(via),
            Some(_) => self.discovery.nearest().first().copied(),
            None => None,
        };
        match (friend.addr, relay) {
            (Some(addr), _) if direct_fresh => Some(Route::Direct(addr)),
            (_, Some(via)) => Some(Route::Relay { via, peer: *key }),
            (Some(addr), None) => Some(Route::Direct(addr)),
            (None, None) => None,
        }
    }

    /// Both sides send at least a keepalive this often on a working path.
    fn direct_lifetime(&self) -> Duration {
        self.config.keepalive * 2 + Duration::from_secs(1)
    }

    fn on_rendezvous(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
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
                let Some(node) = self.discovery.node_mut(from) else {
                    return;
                };
                if let Some((sent_nonce, sent)) = node.pending {
                    if sent_nonce == nonce {
                        node.rtt = Some(now.saturating_duration_since(sent));
                        node.pending = None;
                    }
                }
                node.last_ack = Some(now);
                node.unanswered = 0;
                node.next_announce = now + self.config.keepalive;
                if node.public_addr != Some(observed) {
                    info!(bootstrap = %from, public = %observed, "bootstrap node sees us at");
                    node.public_addr = Some(observed);
                }
            }
            Some(Rendezvous::LookupReply { nonce, found }) => {
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
                // The first answer wins: it came from the nearest node, whose
                // relay we then use. Later answers find no lookup left.
                self.discovery.lookups.retain(|_, (k, _)| *k != key);
                friend.noise_key = Some(record.noise_key);
                friend.relay = Some(via);
                if friend.direct_confirmed.is_none() {
                    friend.addr = Some(observed);
                }
                friend.attempt = None;
                info!(friend = %key.short(), public = %observed, bootstrap = %via, "found friend");
                // Sent again once the session is up: a friend that knows us
                // only by our handshake drops this one.
                let me = self.identity.public_key();
                self.transmits
                    .push_back(Transmit::to(via, rendezvous::connect(&key, &me)));
                self.start_initiation(now, key);
            }
            Some(Rendezvous::ConnectNotify { sender, observed }) => {
                let Some(friend) = self.friends.get_mut(&sender) else {
                    return;
                };
                debug!(friend = %sender.short(), public = %observed, "friend wants a direct path");
                friend.relay = Some(from);
                // Only a new address restarts probing: the friend repeats its
                // request while it probes, and each repeat must not reset ours.
                if friend.direct_confirmed.is_none() && friend.addr != Some(observed) {
                    friend.addr = Some(observed);
                    friend.probes = 0;
                    friend.peer_ready = false;
                    friend.next_probe = Some(now);
                }
            }
            _ => {}
        }
    }

    fn announce(&mut self, now: Instant) {
        let unix = self.unix_time(now);
        let keepalive = self.config.keepalive;
        let record = Record::new(
            &self.identity,
            unix.as_millis() as u64,
            (unix + RECORD_LIFETIME).as_secs(),
            Vec::new(),
        )
        .encode(&self.identity);
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
            self.rng.fill_bytes(&mut nonce);
            node.pending = Some((nonce, now));
            // Retried quickly until answered: an unanswered node soon counts
            // as down (failover) or as unreachable by UDP (TCP fallback).
            let retry = ANNOUNCE_RETRY * (1 << node.unanswered.min(3));
            node.next_announce = now + retry.min(keepalive);
            self.transmits.push_back(Transmit::to(
                node.addr,
                rendezvous::announce(&nonce, &record),
            ));
        }
    }

    /// Sends a direct probe to the friend's address while we relay, so the
    /// path moves to direct once both NATs have let packets through.
    fn probe(&mut self, now: Instant, key: PublicKey) {
        let keepalive = self.config.keepalive;
        let friend = self.friends.get_mut(&key).expect("present");
        friend.probes += 1;
        let Some(addr) = friend.addr else {
            // Nothing to probe until the friend's connect request says where.
            friend.next_probe = Some(now + keepalive);
            return;
        };
        friend.last_probe_sent = Some(now);
        let wait = if friend.probes < QUICK_PROBES {
            PROBE_EVERY
        } else {
            keepalive
        };
        friend.next_probe = Some(now + wait);
        // The first probe of a round always opens our own mapping; after a
        // round of silence from the friend we stop waiting for its word.
        let low = friend.probes == 1 || (!friend.peer_ready && friend.probes < QUICK_PROBES);
        let relay = friend.relay;
        let ttl = low.then_some(LOW_TTL);
        if self.send_on(now, &key, Route::Direct(addr), &[FRAME_PROBE], ttl) && low {
            if let Some(via) = relay {
                self.send_on(
                    now,
                    &key,
                    Route::Relay { via, peer: key },
                    &[FRAME_PUNCH_READY],
                    None,
                );
            }
        }
    }

    /// Encrypts `payload` to the friend on its current session; false if the
    /// friend has none (the caller's reliability layer will retry).
    pub fn send(&mut self, now: Instant, key: &PublicKey, payload: &[u8]) -> bool {
        let Some(route) = self.route_to(now, key) else {
            return false;
        };
        self.send_on(now, key, route, payload, None)
    }

    fn send_on(
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
        let Some(session) = friend.current.as_mut() else {
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
        let mut transmit = route.transmit(packet);
        transmit.ttl = ttl;
        self.transmits.push_back(transmit);
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
        if friend.online && friend.relay.is_some() {
            deadlines.push(match friend.next_probe {
                Some(at) => at,
                // Not probing: look again when the direct path would go stale
                // (or at once, if it was never proven).
                None => friend
                    .direct_confirmed
                    .map_or(friend.last_recv, |at| at + self.direct_lifetime()),
            });
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
            .chain(self.discovery.next_deadline())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.discovery.next_deadline().is_some_and(|t| t <= now) {
            self.announce(now);
        }
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
        let lifetime = self.direct_lifetime();
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
            if silent && friend.relay.is_some() {
                // The direct path may be what failed: fall back to the relay.
                friend.direct_confirmed = None;
            }
        }
        if initiate && (friend.dial || friend.online) {
            self.start_initiation(now, key);
        }
        let friend = self.friends.get_mut(&key).expect("present");
        if let (true, Some(via)) = (friend.online, friend.relay) {
            let direct_fresh = friend
                .direct_confirmed
                .is_some_and(|at| now < at + lifetime);
            if direct_fresh {
                friend.next_probe = None;
            } else if friend.next_probe.is_none() {
                friend.probes = 0;
                friend.peer_ready = false;
                friend.next_probe = Some(now);
            }
            if friend.next_probe.is_some_and(|at| at <= now) {
                let asked_lately = friend
                    .last_connect_request
                    .is_some_and(|at| now < at + PROBE_EVERY * QUICK_PROBES);
                if !asked_lately {
                    // Ask the friend to probe us too: it learns our public
                    // address from the bootstrap node, as we learnt its.
                    friend.last_connect_request = Some(now);
                    let me = self.identity.public_key();
                    let connect = rendezvous::connect(&key, &me);
                    self.transmits.push_back(Transmit::to(via, connect));
                }
                self.probe(now, key);
            }
        }
        let friend = self.friends.get_mut(&key).expect("present");
        if friend.online && now >= friend.last_sent + keepalive {
            self.send(now, &key, &[]);
        }
    }

    /// Friends for a snapshot; the tunnel counts are the caller's to fill in.
    pub fn friend_snapshots(&self, now: Instant) -> Vec<FriendSnapshot> {
        let mut out: Vec<FriendSnapshot> = self
            .friends
            .iter()
            .map(|(key, f)| FriendSnapshot {
                key: *key,
                online: f.online,
                path: f
                    .online
                    .then(|| self.route_to(now, key))
                    .flatten()
                    .map(|route| route.kind()),
                rtt: f.rtt,
                bytes_in: f.bytes_in,
                bytes_out: f.bytes_out,
                tunnels: 0,
            })
            .collect();
        out.sort_by_key(|f| f.key);
        out
    }

    pub fn bootstrap_snapshots(&self) -> Vec<BootstrapSnapshot> {
        self.discovery
            .nodes
            .iter()
            .map(|n| BootstrapSnapshot {
                addr: n.addr,
                id: n.id,
                up: Discovery::is_up(n),
                rtt: n.rtt,
                public_addr: n.public_addr,
            })
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

/// What an authenticated packet says about the direct path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// The friend is probing: the path works towards us, maybe not back.
    Probe,
    /// Our probe arrived and its answer came back: it works both ways.
    ProbeAck,
    Other,
}

/// Learns from the path an authenticated packet took. Only authenticated
/// packets get here, so nobody can steer our traffic by spoofing.
fn note_route(friend: &mut Friend, route: Route, now: Instant, evidence: Evidence) {
    match route {
        Route::Direct(addr) => {
            friend.addr = Some(addr);
            let confirms = match evidence {
                Evidence::ProbeAck => true,
                Evidence::Probe => false,
                // Without a relay there is no other path; with one, the
                // friend sends other packets direct only once it has proof.
                Evidence::Other => friend.relay.is_none() || friend.direct_confirmed.is_some(),
            };
            if confirms {
                if friend.direct_confirmed.is_none() && friend.relay.is_some() {
                    info!(%addr, "direct path to friend confirmed");
                }
                friend.direct_confirmed = Some(now);
            }
        }
        Route::Relay { via, .. } => friend.relay = Some(via),
    }
}

fn rekey_age(session: &Session) -> Duration {
    if session.initiator {
        REKEY_AFTER
    } else {
        REKEY_AFTER + RESPONDER_REKEY_GRACE
    }
}
