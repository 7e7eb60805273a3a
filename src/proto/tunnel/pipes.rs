//! The KCP instances of the tunnel core: their timers, what arrives for
//! them, and reading what they deliver (control messages and channel data).

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::control::{Control, CHANNEL_DATA, CHANNEL_FIN, CHANNEL_WINDOW};
use super::datagram::FRAME_DATAGRAM;
use super::kcp_settings::MAX_KCP_MTU;
use super::link::Pipe;
use super::outbox::FRAME_KCP;
use super::segments::KCP_HEADER;
use super::{Core, Event, PipeKey};
use crate::id::PublicKey;
use crate::proto::reason::{CloseReason, ReasonCode, Refusal};

impl Core {
    pub(super) fn pipe_mut(&mut self, (friend, conv): PipeKey) -> Option<&mut Pipe> {
        let link = self.links.get_mut(&friend)?;
        if conv == 0 {
            Some(&mut link.control)
        } else {
            link.channels.get_mut(&conv).map(|c| &mut c.kcp)
        }
    }

    /// Keeps one timer per KCP instance, and none for an idle one: an idle
    /// node makes no wake-ups.
    pub(super) fn schedule(&mut self, now: Instant, key: PipeKey) {
        let ms = self.ms(now);
        let Some(link) = self.links.get_mut(&key.0) else {
            return;
        };
        let (pipe, slot, linger) = if key.1 == 0 {
            (&link.control, &mut link.control_scheduled, None)
        } else {
            let Some(channel) = link.channels.get_mut(&key.1) else {
                return;
            };
            (&channel.kcp, &mut channel.scheduled, channel.linger_until)
        };
        let wanted = if pipe.wait_snd() > 0 {
            let delay = pipe.check(ms).max(1);
            Some(now + Duration::from_millis(delay as u64))
        } else {
            linger
        };
        if *slot == wanted {
            return;
        }
        if let Some(old) = slot.take() {
            self.timers.remove(&(old, key));
        }
        if let Some(at) = wanted {
            *slot = Some(at);
            self.timers.insert((at, key));
        }
    }

    pub(super) fn fire_pipe_timers(&mut self, now: Instant) {
        let ms = self.ms(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, key));
            let Some(link) = self.links.get_mut(&key.0) else {
                continue;
            };
            if key.1 == 0 {
                link.control_scheduled = None;
                let _ = link.control.update(ms);
                let _ = link.control.flush();
            } else if let Some(channel) = link.channels.get_mut(&key.1) {
                channel.scheduled = None;
                if channel.conn.is_none() && channel.linger_until.is_some_and(|t| t <= now) {
                    link.remove_channel(key.1);
                    continue;
                }
                let _ = channel.kcp.update(ms);
                let _ = channel.kcp.flush();
                if channel.kcp.is_dead_link() {
                    let refusal =
                        Refusal::new(ReasonCode::Timeout, "friend stopped acknowledging data");
                    self.reset_channel(now, key, CloseReason::Reset(refusal));
                    continue;
                }
            }
            self.schedule(now, key);
        }
    }

    pub(super) fn on_payload(&mut self, now: Instant, friend: PublicKey, payload: &[u8]) {
        if payload.first() == Some(&FRAME_DATAGRAM) {
            self.on_datagram(now, friend, payload);
            return;
        }
        let Some((&FRAME_KCP, segment)) = payload.split_first() else {
            debug!(friend = %friend.short(), "dropped payload of unknown frame type");
            return;
        };
        // kcp's get_conv asserts on short input; check before asking.
        if segment.len() < KCP_HEADER {
            return;
        }
        // No node sends more than this in one datagram; a friend that does
        // would have KCP buffer what no window accounts for.
        if segment.len() > MAX_KCP_MTU {
            if let Some(times) = self.oversized.hit(now) {
                info!(friend = %friend.short(), bytes = segment.len(), times, "dropped KCP input larger than any MTU");
            }
            return;
        }
        let conv = kcp::get_conv(segment);
        let ms = self.ms(now);
        let budget = self.buffer_budget();
        let Some(link) = self.links.get_mut(&friend) else {
            return;
        };
        if let Some(path) = &mut link.path {
            path.on_received(now, segment);
        }
        let over_budget = link.receive_held() >= budget;
        let Some((admitted, dropped)) =
            link.update_intake(conv, |i, _| i.admit(segment, over_budget))
        else {
            debug!(friend = %friend.short(), conv, "dropped segment for an unknown channel");
            return;
        };
        if dropped > 0 {
            if let Some(times) = self.buffer_full.hit(now) {
                info!(friend = %friend.short(), budget_bytes = self.config.limits.buffer_per_friend, times, "dropped data from a friend over its buffer budget (limit reached); it will be resent");
            }
        }
        let pipe = if conv == 0 {
            &mut link.control
        } else {
            let Some(channel) = link.channels.get_mut(&conv) else {
                return;
            };
            channel.last_activity = now;
            &mut channel.kcp
        };
        let _ = pipe.update(ms);
        if pipe.input(&admitted).is_err() {
            debug!(friend = %friend.short(), conv, "dropped malformed KCP input");
            return;
        }
        self.dirty.insert((friend, conv));
        if conv == 0 {
            self.read_control(now, friend);
        } else {
            self.read_channel(now, (friend, conv));
        }
        self.feed_starved(friend);
    }

    pub(super) fn read_control(&mut self, now: Instant, friend: PublicKey) {
        loop {
            let Some(link) = self.links.get_mut(&friend) else {
                return;
            };
            let Ok(n) = link.control.recv(&mut self.recv_buf) else {
                return;
            };
            match Control::decode(&self.recv_buf[..n]) {
                Some(message) => self.on_control(now, friend, message),
                None => debug!(friend = %friend.short(), "dropped malformed control message"),
            }
        }
    }

    fn on_control(&mut self, now: Instant, friend: PublicKey, message: Control) {
        match message {
            Control::Open {
                request,
                protocol,
                target,
            } => self.on_open(now, friend, request, protocol, target),
            Control::Accept { request, conv } => self.on_accept(now, friend, request, conv),
            Control::Refuse { request, refusal } => {
                let Some(conn) = self
                    .links
                    .get_mut(&friend)
                    .and_then(|l| l.requests.remove(&request))
                else {
                    return;
                };
                self.close(now, conn, CloseReason::Refused(refusal));
            }
            Control::Reset { conv, refusal } => {
                if self.links.get(&friend).is_some_and(|l| l.conv_in_use(conv)) {
                    self.reset_tunnel(now, (friend, conv), CloseReason::ResetByFriend(refusal));
                }
            }
        }
    }

    pub(super) fn read_channel(&mut self, now: Instant, key: PipeKey) {
        let Some(channel) = self
            .links
            .get_mut(&key.0)
            .and_then(|l| l.channels.get_mut(&key.1))
        else {
            return;
        };
        let Some(conn) = channel.conn else { return };
        let mut received = 0;
        while !channel.paused {
            let Ok(n) = channel.kcp.recv(&mut self.recv_buf) else {
                break;
            };
            match self.recv_buf[..n].split_first() {
                Some((&CHANNEL_DATA, bytes)) if !bytes.is_empty() => {
                    received += bytes.len();
                    self.events.push_back(Event::Data {
                        conn,
                        bytes: bytes.to_vec(),
                    });
                }
                Some((&CHANNEL_FIN, _)) if !channel.fin_received => {
                    channel.fin_received = true;
                    self.events.push_back(Event::Eof { conn });
                }
                Some((&CHANNEL_WINDOW, _)) => {}
                _ => debug!(conn, "dropped malformed channel message"),
            }
        }
        let finished = channel.finished();
        self.count_in(conn, received);
        self.release_credits(key);
        if finished {
            self.finish_channel(now, key);
        }
    }
}
