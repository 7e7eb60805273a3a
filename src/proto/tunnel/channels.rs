//! A tunnel channel's life after it opened: data and credits, half-close,
//! pause and resume, and its end (clean, reset, idle or friend gone).

use std::time::{Duration, Instant};

use super::control::{Control, CHANNEL_DATA, CHANNEL_FIN, CHANNEL_WINDOW};
use super::link::{Channel, ConnId};
use super::{Conn, Core, Event, PipeKey, MAX_CHUNK};
use crate::id::PublicKey;
use crate::proto::reason::{CloseReason, OfflineReason, ReasonCode, Refusal};

/// A closed channel stays this long to acknowledge late retransmissions:
/// the friend's last acknowledgement may be lost in an outage, and a
/// friend that never hears it resets a connection that had finished.
const LINGER: Duration = Duration::from_secs(60);
/// Closed channels kept per friend; past this the oldest goes.
const MAX_LINGERING: usize = 256;

impl Core {
    pub(super) fn link_down(&mut self, now: Instant, friend: PublicKey, why: OfflineReason) {
        let Some(link) = self.links.remove(&friend) else {
            return;
        };
        if let Some(at) = link.control_scheduled {
            self.timers.remove(&(at, (friend, 0)));
        }
        if let Some(at) = link.pacer_due {
            self.pacer_timers.remove(&(at, friend));
        }
        for (conv, channel) in link.channels {
            if let Some(at) = channel.scheduled {
                self.timers.remove(&(at, (friend, conv)));
            }
            if let Some(conn) = channel.conn {
                self.close(now, conn, CloseReason::FriendOffline(why));
            }
        }
        for flow in link.flows.into_values() {
            self.close(now, flow.conn, CloseReason::FriendOffline(why));
        }
        // An OPEN the friend never answered is sent again once it is back
        // (a restarted server loses nothing of a connection it never
        // accepted); the open timeout still bounds the wait.
        for conn in link.requests.into_values() {
            if let Some(Conn::Opening { request, .. }) = self.conns.get_mut(&conn) {
                *request = None;
            }
        }
        self.dirty.retain(|(f, _)| *f != friend);
        self.events.push_back(Event::FriendOffline(friend));
    }

    /// Both sides sent FIN and everything is acknowledged: a clean close.
    pub(super) fn finish_channel(&mut self, now: Instant, key: PipeKey) {
        let Some(channel) = self.channel_mut(key) else {
            return;
        };
        let Some(conn) = channel.conn.take() else {
            return;
        };
        channel.linger_until = Some(now + LINGER);
        self.conns.remove(&conn);
        self.forget_oldest_lingering(key.0);
        self.tunnels.release(&key.0);
        let reason = CloseReason::Finished;
        self.log_closed(now, conn, None, &reason);
        self.events.push_back(Event::Closed { conn, reason });
        self.dirty.insert(key);
    }

    fn forget_oldest_lingering(&mut self, friend: PublicKey) {
        let Some(link) = self.links.get(&friend) else {
            return;
        };
        let lingering = link
            .channels
            .iter()
            .filter_map(|(conv, c)| c.conn.is_none().then_some((c.linger_until, *conv)));
        if lingering.clone().count() <= MAX_LINGERING {
            return;
        }
        let Some((_, conv)) = lingering.min() else {
            return;
        };
        if let Some(channel) = self
            .links
            .get_mut(&friend)
            .and_then(|l| l.remove_channel(conv))
        {
            if let Some(at) = channel.scheduled {
                self.timers.remove(&(at, (friend, conv)));
            }
        }
        self.dirty.remove(&(friend, conv));
    }

    /// Ends a channel at once. A reason of our own (`CloseReason::Reset`)
    /// goes to the friend too.
    pub(super) fn reset_channel(&mut self, now: Instant, key: PipeKey, reason: CloseReason) {
        let Some(link) = self.links.get_mut(&key.0) else {
            return;
        };
        let Some(channel) = link.remove_channel(key.1) else {
            return;
        };
        if let Some(at) = channel.scheduled {
            self.timers.remove(&(at, key));
        }
        self.dirty.remove(&key);
        if let CloseReason::Reset(refusal) = &reason {
            let message = Control::Reset {
                conv: key.1,
                refusal: refusal.clone(),
            };
            self.send_control(now, key.0, &message);
        }
        if let Some(conn) = channel.conn {
            self.close(now, conn, reason);
        }
        self.feed_starved(key.0);
    }

    /// Ends an open tunnel at once, channel or flow.
    pub(super) fn reset_tunnel(&mut self, now: Instant, key: PipeKey, reason: CloseReason) {
        let is_flow = self
            .links
            .get(&key.0)
            .is_some_and(|l| l.flows.contains_key(&key.1));
        if is_flow {
            self.reset_flow(now, key, reason);
        } else {
            self.reset_channel(now, key, reason);
        }
    }

    pub(super) fn close(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        match self.conns.remove(&conn) {
            Some(Conn::Opening {
                friend,
                deadline,
                target,
                ..
            }) => {
                self.open_deadlines.remove(&(deadline, conn));
                self.tunnels.release(&friend);
                self.log_closed(now, conn, Some((friend, &target)), &reason);
            }
            Some(Conn::Open { friend, .. }) => {
                self.tunnels.release(&friend);
                self.log_closed(now, conn, None, &reason);
            }
            None => self.log_closed(now, conn, None, &reason),
        }
        self.events.push_back(Event::Closed { conn, reason });
    }

    fn open_channel(&mut self, conn: ConnId) -> Option<(PipeKey, &mut Channel)> {
        let Some(Conn::Open { friend, conv }) = self.conns.get(&conn) else {
            return None;
        };
        let key = (*friend, *conv);
        let channel = self.links.get_mut(friend)?.channels.get_mut(conv)?;
        Some((key, channel))
    }

    /// Bytes the connection's reader took from TCP. Each call uses one credit.
    pub fn send_data(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        channel.last_activity = now;
        let sent = bytes.len();
        for chunk in bytes.chunks(MAX_CHUNK) {
            let mut message = Vec::with_capacity(chunk.len() + 1);
            message.push(CHANNEL_DATA);
            message.extend_from_slice(chunk);
            let _ = channel.kcp.send(&message);
        }
        channel.held_credits += 1;
        self.count_out(conn, sent);
        self.release_credits(key);
        self.dirty.insert(key);
        self.awaiting.insert(key.0);
    }

    /// The reader hit end of file: FIN goes after the last byte.
    pub fn local_eof(&mut self, now: Instant, conn: ConnId) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        if !channel.fin_sent {
            channel.fin_sent = true;
            let _ = channel.kcp.send(&[CHANNEL_FIN]);
        }
        self.dirty.insert(key);
        self.awaiting.insert(key.0);
        self.check_finished(now, key);
    }

    /// The local TCP connection failed: abort the channel with a reason.
    pub fn local_reset(&mut self, now: Instant, conn: ConnId, text: String) {
        let reason = CloseReason::Reset(Refusal::new(ReasonCode::ConnectionAborted, text));
        match self.conns.get(&conn) {
            Some(Conn::Open { friend, conv }) => {
                let key = (*friend, *conv);
                self.reset_tunnel(now, key, reason);
            }
            Some(Conn::Opening { .. }) => self.close(now, conn, reason),
            None => {}
        }
    }

    /// The writer is full: leave data in KCP so its receive window closes.
    pub fn pause(&mut self, conn: ConnId) {
        if let Some((_, channel)) = self.open_channel(conn) {
            channel.paused = true;
        }
    }

    pub fn resume(&mut self, now: Instant, conn: ConnId) {
        let Some((key, channel)) = self.open_channel(conn) else {
            return;
        };
        if std::mem::take(&mut channel.paused) {
            let _ = channel.kcp.send(&[CHANNEL_WINDOW]);
        }
        self.dirty.insert(key);
        self.awaiting.insert(key.0);
        self.read_channel(now, key);
    }

    fn check_finished(&mut self, now: Instant, key: PipeKey) {
        let finished = self
            .links
            .get(&key.0)
            .and_then(|l| l.channels.get(&key.1))
            .is_some_and(|c| c.conn.is_some() && c.finished());
        if finished {
            self.finish_channel(now, key);
        }
    }

    pub(super) fn ensure_idle_sweep(&mut self, now: Instant) {
        if self.next_idle_sweep.is_none() {
            self.next_idle_sweep = Some(now + self.idle_sweep_every());
        }
    }

    fn idle_sweep_every(&self) -> Duration {
        let shortest = self.config.idle_timeout.min(self.config.udp_idle_timeout);
        (shortest / 4).max(Duration::from_millis(100))
    }

    /// Resets connections and flows idle past their timeouts; runs every
    /// quarter of the shorter timeout while any exists, so idle nodes stay
    /// asleep.
    pub(super) fn sweep_idle(&mut self, now: Instant) {
        let udp_idle = self.config.udp_idle_timeout;
        for key in self.stale_flows(now) {
            let refusal =
                Refusal::new(ReasonCode::Timeout, format!("no datagram for {udp_idle:?}"));
            self.reset_flow(now, key, CloseReason::Reset(refusal));
        }
        let idle = self.config.idle_timeout;
        let stale: Vec<PipeKey> = self
            .links
            .iter()
            .flat_map(|(friend, link)| {
                link.channels
                    .iter()
                    .filter(|(_, c)| c.conn.is_some() && now >= c.last_activity + idle)
                    .map(|(conv, _)| (*friend, *conv))
            })
            .collect();
        for key in stale {
            let refusal = Refusal::new(ReasonCode::Timeout, format!("idle for {idle:?}"));
            self.reset_channel(now, key, CloseReason::Reset(refusal));
        }
        let any = self
            .links
            .values()
            .any(|l| !l.channels.is_empty() || !l.flows.is_empty());
        self.next_idle_sweep = any.then(|| now + self.idle_sweep_every());
    }
}
