//! A UDP tunnel's life after it opened: one flow per local source, its
//! datagrams each way (`datagram` says how they travel), and its end
//! (idle, reset by either side, friend gone). A flow holds no queue: a
//! datagram goes out when it comes in, or is dropped, as UDP would.

use std::time::Instant;

use tracing::{debug, warn};

use super::control::Control;
use super::datagram::{self, MAX_DATAGRAM};
use super::link::ConnId;
use super::{Conn, Core, Event, PipeKey};
use crate::id::PublicKey;
use crate::proto::log_limit::LogLimit;
use crate::proto::reason::CloseReason;
use crate::proto::snapshot::DatagramCounts;

/// Datagrams dropped, counted for `status` and logged at a rate.
#[derive(Default)]
pub struct DatagramDrops {
    counts: DatagramCounts,
    too_large_log: LogLimit,
}

impl DatagramDrops {
    pub fn counts(&self) -> DatagramCounts {
        self.counts
    }
}

impl Core {
    /// Whether a datagram of `len` bytes may go through a UDP tunnel; one
    /// that may not is counted, and logged at a rate.
    pub fn datagram_fits(&mut self, now: Instant, len: usize) -> bool {
        if len <= MAX_DATAGRAM {
            return true;
        }
        let drops = &mut self.datagram_drops;
        drops.counts.too_large += 1;
        if let Some(times) = drops.too_large_log.hit(now) {
            warn!(
                bytes = len,
                max_bytes = MAX_DATAGRAM,
                times,
                "dropped a datagram larger than a UDP tunnel carries"
            );
        }
        false
    }

    /// A datagram from the flow's local side (client: its source; server:
    /// the target), for the friend.
    pub fn send_datagram(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(&Conn::Open { friend, conv }) = self.conns.get(&conn) else {
            return;
        };
        if self.active_flow(now, friend, conv, bytes.len()).is_some() {
            self.count_out(conn, bytes.len());
            self.net.send(now, &friend, &datagram::encode(conv, bytes));
        }
    }

    /// A datagram from the friend.
    pub(super) fn on_datagram(&mut self, now: Instant, friend: PublicKey, payload: &[u8]) {
        let Some((conv, bytes)) = datagram::parse(payload) else {
            debug!(friend = %friend.short(), "dropped a malformed datagram frame");
            return;
        };
        let Some(conn) = self.active_flow(now, friend, conv, bytes.len()) else {
            return;
        };
        self.count_in(conn, bytes.len());
        let bytes = bytes.to_vec();
        self.events.push_back(Event::Datagram { conn, bytes });
    }

    /// The flow's connection, once a datagram of `len` bytes passing
    /// through it counts as activity; None when it does not fit or there
    /// is no such flow.
    fn active_flow(
        &mut self,
        now: Instant,
        friend: PublicKey,
        conv: u32,
        len: usize,
    ) -> Option<ConnId> {
        if !self.datagram_fits(now, len) {
            return None;
        }
        let Some(flow) = self
            .links
            .get_mut(&friend)
            .and_then(|l| l.flows.get_mut(&conv))
        else {
            debug!(friend = %friend.short(), conv, "dropped a datagram for a flow that is gone");
            return None;
        };
        flow.last_activity = now;
        Some(flow.conn)
    }

    /// Ends a flow at once. A reason of our own (`CloseReason::Reset`)
    /// goes to the friend too, so it frees its side.
    pub(super) fn reset_flow(&mut self, now: Instant, key: PipeKey, reason: CloseReason) {
        let Some(flow) = self
            .links
            .get_mut(&key.0)
            .and_then(|l| l.flows.remove(&key.1))
        else {
            return;
        };
        if let CloseReason::Reset(refusal) = &reason {
            let message = Control::Reset {
                conv: key.1,
                refusal: refusal.clone(),
            };
            self.send_control(now, key.0, &message);
        }
        self.close(now, flow.conn, reason);
    }

    /// Flows with no datagram either way for the UDP idle timeout.
    pub(super) fn stale_flows(&self, now: Instant) -> Vec<PipeKey> {
        let idle = self.config.udp_idle_timeout;
        self.links
            .iter()
            .flat_map(|(friend, link)| {
                link.flows
                    .iter()
                    .filter(|(_, f)| now >= f.last_activity + idle)
                    .map(|(conv, _)| (*friend, *conv))
            })
            .collect()
    }
}
