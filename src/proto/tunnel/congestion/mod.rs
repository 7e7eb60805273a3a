//! Congestion control for one friend's path, shared by all its channels
//! (doc/tunnels.md, congestion control): a model of the path (`bbr`) fed
//! by what is sent and acknowledged (`delivery`, read from KCP headers by
//! `segments`), which sets the pacing rate the `pacer` releases packets at
//! and the window of bytes in flight the channels share.

pub mod bbr;
pub mod delivery;
pub mod pacer;
#[cfg(test)]
mod path_sim;
mod round_window;

use std::time::Instant;

use self::bbr::Bbr;
use self::delivery::Delivery;
use super::segments::{headers, segments, Header, CMD_ACK, CMD_PUSH, KCP_HEADER};

pub struct PathControl {
    delivery: Delivery,
    model: Bbr,
    /// Bytes delivered as of the model's last acknowledgement. The
    /// friend's packet of acknowledgements also says, in its first one,
    /// that it has every segment below the last: those arrive as
    /// cumulative deliveries, with no acknowledgement of their own, and a
    /// window that grew by acknowledged segments alone grew by one segment
    /// a packet (Startup took seconds to fill a 40 ms path).
    counted: u64,
}

impl PathControl {
    pub fn new(now: Instant, mtu: usize) -> Self {
        PathControl {
            delivery: Delivery::default(),
            model: Bbr::new(now, mtu),
            counted: 0,
        }
    }

    pub fn model(&self) -> &Bbr {
        &self.model
    }

    pub fn set_mtu(&mut self, mtu: usize) {
        self.model.set_mss(mtu);
    }

    pub fn in_flight(&self) -> u64 {
        self.delivery.in_flight()
    }

    /// See `Delivery::acknowledged_beyond_hole`.
    pub fn acknowledged_beyond_hole(&self, conv: u32) -> u32 {
        self.delivery.acknowledged_beyond_hole(conv)
    }

    pub fn resent(&self) -> u64 {
        self.delivery.resent()
    }

    /// `packet` without the data segments that left less than a round
    /// trip ago (None: it goes as it is; empty: nothing of it goes). KCP
    /// counts a segment as sent when it writes it, not when the pacer lets
    /// it go, so when the pacer's backlog grows (the rate just fell) KCP's
    /// timer fires for segments that cannot have been answered yet, and
    /// its resends would take the line from new data while the backlog
    /// grew further. One KCP resends on its next timeout, if the segment
    /// was lost; one that later segments' acknowledgements revealed lost
    /// left a round trip ago and goes at once.
    pub fn without_early_resends(&self, now: Instant, packet: &[u8]) -> Option<Vec<u8>> {
        let round_trip = self.model.recent_round_trip()?;
        let early = |header: &Header| {
            header.cmd == CMD_PUSH
                && self
                    .delivery
                    .sent_at(header.conv, header.sn)
                    .is_some_and(|at| now.saturating_duration_since(at) < round_trip)
        };
        if !segments(packet).any(|(header, _)| early(&header)) {
            return None;
        }
        let mut kept = Vec::with_capacity(packet.len());
        for (_, whole) in segments(packet).filter(|(header, _)| !early(header)) {
            kept.extend_from_slice(whole);
        }
        Some(kept)
    }

    /// A KCP packet left: its data segments are in flight.
    pub fn on_sent(&mut self, now: Instant, packet: &[u8], app_limited: bool) {
        for header in headers(packet).filter(|h| h.cmd == CMD_PUSH) {
            let bytes = KCP_HEADER as u32 + header.len;
            self.delivery
                .on_sent(now, header.conv, header.sn, bytes, app_limited);
        }
    }

    /// A KCP packet arrived from the friend: its acknowledgements feed the
    /// model, and every segment says what the friend has in order.
    pub fn on_received(&mut self, now: Instant, packet: &[u8]) {
        for header in headers(packet) {
            if header.cmd == CMD_ACK {
                if let Some(sample) = self.delivery.on_acked(now, header.conv, header.sn) {
                    let delivered = self.delivery.delivered();
                    let acked = delivered - std::mem::replace(&mut self.counted, delivered);
                    let in_flight = self.delivery.in_flight();
                    self.model.on_ack(now, &sample, acked, delivered, in_flight);
                }
            }
            self.delivery.on_cumulative(now, header.conv, header.una);
        }
    }

    /// The channel is gone; what it had in flight no longer counts.
    pub fn forget(&mut self, conv: u32) {
        self.delivery.forget(conv);
    }
}
