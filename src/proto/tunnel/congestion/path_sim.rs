//! The controller against a simulated line: a bottleneck of a given rate
//! with a drop-tail buffer, a fixed delay each way, random loss, and a
//! receiver that reads in batches and answers each in one packet, as
//! KCP does. Deterministic (a seeded generator), so a test asserts on
//! exact behaviour.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::pacer::Pacer;
use super::PathControl;
use crate::proto::tunnel::segments::{CMD_ACK, CMD_PUSH, KCP_HEADER};

pub const MSS: usize = 1326;
const CONV: u32 = 7;
const READ_BATCH: Duration = Duration::from_millis(1);
const SEND_WINDOW: u32 = 2048;
const RETRANSMISSION_TIMEOUT: Duration = Duration::from_millis(300);

pub struct Line {
    pub rate: f64,
    pub buffer: Duration,
    pub delay: Duration,
    pub loss_percent: u64,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Bytes delivered a second over the measured span.
    pub goodput: f64,
    /// Time packets waited in the bottleneck's buffer: mean and worst.
    pub mean_queue: Duration,
    pub worst_queue: Duration,
    pub dropped: u64,
}

/// A KCP segment; `una`: the first one the sender of it lacks.
pub fn segment(cmd: u8, sn: u32, una: u32, len: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(KCP_HEADER + len);
    s.extend_from_slice(&CONV.to_le_bytes());
    s.extend_from_slice(&[cmd, 0, 0, 1]);
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&sn.to_le_bytes());
    s.extend_from_slice(&una.to_le_bytes());
    s.extend_from_slice(&(len as u32).to_le_bytes());
    s.resize(KCP_HEADER + len, 0);
    s
}

/// Runs a bulk sender for `run`, measuring from `measure_from`. `paced`
/// false: the window alone (the configured 2048 segments) and no pacing,
/// as without congestion control.
pub fn run(line: &Line, paced: bool, run: Duration, measure_from: Duration) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut control = PathControl::new(now, MSS + KCP_HEADER);
    let mut pacer = Pacer::default();
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_sn = 0u32;
    // Segments not yet acknowledged, with when they last left.
    let mut unacked: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut resend: VecDeque<u32> = VecDeque::new();
    // The bottleneck: when its last packet leaves; acknowledgements on
    // their way back, by arrival time.
    let mut line_free = start;
    let mut acks: BTreeMap<(Instant, u32), ()> = BTreeMap::new();
    // What the friend has: every segment below `first_missing`, and these.
    let mut received: BTreeSet<u32> = BTreeSet::new();
    let mut first_missing = 1u32;
    let mut outcome = Outcome::default();
    let (mut delivered, mut queued_packets, mut queue_total) = (0u64, 0u64, Duration::ZERO);
    while now < start + run {
        let window = if paced {
            control.model().cwnd() as usize
        } else {
            SEND_WINDOW as usize * MSS
        };
        // Lost segments go again whatever the window (as KCP's do), new
        // ones up to it.
        // Each restarts its timer now, while it waits in the pacer.
        while let Some(sn) = resend.pop_front() {
            unacked.insert(sn, now);
            pacer.push(Some(CONV), segment(CMD_PUSH, sn, 0, MSS));
        }
        // KCP sends no further ahead of the first segment the friend
        // lacks than its send window.
        let una = unacked.keys().next().copied().unwrap_or(next_sn + 1);
        while (control.in_flight() as usize) + pacer.queued_bytes() < window
            && next_sn + 1 - una < SEND_WINDOW
        {
            next_sn += 1;
            pacer.push(Some(CONV), segment(CMD_PUSH, next_sn, 0, MSS));
        }
        let rate = paced.then(|| control.model().pacing_rate()).flatten();
        while let Some(packet) = pacer.pop(now, rate) {
            control.on_sent(now, &packet, false);
            let sn = u32::from_le_bytes(packet[12..16].try_into().unwrap());
            unacked.insert(sn, now);
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let waited = line_free.saturating_duration_since(now);
            if waited > line.buffer || random % 100 < line.loss_percent {
                outcome.dropped += u64::from(waited > line.buffer);
                continue;
            }
            line_free =
                line_free.max(now) + Duration::from_secs_f64(packet.len() as f64 / line.rate);
            if now >= start + measure_from {
                queued_packets += 1;
                queue_total += waited;
                outcome.worst_queue = outcome.worst_queue.max(waited);
            }
            // The friend reads in batches of a millisecond.
            let arrival = line_free + line.delay - start;
            let batches = (arrival.as_nanos() / READ_BATCH.as_nanos()) as u32 + 1;
            let read_at = start + READ_BATCH * batches;
            acks.insert((read_at + line.delay, sn), ());
        }
        let next_ack = acks.keys().next().map(|(at, _)| *at);
        let next_release = pacer.next_due(now, rate).filter(|&due| due > now);
        let next_timeout = unacked
            .iter()
            .filter(|(sn, _)| !resend.contains(sn))
            .map(|(_, &at)| at + RETRANSMISSION_TIMEOUT)
            .min();
        let Some(next) = [next_ack, next_release, next_timeout]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        now = next;
        // The friend answers what it read in one packet, each
        // acknowledgement also saying the first segment it still lacks,
        // as KCP's does.
        let mut answer = Vec::new();
        while let Some((&(at, sn), _)) = acks.iter().next() {
            if at > now {
                break;
            }
            acks.remove(&(at, sn));
            if sn >= first_missing {
                received.insert(sn);
            }
            while received.remove(&first_missing) {
                first_missing += 1;
            }
            answer.push(sn);
            if let Some(sent) = unacked.remove(&sn) {
                if now >= start + measure_from {
                    delivered += MSS as u64;
                }
                // Three later segments sent no earlier arrived: what is
                // still missing below them was lost.
                let lost: Vec<u32> = unacked
                    .range(..sn.saturating_sub(2))
                    .filter(|(_, &at)| at <= sent)
                    .map(|(&missing, _)| missing)
                    .collect();
                for missing in lost {
                    if !resend.contains(&missing) {
                        resend.push_back(missing);
                    }
                }
            }
        }
        let packet: Vec<u8> = answer
            .iter()
            .flat_map(|&sn| segment(CMD_ACK, sn, first_missing, 0))
            .collect();
        control.on_received(now, &packet);
        // A tail loss has no later segment to reveal it: the timer does,
        // as KCP's does.
        let timed_out: Vec<u32> = unacked
            .iter()
            .filter(|(sn, &at)| at + RETRANSMISSION_TIMEOUT <= now && !resend.contains(sn))
            .map(|(&sn, _)| sn)
            .collect();
        resend.extend(timed_out);
    }
    let measured = run - measure_from;
    outcome.goodput = delivered as f64 / measured.as_secs_f64();
    outcome.mean_queue = queue_total / queued_packets.max(1) as u32;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT: f64 = 1e6 / 8.0;

    fn line(mbit: f64, loss_percent: u64) -> Line {
        Line {
            rate: mbit * MBIT,
            buffer: Duration::from_millis(60),
            delay: Duration::from_millis(20),
            loss_percent,
        }
    }

    fn bulk(line: &Line, paced: bool) -> Outcome {
        run(line, paced, Duration::from_secs(12), Duration::from_secs(4))
    }

    /// The queue stays under a third of the buffer: at 10 Mbit/s a
    /// friend's 1 ms batches read the line a percent or two fast, and
    /// what probing's 1% margin does not absorb waits there (17 ms).
    #[test]
    fn a_rate_limited_line_is_filled_with_a_short_queue() {
        for mbit in [10.0, 20.0, 100.0] {
            let line = line(mbit, 0);
            let paced = bulk(&line, true);
            println!("{mbit} Mbit/s paced: {paced:?}");
            assert!(paced.goodput >= 0.9 * line.rate, "{mbit} Mbit/s: {paced:?}");
            assert!(
                paced.mean_queue <= Duration::from_millis(20),
                "{mbit} Mbit/s: {paced:?}"
            );
            // Without the controller the same sender fills the buffer
            // (and empties it only while its window waits on a hole).
            let unpaced = bulk(&line, false);
            println!("{mbit} Mbit/s unpaced: {unpaced:?}");
            assert!(
                unpaced.worst_queue >= line.buffer - Duration::from_millis(1),
                "{mbit}: {unpaced:?}"
            );
        }
    }

    /// Startup doubles the rate each round trip: 100 Mbit/s from a
    /// window of 32 segments in 40 ms rounds is seven rounds away, and
    /// from 300 ms on the line is full.
    #[test]
    fn startup_fills_the_line_in_a_few_round_trips() {
        let line = line(100.0, 0);
        let outcome = run(
            &line,
            true,
            Duration::from_millis(700),
            Duration::from_millis(300),
        );
        println!("{outcome:?}");
        assert!(outcome.goodput >= 0.9 * line.rate, "{outcome:?}");
    }

    #[test]
    fn random_loss_does_not_slow_it() {
        for mbit in [10.0, 20.0, 100.0] {
            let line = line(mbit, 1);
            let outcome = bulk(&line, true);
            println!("{mbit} Mbit/s, 1% loss: {outcome:?}");
            assert!(
                outcome.goodput >= 0.7 * line.rate,
                "{mbit} Mbit/s: {outcome:?}"
            );
        }
    }
}
