//! What is in flight on a friend's path and how fast it is delivered: on
//! each acknowledgement, a rate sample (bytes delivered over the time they
//! took, as BBR's delivery rate estimation defines it) and a round-trip
//! sample. Segments are known by (conv, sn), read from the packets that
//! leave and the acknowledgements that come back.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSample {
    /// Bytes a second.
    pub delivery_rate: f64,
    /// The time the rate was measured over.
    pub interval: Duration,
    /// None for a segment sent more than once: which send the
    /// acknowledgement answers is unknown.
    pub rtt: Option<Duration>,
    /// What had been delivered when the acknowledged segment left: a new
    /// round starts when this reaches the mark of the last one.
    pub prior_delivered: u64,
    /// The segment left while the sender had less to send than the window
    /// allowed: the rate says more about the sender than the path.
    pub app_limited: bool,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    bytes: u32,
    at: Instant,
    resent: bool,
    delivered: u64,
    delivered_at: Instant,
    first_sent_at: Instant,
    app_limited: bool,
}

/// A segment of one channel's window, by its distance from the span's
/// first slot.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// Not sent, or sent before the window's last empty moment.
    Unknown,
    InFlight(Sent),
    /// The friend acknowledged it beyond the first segment it lacks.
    Acked,
}

/// A span's slots beyond which a segment is not tracked, so a fault
/// cannot make one allocation of gigabytes: KCP sends within its window,
/// at most 65535 segments past the first the friend lacks.
const MAX_SLOTS: usize = 1 << 16;
/// Slots a span keeps room for once its window has emptied: an idle
/// channel must not hold the memory its last burst needed.
const IDLE_SLOTS: usize = 64;

/// One channel's segments as KCP's window counts them: from the first the
/// friend lacks (`una`) to one past the highest sent (`top`), of which
/// `in_flight` are not yet acknowledged. `slots[i]` is segment
/// `base + i`: KCP sends within a window that moves forward, so a ring
/// indexed by sequence number replaces a search per segment.
#[derive(Debug, Default, Clone)]
struct Span {
    top: u32,
    una: u32,
    in_flight: u32,
    base: u32,
    slots: VecDeque<Slot>,
}

impl Span {
    fn index(&self, sn: u32) -> Option<usize> {
        let index = sn.wrapping_sub(self.base) as usize;
        (!after(self.base, sn) && index < self.slots.len()).then_some(index)
    }

    fn slot(&self, sn: u32) -> Option<&Slot> {
        self.index(sn).map(|i| &self.slots[i])
    }

    /// The slot for `sn`, made room for; None past `MAX_SLOTS` or
    /// before the first slot.
    fn slot_mut(&mut self, sn: u32) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            self.base = sn;
        }
        if after(self.base, sn) {
            return None;
        }
        let index = sn.wrapping_sub(self.base) as usize;
        if index >= MAX_SLOTS {
            return None;
        }
        if index >= self.slots.len() {
            self.slots.resize(index + 1, Slot::Unknown);
        }
        Some(&mut self.slots[index])
    }

    /// Drops the slots below `una`; the bytes of those still in flight.
    fn advance(&mut self, una: u32) -> u64 {
        let mut bytes = 0;
        while after(una, self.base) {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            if let Slot::InFlight(sent) = slot {
                bytes += sent.bytes as u64;
                self.in_flight -= 1;
            }
            self.base = self.base.wrapping_add(1);
        }
        if self.slots.is_empty() && self.slots.capacity() > IDLE_SLOTS {
            self.slots.shrink_to(IDLE_SLOTS);
        }
        bytes
    }
}

/// Whether sequence number `a` comes after `b` (they wrap).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Debug, Default)]
pub struct Delivery {
    spans: BTreeMap<u32, Span>,
    in_flight_bytes: u64,
    delivered: u64,
    delivered_at: Option<Instant>,
    first_sent_at: Option<Instant>,
    resent: u64,
}

impl Delivery {
    pub fn in_flight(&self) -> u64 {
        self.in_flight_bytes
    }

    /// When segment `sn` of `conv` last left, if it is in flight.
    pub fn sent_at(&self, conv: u32, sn: u32) -> Option<Instant> {
        match self.spans.get(&conv)?.slot(sn)? {
            Slot::InFlight(sent) => Some(sent.at),
            _ => None,
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Segments sent again while still in flight.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// A segment of `bytes` left (perhaps again).
    pub fn on_sent(&mut self, now: Instant, conv: u32, sn: u32, bytes: u32, app_limited: bool) {
        // A channel's window starts at the first segment seen, not at 0:
        // numbers below it would read as acknowledged.
        let span = self.spans.entry(conv).or_insert_with(|| Span {
            top: sn,
            una: sn,
            ..Span::default()
        });
        // A resend that waited in the pacer while the friend's
        // acknowledgement arrived: already delivered, and counting it
        // again would report bytes the path never carried.
        if after(span.una, sn) || matches!(span.slot(sn), Some(Slot::Acked)) {
            return;
        }
        if self.in_flight_bytes == 0 {
            // Nothing in flight: the next interval starts now, not at the
            // last acknowledgement before the pause.
            self.first_sent_at = Some(now);
            self.delivered_at = Some(now);
        }
        let sent = Sent {
            bytes,
            at: now,
            resent: false,
            delivered: self.delivered,
            delivered_at: self.delivered_at.unwrap_or(now),
            first_sent_at: self.first_sent_at.unwrap_or(now),
            app_limited,
        };
        let Some(slot) = span.slot_mut(sn) else {
            return;
        };
        let resent = match std::mem::replace(slot, Slot::Unknown) {
            Slot::InFlight(before) => {
                self.in_flight_bytes -= before.bytes as u64;
                self.resent += 1;
                true
            }
            _ => false,
        };
        *slot = Slot::InFlight(Sent { resent, ..sent });
        if !resent {
            span.in_flight += 1;
        }
        if after(sn.wrapping_add(1), span.top) {
            span.top = sn.wrapping_add(1);
        }
        self.in_flight_bytes += bytes as u64;
    }

    /// The friend acknowledged segment `sn` of `conv`.
    pub fn on_acked(&mut self, now: Instant, conv: u32, sn: u32) -> Option<RateSample> {
        let span = self.spans.get_mut(&conv)?;
        let index = span.index(sn)?;
        let Slot::InFlight(sent) = span.slots[index] else {
            return None;
        };
        span.slots[index] = Slot::Acked;
        span.in_flight -= 1;
        self.in_flight_bytes -= sent.bytes as u64;
        self.delivered += sent.bytes as u64;
        self.delivered_at = Some(now);
        self.first_sent_at = Some(sent.at);
        // The slower of the two clocks: sending can be bursty and so can
        // acknowledgements; neither alone may claim a rate the path did
        // not deliver.
        let sending = sent.at.saturating_duration_since(sent.first_sent_at);
        let acking = now.saturating_duration_since(sent.delivered_at);
        let interval = sending.max(acking);
        let delivery_rate = if interval.is_zero() {
            0.0
        } else {
            (self.delivered - sent.delivered) as f64 / interval.as_secs_f64()
        };
        Some(RateSample {
            delivery_rate,
            interval,
            rtt: (!sent.resent).then(|| now.saturating_duration_since(sent.at)),
            prior_delivered: sent.delivered,
            app_limited: sent.app_limited,
        })
    }

    /// The friend has every segment of `conv` below `una`: those whose own
    /// acknowledgement was lost count as delivered.
    pub fn on_cumulative(&mut self, now: Instant, conv: u32, una: u32) {
        let Some(span) = self.spans.get_mut(&conv) else {
            return;
        };
        let delivered = span.advance(una);
        self.in_flight_bytes -= delivered;
        if delivered > 0 {
            self.delivered += delivered;
            self.delivered_at = Some(now);
        }
        if after(una, span.una) {
            span.una = una;
        }
    }

    /// Segments of `conv` the friend acknowledged beyond one it still
    /// lacks: KCP's window counts them until the hole is filled, though
    /// they are no longer in flight.
    pub fn acknowledged_beyond_hole(&self, conv: u32) -> u32 {
        self.spans
            .get(&conv)
            .filter(|span| after(span.top, span.una))
            .map_or(0, |span| {
                span.top
                    .wrapping_sub(span.una)
                    .saturating_sub(span.in_flight)
            })
    }

    /// The channel is gone: what it had in flight no longer is.
    pub fn forget(&mut self, conv: u32) {
        let Some(span) = self.spans.remove(&conv) else {
            return;
        };
        for slot in span.slots {
            if let Slot::InFlight(sent) = slot {
                self.in_flight_bytes -= sent.bytes as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_flow_is_sampled_at_its_rate() {
        let start = Instant::now();
        let mut d = Delivery::default();
        let gap = Duration::from_millis(1);
        let rtt = Duration::from_millis(40);
        // 1000 bytes a millisecond, acknowledged one round trip later.
        let mut last = None;
        for sn in 0..200u32 {
            let now = start + gap * sn;
            d.on_sent(now, 1, sn, 1000, false);
            if sn >= 40 {
                last = d.on_acked(now, 1, sn - 40);
            }
        }
        let sample = last.unwrap();
        assert!(
            (sample.delivery_rate - 1e6).abs() < 1e6 * 0.05,
            "{sample:?}"
        );
        assert_eq!(sample.rtt, Some(rtt));
        assert_eq!(d.in_flight(), 40 * 1000);
    }

    /// KCP resends a segment into the pacer; the friend's acknowledgement
    /// of the first copy arrives before the pacer lets the resend go. The
    /// resend must not count as in flight, or its own acknowledgement
    /// would count its bytes as delivered twice: a rate the path never
    /// carried (a 20 Mbit/s line read as 35).
    #[test]
    fn a_resend_that_leaves_after_its_acknowledgement_is_not_delivered_again() {
        let now = Instant::now();
        let mut d = Delivery::default();
        for sn in 0..3 {
            d.on_sent(now, 3, sn, 100, false);
        }
        d.on_acked(now + Duration::from_millis(1), 3, 1).unwrap();
        d.on_cumulative(now + Duration::from_millis(1), 3, 1);
        d.on_sent(now + Duration::from_millis(2), 3, 1, 100, false);
        d.on_sent(now + Duration::from_millis(2), 3, 0, 100, false);
        assert_eq!(d.resent(), 0, "neither was in flight again");
        assert_eq!(d.in_flight(), 100, "only segment 2 is in flight");
        assert!(d.on_acked(now + Duration::from_millis(3), 3, 1).is_none());
        assert_eq!(d.delivered(), 200);
    }

    /// A burst needs a slot per segment in flight; once the friend has
    /// it all, the channel keeps room for a few, not for the burst.
    #[test]
    fn a_window_that_emptied_gives_its_slots_back() {
        let now = Instant::now();
        let mut d = Delivery::default();
        for sn in 0..2000 {
            d.on_sent(now, 4, sn, 100, false);
        }
        d.on_cumulative(now + Duration::from_millis(1), 4, 2000);
        assert_eq!((d.in_flight(), d.delivered()), (0, 200_000));
        assert!(d.spans[&4].slots.capacity() <= IDLE_SLOTS);
    }

    /// A number further past the first segment the friend lacks than any
    /// KCP window reaches (a fault, or a forged packet of ours read
    /// back) takes no room.
    #[test]
    fn a_segment_beyond_any_window_is_not_tracked() {
        let now = Instant::now();
        let mut d = Delivery::default();
        d.on_sent(now, 6, 10, 100, false);
        d.on_sent(now, 6, 10 + MAX_SLOTS as u32, 100, false);
        assert_eq!(d.in_flight(), 100);
        assert_eq!(d.spans[&6].slots.len(), 1);
        d.on_sent(now, 6, 10 + MAX_SLOTS as u32 - 1, 100, false);
        assert_eq!(d.in_flight(), 200);
    }

    #[test]
    fn sequence_numbers_that_wrap_are_tracked_across_zero() {
        let now = Instant::now();
        let mut d = Delivery::default();
        let first = u32::MAX - 2;
        for i in 0..6 {
            d.on_sent(now, 5, first.wrapping_add(i), 100, false);
        }
        assert!(d.on_acked(now + Duration::from_millis(1), 5, 1).is_some());
        d.on_cumulative(now + Duration::from_millis(1), 5, 0);
        assert_eq!(d.in_flight(), 200, "1 acknowledged, 2 left");
        assert_eq!(d.acknowledged_beyond_hole(5), 1);
        d.on_cumulative(now + Duration::from_millis(2), 5, 3);
        assert_eq!((d.in_flight(), d.delivered()), (0, 600));
    }

    #[test]
    fn a_resent_segment_gives_no_round_trip_and_una_clears_lost_acks() {
        let now = Instant::now();
        let mut d = Delivery::default();
        for sn in 0..4 {
            d.on_sent(now, 2, sn, 100, false);
        }
        d.on_sent(now + Duration::from_millis(5), 2, 1, 100, false);
        assert_eq!(d.in_flight(), 400, "a resend is not counted twice");
        let sample = d.on_acked(now + Duration::from_millis(6), 2, 1).unwrap();
        assert_eq!(sample.rtt, None);
        d.on_cumulative(now + Duration::from_millis(7), 2, 3);
        assert_eq!((d.in_flight(), d.delivered()), (100, 300));
        d.forget(2);
        assert_eq!(d.in_flight(), 0);
    }
}
