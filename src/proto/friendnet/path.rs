//! The path to a friend: its direct address, the relay, and the probes that
//! prove the direct path before traffic moves onto it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::info;

use super::FriendNet;
use crate::id::PublicKey;
use crate::proto::rendezvous;
use crate::proto::route::Route;
use crate::proto::transmit::Transmit;

/// Direct probes are sent this often at first, then once a keepalive.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(250);
pub(super) const QUICK_PROBES: u32 = 20;
/// Until the friend says its NAT has a mapping towards us, probes leave our
/// NAT (opening its mapping towards the friend) but die before the friend's:
/// a probe that reached a NAT before its own side had sent would make that
/// NAT move its mapping to another port, and cone-to-cone punching would
/// never meet (measured; doc/nat.md).
const LOW_TTL: u32 = 2;

/// Unauthenticated addresses tried beside the friend's address, at most.
const MAX_CANDIDATES: usize = 4;

/// Frames that the friend network handles itself (KCP output is frame 1).
pub(super) const FRAME_PROBE: u8 = 2;
pub(super) const FRAME_PROBE_ACK: u8 = 3;
/// Sent through the relay: "my NAT has a mapping towards you".
pub(super) const FRAME_PUNCH_READY: u8 = 4;

#[derive(Default)]
pub struct PathState {
    /// Direct address: last authenticated direct source, else the
    /// `[peers]` address, else the latest unauthenticated word.
    pub addr: Option<SocketAddr>,
    /// `addr` came from an authenticated packet or the config: no
    /// unauthenticated word replaces it.
    pub addr_trusted: bool,
    /// Unauthenticated word of where the friend may be (a LAN answer, a
    /// bootstrap node's notice): handshakes and probes go there too,
    /// beside `addr`, until an authenticated packet settles it.
    pub candidates: Vec<SocketAddr>,
    /// The `[peers]` address, kept across outages.
    pub configured: Option<SocketAddr>,
    /// The last direct source an authenticated packet came from.
    pub proven: Option<SocketAddr>,
    /// Bootstrap node that relays to this friend.
    pub relay: Option<SocketAddr>,
    /// Last time a probe round trip (or any packet while direct) proved the
    /// direct path works both ways.
    pub direct_confirmed: Option<Instant>,
    /// Direct probes sent since the path was last confirmed.
    pub probes: u32,
    pub next_probe: Option<Instant>,
    pub last_probe_sent: Option<Instant>,
    /// The friend says its NAT now has a mapping towards us, so a probe at
    /// full TTL will pass it rather than spoil it.
    pub peer_ready: bool,
    /// When we last asked the LAN for this friend.
    pub last_lan_query: Option<Instant>,
    /// When we last asked the friend, through a bootstrap node, to probe us.
    pub last_connect_request: Option<Instant>,
}

/// What an authenticated packet says about the direct path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Evidence {
    /// The friend is probing: the path works towards us, maybe not back.
    Probe,
    /// Our probe arrived and its answer came back: it works both ways.
    ProbeAck,
    Other,
}

impl PathState {
    /// Learns from the path an authenticated packet took. Only
    /// authenticated packets get here, so nobody can steer our traffic by
    /// spoofing.
    pub(super) fn note(&mut self, route: Route, now: Instant, evidence: Evidence) {
        match route {
            Route::Direct(addr) => {
                self.trust(addr);
                let confirms = match evidence {
                    Evidence::ProbeAck => true,
                    Evidence::Probe => false,
                    // Without a relay there is no other path; with one, the
                    // friend sends other packets direct only once it has
                    // proof.
                    Evidence::Other => self.relay.is_none() || self.direct_confirmed.is_some(),
                };
                if confirms {
                    if self.direct_confirmed.is_none() && self.relay.is_some() {
                        info!(%addr, "direct path to friend confirmed");
                    }
                    self.direct_confirmed = Some(now);
                }
            }
            Route::Relay { via, .. } => self.relay = Some(via),
        }
    }

    /// The friend is at `addr`, on the word of an authenticated packet or
    /// the config.
    pub(super) fn trust(&mut self, addr: SocketAddr) {
        self.addr = Some(addr);
        self.addr_trusted = true;
        self.candidates.clear();
    }

    /// Back to what the config says, forgetting everything learnt.
    pub(super) fn reset_to_configured(&mut self) {
        self.addr = self.configured;
        self.addr_trusted = self.configured.is_some();
        self.candidates.clear();
    }

    /// Unauthenticated word that the friend is at `addr`: it replaces only
    /// an address that was itself unauthenticated, and is otherwise tried
    /// beside it. False if nothing new was learnt.
    pub(super) fn suggest(&mut self, addr: SocketAddr) -> bool {
        if self.addr == Some(addr) || self.candidates.contains(&addr) {
            return false;
        }
        let tried_beside = if self.addr_trusted {
            Some(addr)
        } else {
            self.addr.replace(addr)
        };
        if let Some(beside) = tried_beside {
            if self.candidates.len() == MAX_CANDIDATES {
                self.candidates.remove(0);
            }
            self.candidates.push(beside);
        }
        true
    }

    /// Starts a new round of probes at once.
    pub(super) fn restart_probing(&mut self, now: Instant) {
        self.probes = 0;
        self.peer_ready = false;
        self.next_probe = Some(now);
    }
}

impl FriendNet {
    /// Direct while the direct path is proven; else through a bootstrap
    /// node's relay; else the only address we have.
    pub(super) fn route_to(&self, now: Instant, key: &PublicKey) -> Option<Route> {
        let path = &self.friends.get(key)?.path;
        let direct_fresh = path
            .direct_confirmed
            .is_some_and(|at| now < at + self.direct_lifetime());
        // A relay whose bootstrap node went down is replaced by the nearest
        // one still up: the friend announces to it too.
        let relay = match path.relay {
            Some(via) if self.discovery.is_up_at(via) => Some(via),
            Some(_) => self.discovery.nearest().first().copied(),
            None => None,
        };
        match (path.addr, relay) {
            (Some(addr), _) if direct_fresh => Some(Route::Direct(addr)),
            (_, Some(via)) => Some(Route::Relay { via, peer: *key }),
            (Some(addr), None) => Some(Route::Direct(addr)),
            (None, None) => None,
        }
    }

    /// Both sides send at least a keepalive this often on a working path.
    pub(super) fn direct_lifetime(&self) -> Duration {
        self.config.keepalive * 2 + Duration::from_secs(1)
    }

    /// While we relay: ask the friend (through the bootstrap node) to probe
    /// us too, and probe its direct address, so the path moves to direct
    /// once both NATs have let packets through.
    pub(super) fn probe_due(&mut self, now: Instant, key: PublicKey) {
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let Some(via) = friend.path.relay else {
            return;
        };
        let asked_lately = friend
            .path
            .last_connect_request
            .is_some_and(|at| now < at + PROBE_EVERY * QUICK_PROBES);
        if !asked_lately {
            // It learns our public address from the bootstrap node, as we
            // learnt its.
            friend.path.last_connect_request = Some(now);
            let me = self.identity.public_key();
            self.push(Transmit::to(via, rendezvous::connect(&key, &me)));
        }
        self.probe(now, key);
    }

    fn probe(&mut self, now: Instant, key: PublicKey) {
        let keepalive = self.config.keepalive;
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        let path = &mut friend.path;
        path.probes += 1;
        let Some(addr) = path.addr else {
            // Nothing to probe until the friend's connect request says where.
            path.next_probe = Some(now + keepalive);
            return;
        };
        path.last_probe_sent = Some(now);
        let wait = if path.probes < QUICK_PROBES {
            PROBE_EVERY
        } else {
            keepalive
        };
        path.next_probe = Some(now + wait);
        // The first probe of a round always opens our own mapping; after a
        // round of silence from the friend we stop waiting for its word.
        let low = path.probes == 1 || (!path.peer_ready && path.probes < QUICK_PROBES);
        let relay = path.relay;
        let candidates = path.candidates.clone();
        let ttl = low.then_some(LOW_TTL);
        for candidate in candidates {
            self.send_on(now, &key, Route::Direct(candidate), &[FRAME_PROBE], ttl);
        }
        if self.send_on(now, &key, Route::Direct(addr), &[FRAME_PROBE], ttl) && low {
            if let Some(via) = relay {
                let route = Route::Relay { via, peer: key };
                self.send_on(now, &key, route, &[FRAME_PUNCH_READY], None);
            }
        }
    }
}
