//! The core's side of the limits in `limits`: whether a friend may have
//! one more tunnel, credits for readers under a friend's send budget, and
//! refusals logged at a rate.

use std::time::Instant;

use tracing::warn;

use super::control::Control;
use super::limits::control_backlog_limit;
use super::{Core, Event, PipeKey};
use crate::id::PublicKey;
use crate::proto::reason::{ReasonCode, Refusal};

impl Core {
    /// The friend's buffer budget in segments, each direction.
    pub(super) fn buffer_budget(&self) -> usize {
        (self.config.limits.buffer_per_friend / self.config.kcp.mtu).max(1)
    }

    /// Why the friend may not hold one more tunnel, if it may not.
    pub(super) fn tunnel_limit(&self, friend: &PublicKey) -> Option<Refusal> {
        let limits = &self.config.limits;
        let per_friend = limits.effective_per_friend(self.config.allow.is_some());
        if self.tunnels.held_by(friend) >= per_friend {
            return Some(Refusal::new(
                ReasonCode::LimitReached,
                format!("{per_friend} tunnels open or opening with this friend, the most one friend may hold (max_tunnels_per_friend)"),
            ));
        }
        (self.tunnels.total() >= limits.node).then(|| {
            Refusal::new(
                ReasonCode::LimitReached,
                format!(
                    "{} tunnels open or opening on this node, the most its descriptors allow",
                    limits.node
                ),
            )
        })
    }

    /// Whether the friend has left so many control messages unacknowledged
    /// that another would only queue behind them.
    pub(super) fn control_backlogged(&self, friend: &PublicKey) -> bool {
        let limit = control_backlog_limit(self.tunnels.held_by(friend));
        self.links
            .get(friend)
            .is_some_and(|l| l.control.wait_snd() >= limit)
    }

    /// Queues a control message, unless the friend's backlog is full.
    pub(super) fn send_control(&mut self, now: Instant, friend: PublicKey, message: &Control) {
        if self.control_backlogged(&friend) {
            if let Some(times) = self.control_full.hit(now) {
                let backlog = control_backlog_limit(self.tunnels.held_by(&friend));
                warn!(friend = %friend.short(), backlog, times, "friend leaves control messages unacknowledged (limit reached): dropped ours and ignoring its OPENs");
            }
            return;
        }
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        let _ = link.control.send(&message.encode());
        self.dirty.insert((friend, 0));
        self.awaiting.insert(friend);
    }

    /// Hands the reader of channel `key` the credits it used, once both
    /// its channel and the friend's send budget have room.
    pub(super) fn release_credits(&mut self, key: PipeKey) {
        let budget = self.buffer_budget();
        let window = self.config.kcp.send_window;
        let Some(link) = self.links.get_mut(&key.0) else {
            return;
        };
        let over_budget = link.send_backlog() >= budget;
        let Some(channel) = link.channels.get_mut(&key.1) else {
            return;
        };
        let Some(conn) = channel.conn else {
            return;
        };
        if channel.held_credits == 0 || !channel.has_room(window) {
            return;
        }
        if over_budget {
            link.starved.insert(key.1);
            return;
        }
        let chunks = std::mem::take(&mut channel.held_credits);
        self.events.push_back(Event::Credit { conn, chunks });
    }

    /// The friend acknowledged something: readers held back by its send
    /// budget may go on.
    pub(super) fn feed_starved(&mut self, friend: PublicKey) {
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        for conv in std::mem::take(&mut link.starved) {
            self.release_credits((friend, conv));
        }
    }

    /// One line per kind of refusal per interval, with a count.
    pub(super) fn log_refusal(
        &mut self,
        now: Instant,
        friend: &PublicKey,
        refusal: &Refusal,
        target: Option<&str>,
    ) {
        let log = self.refusal_logs.entry(refusal.code as u8).or_default();
        if let Some(times) = log.hit(now) {
            let target = target.unwrap_or("-");
            warn!(friend = %self.net.label(friend), %target, reason = %refusal, times, "refused tunnel");
        }
    }
}
