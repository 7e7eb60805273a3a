//! What is in flight on a friend's path and how fast it is delivered: on
//! each acknowledgement, a rate sample (bytes delivered over the time they
//! took, as BBR's delivery rate estimation defines it) and a round-trip
//! sample. Segments are known by (conv, sn), read from the packets that
//! leave and the acknowledgements that come back.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;
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

/// One channel's segments as KCP's window counts them: from the first the
/// friend lacks (`una`) to one past the highest sent (`top`), of which
/// `in_flight` are not yet acknowledged.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    top: u32,
    una: u32,
    in_flight: u32,
}

/// Whether sequence number `a` comes after `b` (they wrap).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[derive(Debug, Default)]
pub struct Delivery {
    in_flight: BTreeMap<(u32, u32), Sent>,
    /// Segments the friend acknowledged beyond the first it lacks.
    acked: BTreeSet<(u32, u32)>,
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
        self.in_flight.get(&(conv, sn)).map(|sent| sent.at)
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
        // A resend that waited in the pacer while the friend's
        // acknowledgement arrived: already delivered, and counting it
        // again would report bytes the path never carried.
        let delivered_already = self.acked.contains(&(conv, sn))
            || self
                .spans
                .get(&conv)
                .is_some_and(|span| after(span.una, sn));
        if delivered_already {
            return;
        }
        if self.in_flight.is_empty() {
            // Nothing in flight: the next interval starts now, not at the
            // last acknowledgement before the pause.
            self.first_sent_at = Some(now);
            self.delivered_at = Some(now);
        }
        let resent = match self.in_flight.remove(&(conv, sn)) {
            Some(before) => {
                self.in_flight_bytes -= before.bytes as u64;
                self.resent += 1;
                true
            }
            None => false,
        };
        let span = self.spans.entry(conv).or_default();
        if !resent {
            span.in_flight += 1;
        }
        if after(sn.wrapping_add(1), span.top) {
            span.top = sn.wrapping_add(1);
        }
        self.in_flight.insert(
            (conv, sn),
            Sent {
                bytes,
                at: now,
                resent,
                delivered: self.delivered,
                delivered_at: self.delivered_at.unwrap_or(now),
                first_sent_at: self.first_sent_at.unwrap_or(now),
                app_limited,
            },
        );
        self.in_flight_bytes += bytes as u64;
    }

    /// The friend acknowledged segment `sn` of `conv`.
    pub fn on_acked(&mut self, now: Instant, conv: u32, sn: u32) -> Option<RateSample> {
        let sent = self.in_flight.remove(&(conv, sn))?;
        self.acked.insert((conv, sn));
        self.in_flight_bytes -= sent.bytes as u64;
        if let Some(span) = self.spans.get_mut(&conv) {
            span.in_flight -= 1;
        }
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
        let below = (conv, 0)..(conv, una);
        let delivered = self.take_in_flight(below.clone());
        if delivered > 0 {
            self.delivered += delivered;
            self.delivered_at = Some(now);
        }
        if let Some(span) = self.spans.get_mut(&conv) {
            if after(una, span.una) {
                span.una = una;
            }
        }
        self.forget_acked(below);
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
        let all = (conv, 0)..=(conv, u32::MAX);
        self.take_in_flight(all.clone());
        self.forget_acked(all);
        self.spans.remove(&conv);
    }

    /// Takes the segments in `keys` out of flight; their bytes.
    fn take_in_flight(&mut self, keys: impl RangeBounds<(u32, u32)>) -> u64 {
        let taken: Vec<(u32, u32)> = self.in_flight.range(keys).map(|(key, _)| *key).collect();
        let mut bytes = 0;
        for key in taken {
            if let Some(sent) = self.in_flight.remove(&key) {
                bytes += sent.bytes as u64;
                if let Some(span) = self.spans.get_mut(&key.0) {
                    span.in_flight -= 1;
                }
            }
        }
        self.in_flight_bytes -= bytes;
        bytes
    }

    fn forget_acked(&mut self, keys: impl RangeBounds<(u32, u32)> + Clone) {
        while let Some(&key) = self.acked.range(keys.clone()).next() {
            self.acked.remove(&key);
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
