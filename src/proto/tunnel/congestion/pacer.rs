//! The packets of one friend's path on their way out: each channel's in
//! its own queue, served in turn, so an interactive tunnel never waits
//! behind a bulk one's backlog; released at the pacing rate with a small
//! burst, so the path's bottleneck sees a steady flow rather than runs of
//! datagrams. Packets without data (acknowledgements, window probes) go
//! at once: holding them back would slow the friend's sending, not ours.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Bytes released back to back at most: `BURST_TIME` at the rate, and
/// never less than this.
const MIN_BURST: f64 = 3000.0;
/// The runtime's timer has a resolution of a millisecond and wakes late
/// by up to that: a bucket that held less than the time between wake-ups
/// threw away what it could not hold, and the pacer sent a third below
/// its rate (a 40 ms path moved half what it did unpaced).
const BURST_TIME: f64 = 0.004;
/// A wake-up is asked for once this much of the rate is due.
const WAKE_TIME: f64 = 0.001;

#[derive(Debug, Default)]
pub struct Pacer {
    queues: BTreeMap<u32, VecDeque<Vec<u8>>>,
    /// Channels with packets waiting, in the order they are served.
    turns: VecDeque<u32>,
    unpaced: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Bytes that may leave now; below zero, what the last release
    /// borrowed.
    tokens: f64,
    refilled: Option<Instant>,
}

fn burst(rate: f64) -> f64 {
    (rate * BURST_TIME).max(MIN_BURST)
}

impl Pacer {
    /// Queues a packet of channel `conv`; None: one that goes at once.
    pub fn push(&mut self, conv: Option<u32>, packet: Vec<u8>) {
        let Some(conv) = conv else {
            self.unpaced.push_back(packet);
            return;
        };
        self.queued_bytes += packet.len();
        let queue = self.queues.entry(conv).or_default();
        if queue.is_empty() {
            self.turns.push_back(conv);
        }
        queue.push_back(packet);
    }

    /// Bytes waiting for their turn.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Drops what channel `conv` has waiting (it was reset or closed).
    pub fn forget(&mut self, conv: u32) {
        if let Some(queue) = self.queues.remove(&conv) {
            self.queued_bytes -= queue.iter().map(Vec::len).sum::<usize>();
            self.turns.retain(|&c| c != conv);
        }
    }

    fn refill(&mut self, now: Instant, rate: f64) {
        self.tokens = match self.refilled {
            Some(at) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                (self.tokens + rate * elapsed).min(burst(rate))
            }
            None => burst(rate),
        };
        self.refilled = Some(now);
    }

    /// The next packet that may leave now, at `rate` bytes a second (None:
    /// unpaced), next channel's turn first.
    pub fn pop(&mut self, now: Instant, rate: Option<f64>) -> Option<Vec<u8>> {
        if let Some(packet) = self.unpaced.pop_front() {
            return Some(packet);
        }
        if self.turns.is_empty() {
            return None;
        }
        if let Some(rate) = rate {
            self.refill(now, rate);
            if self.tokens <= 0.0 {
                return None;
            }
        }
        let conv = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&conv)?;
        let packet = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&conv);
        } else {
            self.turns.push_back(conv);
        }
        self.queued_bytes -= packet.len();
        if rate.is_some() {
            self.tokens -= packet.len() as f64;
        }
        Some(packet)
    }

    /// When `pop` will next release something at `rate`: once `WAKE_TIME`
    /// of it (or all that waits) is due, so each wake-up sends a few
    /// packets.
    pub fn next_due(&self, now: Instant, rate: Option<f64>) -> Option<Instant> {
        if !self.unpaced.is_empty() {
            return Some(now);
        }
        if self.turns.is_empty() {
            return None;
        }
        let (Some(rate), Some(refilled)) = (rate, self.refilled) else {
            return Some(now);
        };
        let wanted = (rate * WAKE_TIME)
            .max(MIN_BURST / 2.0)
            .min(self.queued_bytes as f64);
        let short = (wanted - self.tokens).max(0.0);
        Some(refilled + Duration::from_secs_f64(short / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_take_turns_and_acknowledgements_go_first() {
        let now = Instant::now();
        let mut pacer = Pacer::default();
        for i in 0..5u8 {
            pacer.push(Some(1), vec![1, i]);
        }
        pacer.push(Some(2), vec![2, 0]);
        pacer.push(None, vec![0]);
        let order: Vec<Vec<u8>> = std::iter::from_fn(|| pacer.pop(now, None)).collect();
        assert_eq!(order[0], vec![0], "the acknowledgement went first");
        assert_eq!(order[1], vec![1, 0]);
        assert_eq!(
            order[2],
            vec![2, 0],
            "the second channel's only packet went second"
        );
        assert_eq!(order.len(), 7);
        assert_eq!(pacer.queued_bytes(), 0);
    }

    /// Pushes `count` packets of `size` bytes and releases them all at
    /// `rate`, each wake-up `lateness` after the one asked for; the time
    /// it took.
    fn release_all(count: usize, size: usize, rate: f64, lateness: Duration) -> Duration {
        let start = Instant::now();
        let mut pacer = Pacer::default();
        for _ in 0..count {
            pacer.push(Some(1), vec![0; size]);
        }
        let mut now = start;
        let mut sent = 0;
        while sent < count {
            while pacer.pop(now, Some(rate)).is_some() {
                sent += 1;
            }
            if sent < count {
                let due = pacer.next_due(now, Some(rate)).unwrap();
                assert!(due > now, "a wake-up that releases nothing");
                now = due + lateness;
            }
        }
        now - start
    }

    #[test]
    fn release_follows_the_rate() {
        // 1 MB/s: a million bytes take a second, give or take a burst.
        let took = release_all(1000, 1000, 1e6, Duration::ZERO);
        assert!(
            took > Duration::from_millis(990) && took < Duration::from_millis(1010),
            "{took:?}"
        );
    }

    /// Every wake-up a millisecond later than asked, as the runtime's
    /// timer may: the lateness is made up, not lost.
    #[test]
    fn late_wake_ups_keep_the_rate() {
        // 12.5 MB/s (100 Mbit/s): the 12.5 MB take a second.
        let took = release_all(10_000, 1250, 12.5e6, Duration::from_millis(1));
        assert!(took < Duration::from_millis(1020), "{took:?}");
    }
}
