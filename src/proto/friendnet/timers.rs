//! Every timer a friend has, in one place: `deadline` says when each is
//! due, and both `poll_timeout` and `handle_timeout` use it, so the time
//! the driver sleeps until and the work done then cannot disagree.

use std::time::{Duration, Instant};

use super::friend::Friend;
use super::{FriendNet, OfflineReason, FIRST_RETRY, MAX_RETRY};
use crate::id::PublicKey;
use crate::proto::session::Session;

/// A session older than this is replaced by a fresh handshake.
const REKEY_AFTER: Duration = Duration::from_secs(120);
/// And never used past this.
const REJECT_AFTER: Duration = Duration::from_secs(180);
/// A friend accepted by nospam whose keys are not confirmed within this is
/// forgotten (without the psk, or a replayed message 1, it never will be).
const UNCONFIRMED_FOR: Duration = Duration::from_secs(10);
/// Data unanswered this long at least makes us suspect the friend lost our
/// session.
const SUSPECT_AT_LEAST: Duration = Duration::from_secs(1);
/// The responder waits this much longer than the initiator before rekeying,
/// so the two do not cross.
const RESPONDER_REKEY_GRACE: Duration = Duration::from_secs(10);

/// A friend's timers, in the order they are handled when several are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FriendTimer {
    /// A friend request whose keys were never confirmed: forget it.
    Unconfirmed,
    /// The current session is too old to use: the friend goes offline.
    SessionExpiry,
    /// Nothing heard for `friend_timeout`: the friend goes offline.
    Silence,
    /// A HELLO, lookup or handshake went unanswered: send it again.
    AttemptRetry,
    /// No attempt in flight and it is time for one (backoff, connect_now).
    Reconnect,
    /// The session is old: handshake again before it expires.
    Rekey,
    /// Data went unanswered: handshake again rather than wait for the
    /// timeout (the direct path may be what failed).
    Suspect,
    /// Relayed: probe the direct path (or look again when it goes stale).
    Probe,
    /// Nothing sent for `keepalive`: send an empty packet.
    Keepalive,
    /// The path MTU search has a probe to send (again).
    MtuProbe,
}

impl FriendTimer {
    pub(super) const ALL: [FriendTimer; 10] = [
        FriendTimer::Unconfirmed,
        FriendTimer::SessionExpiry,
        FriendTimer::Silence,
        FriendTimer::AttemptRetry,
        FriendTimer::Reconnect,
        FriendTimer::Rekey,
        FriendTimer::Suspect,
        FriendTimer::Probe,
        FriendTimer::Keepalive,
        FriendTimer::MtuProbe,
    ];
}

pub(super) fn rekey_age(session: &Session) -> Duration {
    if session.initiator {
        REKEY_AFTER
    } else {
        REKEY_AFTER + RESPONDER_REKEY_GRACE
    }
}

impl FriendNet {
    /// When `timer` is next due for `friend`; None while it is not armed.
    pub(super) fn deadline(&self, friend: &Friend, timer: FriendTimer) -> Option<Instant> {
        let live = &friend.liveness;
        let current = friend.sessions.current.as_ref();
        let connecting = &friend.connecting;
        let idle_initiator = live.online && connecting.attempt.is_none() && friend.can_initiate();
        match timer {
            FriendTimer::Unconfirmed => {
                friend.keys.unconfirmed_since.map(|at| at + UNCONFIRMED_FOR)
            }
            FriendTimer::SessionExpiry => current.map(|s| s.created + REJECT_AFTER),
            FriendTimer::Silence => live
                .online
                .then(|| live.last_recv + self.config.friend_timeout),
            FriendTimer::AttemptRetry => connecting
                .attempt
                .as_ref()
                .map(|a| a.sent() + connecting.backoff),
            FriendTimer::Reconnect => connecting.retry_at.filter(|_| connecting.attempt.is_none()),
            FriendTimer::Rekey => current
                .filter(|_| idle_initiator)
                .map(|s| s.created + rekey_age(s)),
            FriendTimer::Suspect => live
                .unanswered_since
                .filter(|_| idle_initiator)
                .map(|since| since + self.suspect_after(friend)),
            FriendTimer::Probe => {
                if !live.online || friend.path.relay.is_none() {
                    return None;
                }
                Some(match friend.path.next_probe {
                    Some(at) => at,
                    // Not probing: look again when the direct path would go
                    // stale (or at once, if it was never proven).
                    None => friend
                        .path
                        .direct_confirmed
                        .map_or(live.last_recv, |at| at + self.direct_lifetime()),
                })
            }
            FriendTimer::Keepalive => current
                .filter(|_| live.online)
                .map(|_| live.last_sent + self.config.keepalive),
            FriendTimer::MtuProbe => friend.mtu.next_due().filter(|_| live.online),
        }
    }

    /// Silence after sending data, after which we re-handshake rather than
    /// wait for the timeout: a live friend acknowledges data within a round
    /// trip, so a few round trips of silence (a second at least) mean it
    /// lost our session, most likely by restarting, and a handshake finds
    /// out at once. Idle friends are never suspected, so differing
    /// keepalive settings on the two sides cannot cause handshake storms.
    fn suspect_after(&self, friend: &Friend) -> Duration {
        let round_trips = friend.stats.rtt.map_or(Duration::ZERO, |rtt| rtt * 4);
        round_trips
            .max(SUSPECT_AT_LEAST)
            .min(self.config.keepalive + self.config.keepalive / 2)
    }

    fn friend_deadline(&self, friend: &Friend) -> Option<Instant> {
        FriendTimer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(friend, t))
            .min()
    }

    /// The index's earliest entry, or earlier if a friend changed since it
    /// was scheduled. An entry may be early (the friend is then visited and
    /// rescheduled, no harm done), never late.
    pub(super) fn next_friend_deadline(&self) -> Option<Instant> {
        let touched = self
            .friends
            .touched()
            .filter_map(|(_, f)| self.friend_deadline(f));
        touched.chain(self.friends.earliest()).min()
    }

    pub(super) fn reschedule(&mut self, key: PublicKey) {
        let at = self.friends.get(&key).and_then(|f| self.friend_deadline(f));
        self.friends.set_deadline(key, at);
    }

    pub(super) fn reschedule_touched(&mut self) {
        for key in self.friends.take_touched() {
            self.reschedule(key);
        }
    }

    /// Runs every timer of `key` that is due, each at most once, in
    /// `FriendTimer::ALL` order; each sees what the ones before it did.
    pub(super) fn run_friend_timers(&mut self, now: Instant, key: PublicKey) {
        for timer in FriendTimer::ALL {
            let due = self
                .friends
                .get(&key)
                .and_then(|f| self.deadline(f, timer))
                .is_some_and(|at| at <= now);
            if due {
                self.fire(now, key, timer);
            }
        }
    }

    fn fire(&mut self, now: Instant, key: PublicKey, timer: FriendTimer) {
        let keepalive = self.config.keepalive;
        let direct_lifetime = self.direct_lifetime();
        let Some(friend) = self.friends.get_mut(&key) else {
            return;
        };
        match timer {
            FriendTimer::Unconfirmed => self.forget_unconfirmed(now, &key),
            FriendTimer::SessionExpiry => self.go_offline(&key, OfflineReason::SessionExpired),
            FriendTimer::Silence => {
                let silent = now.duration_since(friend.liveness.last_recv);
                self.go_offline(&key, OfflineReason::Silent(silent));
            }
            FriendTimer::AttemptRetry => {
                let connecting = &mut friend.connecting;
                connecting.backoff = (connecting.backoff * 2)
                    .min(MAX_RETRY)
                    .min(keepalive * 2)
                    .max(FIRST_RETRY);
                self.initiate_if_wanted(now, key);
            }
            FriendTimer::Reconnect => {
                friend.connecting.retry_at = None;
                self.initiate_if_wanted(now, key);
            }
            FriendTimer::Rekey => self.initiate_if_wanted(now, key),
            FriendTimer::Suspect => {
                // The direct path may be what failed: fall back to the relay.
                if friend.path.relay.is_some() {
                    friend.path.direct_confirmed = None;
                }
                self.initiate_if_wanted(now, key);
            }
            FriendTimer::Probe => {
                let direct_fresh = friend
                    .path
                    .direct_confirmed
                    .is_some_and(|at| now < at + direct_lifetime);
                if direct_fresh {
                    friend.path.next_probe = None;
                    return;
                }
                if friend.path.next_probe.is_none() {
                    friend.path.restart_probing(now);
                }
                self.probe_due(now, key);
            }
            FriendTimer::Keepalive => {
                self.send(now, &key, &[]);
            }
            FriendTimer::MtuProbe => self.probe_mtu(now, key),
        }
    }

    fn initiate_if_wanted(&mut self, now: Instant, key: PublicKey) {
        let wanted = self
            .friends
            .get(&key)
            .is_some_and(|f| f.connecting.dial || f.liveness.online);
        if wanted {
            self.start_initiation(now, key);
        }
    }
}
