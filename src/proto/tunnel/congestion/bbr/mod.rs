//! A model of a friend's path, BBR-style: the bottleneck's bandwidth (the
//! highest delivery rate of the last rounds) and the round trip without
//! queueing (the lowest of the last 10 s). The sender paces at the
//! bandwidth and keeps 1.4 bandwidth-delay products in flight, so a
//! rate-limited line is filled without building a standing queue in its
//! buffer. Loss is not answered: random loss says nothing about the
//! bottleneck, and loss beside another flow is that flow's overflow as
//! much as ours (the window and the pacing rate are what keep our own
//! queue short). Phases as BBR v1: Startup doubles the rate each round
//! until it stops growing, Drain empties the queue that built, ProbeBw
//! cycles the rate 1.25, 0.75, then six rounds at 1 (all 1% below), and
//! ProbeRtt drops to four segments for 200 ms when the lowest round trip
//! is 10 s old.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use super::delivery::RateSample;
use super::round_window::RoundWindow;

/// 2/ln 2: the smallest gain that doubles the delivery rate every round.
const STARTUP_GAIN: f64 = 2.885;
/// In flight at most this many bandwidth-delay products. BBR takes 2, as
/// room for acknowledgements that arrive in bunches; but then an estimate
/// a quarter too high (bunched acknowledgements again) fills a buffer of
/// one and a half round trips and overflows it. The friend acknowledges
/// every batch at once, so 1.4 is room enough; what it lets queue (0.4 of
/// a product, 16 ms on a 40 ms path) is what an interactive tunnel beside
/// a bulk one waits behind.
const CWND_GAIN: f64 = 1.4;
/// Beside another flow's queue: BBR's gain, over the round trip it makes.
const CONTESTED_CWND_GAIN: f64 = 2.0;
/// A queue this much above the path's round trip (or half of it, if
/// more), in every round of the last ten, is another flow's.
const CONTESTED_MIN_QUEUE: Duration = Duration::from_millis(10);
const PROBE_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Probing paces this much below the estimate, as BBR v3 does
/// (doc/tunnels.md, pacing: a queue grew each cycle at 1).
const PACING_MARGIN: f64 = 0.99;
/// Alone behind a queue that stood every round of the last ten, the
/// estimate is above the line (rate samples over a round trip read a few
/// percent fast when acknowledgements are batched on the way): pacing is
/// this far below it until a round trip is the path's own again.
const OWN_QUEUE_MARGIN: f64 = 0.95;
/// The queue is ours alone while a round delivers this share of the
/// estimate; another flow's growing queue takes its share from ours.
const OWN_QUEUE_DELIVERY: f64 = 0.9;
/// A queue that stood this long in every round is not jitter: the
/// friend acknowledges within a millisecond.
const OWN_QUEUE_MIN: Duration = Duration::from_millis(5);
/// The bandwidth estimate is the highest sample of this many rounds.
const BANDWIDTH_ROUNDS: u64 = 10;
const MIN_RTT_LIFETIME: Duration = Duration::from_secs(10);
/// The recent round trip is the lowest of this many rounds: one probing
/// cycle and two rounds more.
const RECENT_RTT_ROUNDS: u64 = 10;
/// A shorter path's window is sized by this, and it is not paced.
const SHORT_PATH: Duration = Duration::from_millis(20);
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Startup ends when three rounds in a row grow the bandwidth by less
/// than a quarter.
const FULL_GROWTH: f64 = 1.25;
const FULL_ROUNDS: u32 = 3;
/// Segments in flight at least, and at first.
const MIN_CWND_SEGMENTS: u64 = 4;
const INITIAL_CWND_SEGMENTS: u64 = 32;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Startup,
    Drain,
    ProbeBandwidth,
    ProbeRtt,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Drain => "drain",
            Phase::ProbeBandwidth => "probe bandwidth",
            Phase::ProbeRtt => "probe rtt",
        }
    }
}

#[derive(Debug)]
pub struct Bbr {
    phase: Phase,
    /// A whole segment as it counts in flight (header and payload), for
    /// the windows' floors: measured in payloads, four segments in flight
    /// exceeded a window of four, and ProbeRtt waited for a drain that a
    /// steady sender never makes.
    mss: u64,
    /// (round, rate) pairs, rates falling: the front is the maximum.
    bandwidth: RoundWindow<f64>,
    min_rtt: Option<(Duration, Instant)>,
    /// (round, round trip) pairs, rising: the front is the lowest of the
    /// last `RECENT_RTT_ROUNDS`.
    recent_rtt: RoundWindow<Duration>,
    round: u64,
    round_ends_at: u64,
    /// This round so far: when it started, and what had been delivered
    /// then.
    round_started: Option<(Instant, u64)>,
    /// The last round delivered `OWN_QUEUE_DELIVERY` of the estimate.
    round_kept_up: bool,
    /// The estimate when this probing cycle started.
    cycle_start_bandwidth: Option<f64>,
    full_bandwidth: f64,
    full_rounds: u32,
    filled: bool,
    cycle: usize,
    cycle_started: Instant,
    probe_rtt_until: Option<Instant>,
    probe_rtt_entered: Instant,
    cwnd: u64,
}

impl Bbr {
    pub fn new(now: Instant, mss: usize) -> Self {
        let mss = mss as u64;
        Bbr {
            phase: Phase::Startup,
            mss,
            bandwidth: RoundWindow::new(BANDWIDTH_ROUNDS, Ordering::Greater),
            min_rtt: None,
            recent_rtt: RoundWindow::new(RECENT_RTT_ROUNDS, Ordering::Less),
            round: 0,
            round_ends_at: 0,
            round_started: None,
            round_kept_up: false,
            cycle_start_bandwidth: None,
            full_bandwidth: 0.0,
            full_rounds: 0,
            filled: false,
            cycle: 2,
            cycle_started: now,
            probe_rtt_until: None,
            probe_rtt_entered: now,
            cwnd: INITIAL_CWND_SEGMENTS * mss,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn set_mss(&mut self, mss: usize) {
        self.mss = mss as u64;
    }

    /// Bytes a second the path delivers, as estimated.
    pub fn bandwidth(&self) -> Option<f64> {
        self.bandwidth.best()
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(|(rtt, _)| rtt)
    }

    /// Bytes that may be in flight.
    pub fn cwnd(&self) -> u64 {
        if self.phase == Phase::ProbeRtt {
            return MIN_CWND_SEGMENTS * self.mss;
        }
        self.cwnd
    }

    /// Bytes a second to pace at; None before there is a model (the
    /// window alone holds the sender back).
    pub fn pacing_rate(&self) -> Option<f64> {
        let gain = match self.phase {
            Phase::Startup => STARTUP_GAIN,
            Phase::Drain => 1.0 / STARTUP_GAIN,
            Phase::ProbeBandwidth if self.own_queue() => PROBE_GAINS[self.cycle] * OWN_QUEUE_MARGIN,
            Phase::ProbeBandwidth => PROBE_GAINS[self.cycle] * PACING_MARGIN,
            Phase::ProbeRtt => 1.0,
        };
        let rtt = self.min_rtt().filter(|rtt| !rtt.is_zero());
        // Never slower than the smallest window a round trip: a model fed
        // by a slow stretch (a friend that stopped reading) must still let
        // the sender out of it, resends included.
        let floor = rtt.map_or(0.0, |rtt| {
            (MIN_CWND_SEGMENTS * self.mss) as f64 / rtt.as_secs_f64()
        });
        match (self.bandwidth(), rtt) {
            // There the rate a node keeps up with is its CPU's, not a
            // line's, and pacing at the estimate held the sender below it.
            // A round trip of zero (below the clock's resolution) is short.
            (Some(_), _) if self.min_rtt().is_some_and(|rtt| rtt < SHORT_PATH) => None,
            (Some(rate), _) if rate > 0.0 => Some((gain * rate).max(floor)),
            (_, Some(rtt)) => Some(gain * self.cwnd as f64 / rtt.as_secs_f64()),
            _ => None,
        }
    }

    /// The product the window is sized by: over the path's round trip,
    /// but never less than `SHORT_PATH`. A friend answers each batch it
    /// reads at once and a busy node reads in batches, so under load on a
    /// short path (loopback, a LAN) the round trip is many times the idle
    /// one: a window of the idle one held a loopback tunnel to an eighth
    /// of its speed, one of 5 ms a hundred tunnels to half of theirs. On
    /// a LAN whose link is slower than its nodes, the window lets 30 ms
    /// queue there, as a TCP flow would.
    fn window_bdp(&self) -> Option<u64> {
        let rate = self.bandwidth()?;
        let path = self.min_rtt()?;
        let delay = path.max(SHORT_PATH);
        Some((rate * delay.as_secs_f64()) as u64)
    }

    fn bdp(&self) -> Option<u64> {
        let rate = self.bandwidth()?;
        let rtt = self.min_rtt()?;
        Some((rate * rtt.as_secs_f64()) as u64)
    }

    /// The lowest round trip of the last rounds, or the path's own if
    /// higher: no acknowledgement comes back sooner than this now.
    pub fn recent_round_trip(&self) -> Option<Duration> {
        let recent = self.recent_rtt.best().unwrap_or(Duration::ZERO);
        Some(self.min_rtt()?.max(recent))
    }

    /// An acknowledgement: `acked` bytes newly delivered, `delivered` in
    /// all so far, `in_flight` left.
    pub fn on_ack(
        &mut self,
        now: Instant,
        sample: &RateSample,
        acked: u64,
        delivered: u64,
        in_flight: u64,
    ) {
        // A segment sent more than once says nothing of when it left: if
        // the acknowledgement answers the first send (KCP resends early),
        // its round would end at once and its rate would be a burst's.
        let resent = sample.rtt.is_none();
        let round_start = !resent && sample.prior_delivered >= self.round_ends_at;
        if round_start {
            self.end_round(now, delivered);
            self.round += 1;
            self.round_ends_at = delivered;
        }
        if !resent {
            self.note_bandwidth(sample);
        }
        let expired = self
            .min_rtt
            .is_some_and(|(_, at)| now >= at + MIN_RTT_LIFETIME);
        if let Some(rtt) = sample.rtt {
            self.recent_rtt.note(self.round, rtt);
            if expired || self.min_rtt.is_none_or(|(min, _)| rtt <= min) {
                self.min_rtt = Some((rtt, now));
            }
        }
        if round_start && !self.filled {
            self.check_full(sample.app_limited);
        }
        self.advance_phase(now, in_flight);
        if expired && self.phase != Phase::ProbeRtt {
            // The lowest round trip is old: drain the queue to see the
            // path's own again (another flow may have been filling it).
            self.phase = Phase::ProbeRtt;
            self.probe_rtt_until = None;
            self.probe_rtt_entered = now;
        }
        self.grow_cwnd(acked);
    }

    fn end_round(&mut self, now: Instant, delivered: u64) {
        let Some((started, delivered_then)) = self.round_started.replace((now, delivered)) else {
            return;
        };
        let took = now.saturating_duration_since(started);
        let round_rate = match took.is_zero() {
            true => 0.0,
            false => (delivered - delivered_then) as f64 / took.as_secs_f64(),
        };
        let estimate = self.bandwidth().unwrap_or(0.0);
        self.round_kept_up = round_rate >= OWN_QUEUE_DELIVERY * estimate;
    }

    /// Whether every round trip of the last rounds waited more than
    /// `least(path's round trip)` in a queue.
    fn queue_above(&self, least: impl Fn(Duration) -> Duration) -> bool {
        let (Some(path), Some(recent)) = (self.min_rtt(), self.recent_rtt.best()) else {
            return false;
        };
        recent > path + least(path)
    }

    /// Whether the queue that builds is ours alone: past Startup, with no
    /// other flow's standing or growing beside it.
    fn own_queue(&self) -> bool {
        self.filled
            && self.round_kept_up
            && self.phase == Phase::ProbeBandwidth
            && self.queue_above(|_| OWN_QUEUE_MIN)
            && !self.contested()
    }

    fn note_bandwidth(&mut self, sample: &RateSample) {
        let rate = sample.delivery_rate;
        if sample.app_limited && self.bandwidth().is_some_and(|max| rate < max) {
            return;
        }
        // Over less than a round trip, a burst of acknowledgements (the
        // friend's, sent together after a batch) looks like a faster path.
        if self.min_rtt().is_some_and(|rtt| sample.interval < rtt) {
            return;
        }
        // Past Startup, nothing is sent faster than the highest probing
        // gain over the estimate: a sample above that is acknowledgements
        // compressed on their way (a receiver or relay that stalled and
        // sent a batch at once), and an estimate that took it would
        // overflow the bottleneck's buffer for ten rounds.
        let most = self
            .cycle_start_bandwidth
            .filter(|_| self.filled)
            .map_or(f64::INFINITY, |bandwidth| bandwidth * PROBE_GAINS[0]);
        self.bandwidth.note(self.round, rate.min(most));
    }

    fn check_full(&mut self, app_limited: bool) {
        let Some(rate) = self.bandwidth() else { return };
        if app_limited {
            return;
        }
        if rate >= self.full_bandwidth * FULL_GROWTH {
            self.full_bandwidth = rate;
            self.full_rounds = 0;
            return;
        }
        self.full_rounds += 1;
        if self.full_rounds >= FULL_ROUNDS {
            self.filled = true;
        }
    }

    fn advance_phase(&mut self, now: Instant, in_flight: u64) {
        let min_rtt = self.min_rtt().unwrap_or(Duration::ZERO);
        match self.phase {
            Phase::Startup if self.filled => self.phase = Phase::Drain,
            Phase::Drain if self.bdp().is_none_or(|bdp| in_flight <= bdp) => {
                self.start_probing_bandwidth(now)
            }
            Phase::ProbeBandwidth => {
                let gain = PROBE_GAINS[self.cycle];
                // Beside another flow's queue a round takes longer than the
                // path's round trip; a probe shorter than the round is
                // diluted in every rate sample of it.
                let length = match self.contested() {
                    true => self.recent_round_trip().unwrap_or(min_rtt),
                    false => min_rtt,
                };
                let elapsed = now.saturating_duration_since(self.cycle_started) >= length;
                // Probing down ends as soon as the queue it was for is gone.
                let drained = gain < 1.0 && self.bdp().is_some_and(|bdp| in_flight <= bdp);
                if elapsed || drained {
                    self.cycle = (self.cycle + 1) % PROBE_GAINS.len();
                    if self.cycle == 0 {
                        self.cycle_start_bandwidth = self.bandwidth();
                    }
                    self.cycle_started = now;
                }
            }
            Phase::ProbeRtt => {
                // Each busy channel keeps its smallest share in flight, so
                // with several the path's in flight never falls to the
                // smallest window: the hold then starts a round trip in,
                // or the sender stayed at four segments until all but one
                // channel went quiet (0.5 Mbit/s beside TCP on a 10 Mbit/s
                // line for a whole download).
                let drained = in_flight <= self.cwnd();
                let tried = now.saturating_duration_since(self.probe_rtt_entered) >= min_rtt;
                if self.probe_rtt_until.is_none() && (drained || tried) {
                    self.probe_rtt_until = Some(now + PROBE_RTT_TIME.max(min_rtt));
                }
                if self.probe_rtt_until.is_some_and(|until| now >= until) {
                    self.probe_rtt_until = None;
                    if let Some((rtt, _)) = self.min_rtt {
                        self.min_rtt = Some((rtt, now));
                    }
                    if self.filled {
                        self.start_probing_bandwidth(now);
                    } else {
                        self.phase = Phase::Startup;
                    }
                }
            }
            _ => {}
        }
    }

    fn start_probing_bandwidth(&mut self, now: Instant) {
        self.phase = Phase::ProbeBandwidth;
        self.cycle = 2;
        self.cycle_start_bandwidth = self.bandwidth();
        self.cycle_started = now;
    }

    /// Whether another flow holds a queue at the bottleneck: every round
    /// trip of the last rounds waited half the path's own (at least
    /// 10 ms) more. Alone, the window lets at most 0.4 of a product queue,
    /// and each probing cycle drains some of it, so this stays false;
    /// beside a TCP flow that keeps the buffer full it holds.
    fn contested(&self) -> bool {
        self.filled
            && self.phase == Phase::ProbeBandwidth
            && self.queue_above(|path| (path / 2).max(CONTESTED_MIN_QUEUE))
    }

    /// The window's gain and the product it multiplies. Contested, the
    /// window is sized by the round trip the other flow's queue makes, as
    /// BBR's is: one of the empty path's round trip held the sender below
    /// its own estimate there, every rate sample fell short of the last,
    /// and the estimate fell to a tenth of the line.
    fn window_target(&self) -> (f64, Option<u64>) {
        if self.contested() {
            let product = self
                .bandwidth()
                .zip(self.recent_round_trip())
                .map(|(rate, rtt)| (rate * rtt.as_secs_f64()) as u64);
            return (CONTESTED_CWND_GAIN, product);
        }
        let gain = if self.filled { CWND_GAIN } else { STARTUP_GAIN };
        (gain, self.window_bdp())
    }

    fn grow_cwnd(&mut self, acked: u64) {
        let floor = MIN_CWND_SEGMENTS * self.mss;
        let (gain, bdp) = self.window_target();
        let Some(bdp) = bdp else {
            self.cwnd += acked;
            return;
        };
        // Room for the acknowledgements KCP holds back and sends together.
        let target = (gain * bdp as f64) as u64 + 3 * self.mss;
        self.cwnd = match self.filled {
            true => (self.cwnd + acked).min(target),
            false if self.cwnd < target => self.cwnd + acked,
            false => self.cwnd,
        };
        self.cwnd = self.cwnd.max(floor);
    }
}

#[cfg(test)]
mod tests;
