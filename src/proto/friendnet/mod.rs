//! The friend network as a pure state machine: datagrams and time in,
//! datagrams and events out. No sockets, no clock, no entropy of its own:
//! everything it draws comes from the seed it is built with.
//!
//! One type, its `impl` blocks split by concern into the child files:
//! `handshakes` (HELLO and the Noise handshake), `data` (sealing and
//! opening), `path` (direct, relay, probes), `discovery` (bootstrap nodes),
//! `lan_discovery`, and `timers` (every timer a friend has).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tracing::{info, trace, warn};

mod data;
mod discovery;
mod fragments;
mod friend;
mod friend_table;
mod handshakes;
mod lan_discovery;
mod names;
mod path;
pub mod path_mtu;
mod timers;
mod under_load;

pub use discovery::STREAM_LINK_RETRY;

use discovery::Discovery;

use super::cookie::Cookies;
use super::handshake;
use super::identity::Identity;
use super::lan;
use super::log_limit::LogLimit;
use super::reason::OfflineReason;
use super::record::Record;
use super::rendezvous;
use super::route::Route;
use super::snapshot::{BootstrapSnapshot, Counters, FriendSnapshot};
use super::source_limit::{Rates, SourceLimit};
use super::transmit::Transmit;
use super::wire::{self, Packet};
use crate::id::{PeerRef, PublicKey};
use crate::token_bucket::TokenBucket;
use friend::Friend;
use friend_table::FriendTable;

/// An unanswered handshake is sent again after this, doubling each time: a
/// lost packet on a lossy path costs a quarter second of the first byte,
/// and on a path slower than that the doubling soon waits long enough.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// HELLOs answered: the answer is a fixed, public record no larger than the
/// question, so the limit only keeps us from being a reflector.
const HELLO_RATES: Rates = Rates {
    per_source: (4, 8),
    total: (256, 256),
    sources: 4096,
};
/// Handshake message 1 from an address no session has proven. Each costs a
/// Diffie-Hellman, and from a stranger it may be a guess at our nospam:
/// at 64 a second in total, the expected search of the 2^32 nospams (2^31
/// guesses) takes 388 days. A flood of guesses delays a genuine new friend
/// (or a friend at a new address) by the time its message 1 waits for a
/// token: its retries come at 0.25 s, 0.5 s, 1 s, ... so it is through
/// once a retry finds the total bucket not yet emptied by the flood.
const GUESS_RATES: Rates = Rates {
    per_source: (2, 5),
    total: (64, 64),
    sources: 4096,
};

/// Message 1s a second we take calmly; beyond this we are under load and
/// ask every source to prove its address first (a cookie reply).
const HANDSHAKES_BEFORE_LOAD: u64 = 32;
/// Cookie replies: smaller than what they answer, and held to a rate.
const COOKIE_RATES: Rates = Rates {
    per_source: (8, 16),
    total: (10_000, 10_000),
    sources: 4096,
};

/// One log line per interval for each kind of refusal a stranger can cause.
#[derive(Default)]
struct RefusalLogs {
    under_load: LogLimit,
    friends_full: LogLimit,
    hello_limited: LogLimit,
    initiation_limited: LogLimit,
    not_a_friend: LogLimit,
    undecryptable: LogLimit,
    stale_timestamp: LogLimit,
    unconfirmed: LogLimit,
    unreadable_response: LogLimit,
}

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
    /// Friends held at once: a friend request beyond this is refused.
    pub max_friends: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    Online {
        friend: PublicKey,
        addr: SocketAddr,
    },
    Offline {
        friend: PublicKey,
        reason: OfflineReason,
    },
    /// A new friend was accepted by nospam; the driver persists it.
    FriendAdded {
        friend: PublicKey,
    },
    Received {
        friend: PublicKey,
        payload: Vec<u8>,
    },
    /// The bootstrap node at `addr` does not answer over UDP: the driver
    /// connects to it over TCP and calls `stream_link_up` or
    /// `stream_link_down`.
    StreamLinkWanted {
        addr: SocketAddr,
    },
}

pub struct FriendNet {
    identity: Arc<Identity>,
    config: FriendNetConfig,
    mac1_key: [u8; 32],
    instance: u64,
    start: Instant,
    unix_at_start: Duration,
    /// Ordered, so that timers fire, and datagrams go out, in the same
    /// order on every run with the same seed.
    friends: FriendTable,
    /// Local session (or pending initiation) index to its friend.
    indices: HashMap<u32, PublicKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NetEvent>,
    rng: StdRng,
    scratch: Vec<u8>,
    discovery: Discovery,
    lan_answers: TokenBucket,
    self_probe: lan_discovery::SelfProbe,
    /// Our record as HELLO_REPLY carries it: signed once, sent to anyone.
    hello_record: Vec<u8>,
    hello_limit: SourceLimit,
    guess_limit: SourceLimit,
    /// Addresses an authenticated packet came from, to their friend: these
    /// skip the limit on message 1 (a friend rekeying from where it is).
    proven: HashMap<SocketAddr, PublicKey>,
    /// Message 1s taken calmly; when it runs dry we are under load until
    /// `under_load_until`.
    handshake_budget: TokenBucket,
    under_load_until: Option<Instant>,
    cookies: Cookies,
    cookie_limit: SourceLimit,
    counters: Counters,
    names: names::Names,
    logs: RefusalLogs,
}

impl FriendNet {
    /// `unix_now` is the wall clock at `now`: handshake timestamps are
    /// derived from it, so the core itself never reads a clock. `seed` is
    /// the source of everything the core draws (session indices, nonces,
    /// ephemeral keys): the same seed and inputs give the same datagrams.
    pub fn new(
        identity: Arc<Identity>,
        config: FriendNetConfig,
        now: Instant,
        unix_now: Duration,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let hello_record = Record::new(&identity, 0, 0, Vec::new()).encode(&identity);
        let cookies = Cookies::new(&mut rng, now);
        FriendNet {
            mac1_key: handshake::mac1_key(&identity.noise_public),
            identity,
            config,
            instance: rng.next_u64(),
            start: now,
            unix_at_start: unix_now,
            friends: FriendTable::default(),
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
            self_probe: lan_discovery::SelfProbe::new(now),
            hello_record,
            hello_limit: SourceLimit::new(HELLO_RATES, now),
            guess_limit: SourceLimit::new(GUESS_RATES, now),
            proven: HashMap::new(),
            handshake_budget: TokenBucket::new(HANDSHAKES_BEFORE_LOAD, HANDSHAKES_BEFORE_LOAD, now),
            under_load_until: None,
            cookies,
            cookie_limit: SourceLimit::new(COOKIE_RATES, now),
            counters: Counters::default(),
            names: names::Names::default(),
            logs: RefusalLogs::default(),
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
            .get_or_insert(peer.key(), || Friend::new(now, FIRST_RETRY));
        if let Some(id) = peer.id() {
            friend.keys.id = Some(id);
        }
        if let Some(addr) = hint {
            friend.path.configured = Some(addr);
            if !friend.path.addr_trusted {
                friend.path.trust(addr);
            }
        }
        let connecting = &mut friend.connecting;
        connecting.dial |= dial;
        if connecting.dial && !friend.liveness.online && connecting.attempt.is_none() {
            connecting.retry_at = Some(now);
        }
    }

    /// Whether anyone who proves our nospam becomes a friend (a config
    /// that lists no friend), as reloaded.
    pub fn set_accept_requests(&mut self, accept: bool) {
        self.config.accept_requests = accept;
    }

    pub fn is_online(&self, friend: &PublicKey) -> bool {
        self.friends.get(friend).is_some_and(|f| f.liveness.online)
    }

    /// Whether there is any way to find the friend: an address, a relay,
    /// bootstrap nodes to look it up at, or the LAN to ask.
    pub fn has_address(&self, key: &PublicKey) -> bool {
        self.friends.get(key).is_some_and(|f| {
            f.path.addr.is_some()
                || f.path.relay.is_some()
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
            if !f.liveness.online && f.connecting.attempt.is_none() {
                f.connecting.backoff = FIRST_RETRY;
                f.connecting.retry_at = Some(now);
            }
        }
    }

    /// The next datagram to send. Call after every input, until None.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event. Call after every input, until None.
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called; None: only input wakes it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.next_friend_deadline(),
            self.discovery.next_deadline(),
            self.self_probe_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Call when the time `poll_timeout` named has come (earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.discovery.next_deadline().is_some_and(|t| t <= now) {
            self.discovery_timers(now);
        }
        self.probe_for_own_key(now);
        self.reschedule_touched();
        for key in self.friends.take_due(now) {
            self.run_friend_timers(now, key);
            self.reschedule(key);
        }
        self.reschedule_touched();
    }

    /// Call for every datagram that arrives on the node's UDP socket (or a
    /// stream link), with the address it came from.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let kind = bytes.first().copied().unwrap_or(0);
        if rendezvous::is_rendezvous(kind) {
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
            Some(Packet::Hello { nonce, target }) => self.on_hello(now, from, nonce, target),
            Some(Packet::HelloReply { nonce, record }) => {
                self.on_hello_reply(now, from, nonce, record)
            }
            Some(Packet::Initiation {
                sender,
                noise,
                covered,
                mac1,
                covered2,
                mac2,
            }) => {
                if !handshake::mac1_valid(&self.mac1_key, covered, &mac1) {
                    trace!(%from, "dropped handshake with bad mac1");
                } else if self.initiation_passes_load(now, from, sender, &mac1, covered2, &mac2) {
                    self.on_initiation(now, from, sender, noise);
                }
            }
            Some(Packet::CookieReply {
                receiver,
                nonce,
                sealed,
            }) => self.on_cookie_reply(now, from, receiver, nonce, sealed),
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

    fn mark_online(&mut self, now: Instant, key: PublicKey, route: Route) {
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if !friend.liveness.online && friend.sessions.current.is_some() {
            friend.liveness.online = true;
            info!(friend = %self.label(&key), path = %route, "friend online");
            let addr = route.socket_addr();
            self.events
                .push_back(NetEvent::Online { friend: key, addr });
            self.restart_mtu(now, &key);
        }
    }

    fn go_offline(&mut self, key: &PublicKey, reason: OfflineReason) {
        let Some(friend) = self.friends.get_mut(key) else {
            return;
        };
        let pending = friend.pending_index();
        for index in friend.sessions.clear().chain(pending) {
            self.indices.remove(&index);
        }
        friend.connecting.attempt = None;
        friend.path.direct_confirmed = None;
        friend.path.next_probe = None;
        let live = &mut friend.liveness;
        if friend.connecting.dial {
            friend.connecting.retry_at = Some(live.last_recv.max(live.last_sent));
        }
        // What a bootstrap node told us may be stale now; ask again.
        if !self.discovery.nodes.is_empty() {
            friend.path.reset_to_configured();
            friend.path.relay = None;
        }
        if live.online {
            live.online = false;
            info!(friend = %self.label(key), %reason, "friend offline");
            self.events.push_back(NetEvent::Offline {
                friend: *key,
                reason,
            });
        }
    }

    /// Drops a friend request whose keys were never confirmed: the
    /// initiator could not read our answer, which is what a psk that
    /// differs from ours looks like from here.
    fn forget_unconfirmed(&mut self, now: Instant, key: &PublicKey) {
        if self.remove_friend(key) {
            if let Some(times) = self.logs.unconfirmed.hit(now) {
                warn!(friend = %key, times, "forgot a friend request whose keys were never confirmed: our answer did not reach it, or its psk differs from ours (it must be the same on both sides)");
            }
        }
    }

    /// Removes a friend from the running node (`toxtun forget`), its live
    /// session with it; false if it was no friend.
    pub fn forget(&mut self, key: &PublicKey) -> bool {
        let online = self.is_online(key);
        if !self.remove_friend(key) {
            return false;
        }
        info!(friend = %key, "friend forgotten");
        if online {
            self.events.push_back(NetEvent::Offline {
                friend: *key,
                reason: OfflineReason::Forgotten,
            });
        }
        true
    }

    /// Drops a friend with every index and address it held.
    fn remove_friend(&mut self, key: &PublicKey) -> bool {
        let Some(mut friend) = self.friends.remove(key) else {
            return false;
        };
        let pending = friend.pending_index();
        for index in friend.sessions.clear().chain(pending) {
            self.indices.remove(&index);
        }
        if let Some(addr) = friend.path.proven {
            self.proven.remove(&addr);
        }
        true
    }

    fn unix_time(&self, now: Instant) -> Duration {
        self.unix_at_start + now.saturating_duration_since(self.start)
    }

    fn push(&mut self, transmit: Transmit) {
        self.transmits.push_back(transmit);
    }

    /// Seeds the randomness of one Noise handshake (its ephemeral key) from
    /// the core's own generator.
    fn noise_seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    /// Friends for a snapshot; the tunnel counts are the caller's to fill in.
    pub fn friend_snapshots(&self, now: Instant) -> Vec<FriendSnapshot> {
        self.friends
            .iter()
            .map(|(key, f)| FriendSnapshot {
                key: *key,
                name: self.name_of(key).map(str::to_string),
                online: f.liveness.online,
                path: f
                    .liveness
                    .online
                    .then(|| self.route_to(now, key))
                    .flatten()
                    .map(|route| route.kind()),
                rtt: f.stats.rtt,
                last_seen: (f.stats.bytes_in > 0)
                    .then(|| now.saturating_duration_since(f.liveness.last_recv)),
                path_mtu: f.liveness.online.then(|| f.mtu.udp_payload()).flatten(),
                bytes_in: f.stats.bytes_in,
                bytes_out: f.stats.bytes_out,
                tunnels: 0,
                congestion: None,
            })
            .collect()
    }

    pub fn bootstrap_snapshots(&self) -> Vec<BootstrapSnapshot> {
        self.discovery
            .nodes
            .iter()
            .map(|n| BootstrapSnapshot {
                addr: n.addr,
                id: n.id,
                up: n.is_up(),
                rtt: n.rtt,
                public_addr: n.public_addr,
            })
            .collect()
    }

    /// What the friend network has done for strangers, counted.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// An authenticated packet came from `route`: a direct source is now
    /// proven for `key` (and its previous one no longer is).
    fn prove_source(&mut self, key: PublicKey, route: Route) {
        let Route::Direct(addr) = route else {
            return;
        };
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        if friend.path.proven == Some(addr) {
            return;
        }
        if let Some(old) = friend.path.proven.replace(addr) {
            self.proven.remove(&old);
        }
        self.proven.insert(addr, key);
    }

    pub fn online_friends(&self) -> HashSet<PublicKey> {
        self.friends
            .iter()
            .filter(|(_, f)| f.liveness.online)
            .map(|(k, _)| *k)
            .collect()
    }
}
