//! What the core knows about one friend: keys, address, the three session
//! slots and the handshake in flight.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use snow::HandshakeState;

use super::session::Session;
use crate::id::ToxId;

pub enum Attempt {
    /// Asked for the friend's record to learn its Noise key.
    Hello { nonce: [u8; 16], sent: Instant },
    /// Asked a bootstrap node where the friend is.
    Lookup { sent: Instant },
    /// Sent handshake message 1 under `local_index`.
    Initiation {
        local_index: u32,
        state: Box<HandshakeState>,
        sent: Instant,
    },
}

impl Attempt {
    pub fn sent(&self) -> Instant {
        match self {
            Attempt::Hello { sent, .. }
            | Attempt::Lookup { sent }
            | Attempt::Initiation { sent, .. } => *sent,
        }
    }
}

/// Which slot a session index was found in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    Current,
    Previous,
    Next,
}

pub struct Friend {
    /// Known when config gave the whole ID: lets us ask for its record.
    pub id: Option<ToxId>,
    pub noise_key: Option<[u8; 32]>,
    /// Direct address: last authenticated direct source, else what a
    /// bootstrap node saw, else the configured hint.
    pub addr: Option<SocketAddr>,
    /// The `[peers]` address, kept across outages.
    pub hint: Option<SocketAddr>,
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
    /// Measured by the handshake and by direct probes.
    pub rtt: Option<Duration>,
    /// We connect to it ourselves (a tunnel server, or a peer with a hint),
    /// rather than only waiting to be contacted.
    pub dial: bool,
    /// Sending session; on the responder side only after key confirmation.
    pub current: Option<Session>,
    /// Kept after a rekey so packets already in flight still decrypt.
    pub previous: Option<Session>,
    /// Responder-side session waiting for the initiator's first data packet.
    pub next: Option<Session>,
    pub attempt: Option<Attempt>,
    pub retry_at: Option<Instant>,
    pub backoff: Duration,
    pub last_timestamp: Option<[u8; 12]>,
    pub remote_instance: Option<u64>,
    pub online: bool,
    pub last_recv: Instant,
    pub last_sent: Instant,
    /// First data (not keepalive) sent since we last heard from the friend.
    pub unanswered_since: Option<Instant>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Friend {
    pub fn new(now: Instant, initial_backoff: Duration) -> Self {
        Friend {
            id: None,
            noise_key: None,
            addr: None,
            hint: None,
            relay: None,
            direct_confirmed: None,
            probes: 0,
            next_probe: None,
            last_probe_sent: None,
            last_connect_request: None,
            peer_ready: false,
            last_lan_query: None,
            rtt: None,
            dial: false,
            current: None,
            previous: None,
            next: None,
            attempt: None,
            retry_at: None,
            backoff: initial_backoff,
            last_timestamp: None,
            remote_instance: None,
            online: false,
            last_recv: now,
            last_sent: now,
            unanswered_since: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn session_mut(&mut self, slot: Slot) -> Option<&mut Session> {
        match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous => self.previous.as_mut(),
            Slot::Next => self.next.as_mut(),
        }
    }

    pub fn slot_of(&self, local_index: u32) -> Option<Slot> {
        let has = |s: &Option<Session>| s.as_ref().is_some_and(|s| s.local_index == local_index);
        if has(&self.current) {
            Some(Slot::Current)
        } else if has(&self.previous) {
            Some(Slot::Previous)
        } else if has(&self.next) {
            Some(Slot::Next)
        } else {
            None
        }
    }

    /// Makes `session` current; returns the index of the session pushed out.
    pub fn install(&mut self, session: Session) -> Option<u32> {
        let dropped = self.previous.take().map(|s| s.local_index);
        self.previous = self.current.replace(session);
        dropped
    }

    /// Every local index this friend holds, for unmapping.
    pub fn indices(&self) -> Vec<u32> {
        let mut out: Vec<u32> = [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
            .map(|s| s.local_index)
            .collect();
        if let Some(Attempt::Initiation { local_index, .. }) = &self.attempt {
            out.push(*local_index);
        }
        out
    }

    pub fn can_initiate(&self) -> bool {
        (self.addr.is_some() || self.relay.is_some())
            && (self.noise_key.is_some() || self.id.is_some())
    }
}
