//! What the core knows about one friend, in named parts: who it is, its
//! sessions, how we are connecting to it, the path to it, whether it is
//! alive, and what it has cost.

use std::time::{Duration, Instant};

use snow::HandshakeState;

use super::fragments::Fragments;
use super::path::PathState;
use super::path_mtu::PathMtu;
use crate::id::ToxId;
use crate::proto::route::Route;
use crate::proto::session::Session;

/// Who the friend is beyond its key.
#[derive(Default)]
pub struct FriendKeys {
    /// Known when config gave the whole ID: lets us ask for its record.
    pub id: Option<ToxId>,
    pub noise_key: Option<[u8; 32]>,
    /// Newest handshake timestamp seen: older ones are replays.
    pub last_timestamp: Option<[u8; 12]>,
    /// Changes when the friend restarts.
    pub remote_instance: Option<u64>,
    /// Accepted by nospam at this time, its keys not yet confirmed: it is
    /// forgotten unless its first data packet comes soon.
    pub unconfirmed_since: Option<Instant>,
    /// Handshakes we answered since the friend last confirmed one: it
    /// cannot read our answers when its psk differs from ours.
    pub answered_unconfirmed: u32,
}

/// The three session slots.
#[derive(Default)]
pub struct Sessions {
    /// Sending session; on the responder side only after key confirmation.
    pub current: Option<Session>,
    /// Kept after a rekey so packets already in flight still decrypt.
    pub previous: Option<Session>,
    /// Responder-side session waiting for the initiator's first data packet.
    pub next: Option<Session>,
    /// What the message 1 behind `next` said. Applied only at key
    /// confirmation: a replayed message 1 (after we restarted, say) must
    /// move nothing that outlives the handshake.
    pub confirming: Option<Confirming>,
}

pub struct Confirming {
    /// The path message 1 came by.
    pub route: Route,
    pub instance: u64,
    /// The initiator holds no tunnels with us.
    pub fresh: bool,
    /// When we answered: the confirmation comes a round trip later.
    pub answered_at: Instant,
}

/// Which slot a session index was found in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    Current,
    Previous,
    Next,
}

impl Sessions {
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Session> {
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

    /// Empties every slot; returns the indices that were in use.
    pub fn clear(&mut self) -> impl Iterator<Item = u32> {
        self.confirming = None;
        [self.current.take(), self.previous.take(), self.next.take()]
            .into_iter()
            .flatten()
            .map(|s| s.local_index)
    }
}

pub enum Attempt {
    /// Asked for the friend's record to learn its Noise key.
    Hello { nonce: [u8; 16], sent: Instant },
    /// Asked a bootstrap node where the friend is.
    Lookup { sent: Instant },
    /// Sent handshake message 1 under `local_index`. The state is None
    /// once a response that did not decrypt spent it; the attempt then
    /// waits for its retry.
    Initiation {
        local_index: u32,
        state: Option<Box<HandshakeState>>,
        sent: Instant,
        /// Message 1 as sent, to send again with mac2 if the friend asks
        /// us to prove our address.
        packet: Vec<u8>,
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

/// How we are getting a session with the friend.
pub struct Connecting {
    /// We connect to it ourselves (a tunnel server, or a peer with a hint),
    /// rather than only waiting to be contacted.
    pub dial: bool,
    pub attempt: Option<Attempt>,
    /// When to start the next attempt while there is none.
    pub retry_at: Option<Instant>,
    /// The friend's cookie for our address, and when it came: message 1
    /// carries a mac2 under it while it is fresh.
    pub cookie: Option<([u8; 16], Instant)>,
    /// Wait before repeating an unanswered attempt; doubles.
    pub backoff: Duration,
    /// Message 1s sent since the friend last answered one, and when it
    /// last answered a HELLO: one that answers HELLOs but no handshake
    /// does not take us for a friend, or has another psk.
    pub unanswered: u32,
    pub hello_answered: Option<Instant>,
}

/// Whether the friend is alive.
pub struct Liveness {
    pub online: bool,
    pub last_recv: Instant,
    pub last_sent: Instant,
    /// When we first gave the friend something needing an answer (data to
    /// acknowledge) since we last heard from it.
    pub unanswered_since: Option<Instant>,
}

#[derive(Default)]
pub struct Stats {
    /// Measured by the handshake and by direct probes.
    pub rtt: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub struct Friend {
    pub keys: FriendKeys,
    pub sessions: Sessions,
    pub connecting: Connecting,
    pub path: PathState,
    pub mtu: PathMtu,
    pub fragments: Fragments,
    pub liveness: Liveness,
    pub stats: Stats,
}

impl Friend {
    pub fn new(now: Instant, initial_backoff: Duration) -> Self {
        Friend {
            keys: FriendKeys::default(),
            sessions: Sessions::default(),
            connecting: Connecting {
                dial: false,
                attempt: None,
                retry_at: None,
                cookie: None,
                backoff: initial_backoff,
                unanswered: 0,
                hello_answered: None,
            },
            path: PathState::default(),
            mtu: PathMtu::default(),
            fragments: Fragments::default(),
            liveness: Liveness {
                online: false,
                last_recv: now,
                last_sent: now,
                unanswered_since: None,
            },
            stats: Stats::default(),
        }
    }

    /// The local index of a handshake in flight, if any.
    pub fn pending_index(&self) -> Option<u32> {
        match &self.connecting.attempt {
            Some(Attempt::Initiation { local_index, .. }) => Some(*local_index),
            _ => None,
        }
    }

    pub fn can_initiate(&self) -> bool {
        (self.path.addr.is_some() || self.path.relay.is_some())
            && (self.keys.noise_key.is_some() || self.keys.id.is_some())
    }
}
