use super::*;

const MSS: usize = 1326;

fn sample(rate: f64, rtt: Duration, prior_delivered: u64) -> RateSample {
    RateSample {
        delivery_rate: rate,
        interval: rtt,
        rtt: Some(rtt),
        prior_delivered,
        app_limited: false,
    }
}

/// A friend that stopped reading for a while: every sample is a
/// trickle. The pacer must still release the smallest window each
/// round trip, or the resends that would end the stretch wait behind
/// a rate of a few bytes a second.
#[test]
fn a_trickle_of_samples_does_not_pace_below_the_smallest_window() {
    let mut clock = (Instant::now(), 0);
    let rtt = Duration::from_millis(40);
    let mut model = Bbr::new(clock.0, MSS);
    rounds_of(&mut model, 4000.0, rtt, 50, &mut clock);
    assert_ne!(model.phase(), Phase::Startup, "the trickle ends startup");
    let floor = (MIN_CWND_SEGMENTS as usize * MSS) as f64 / rtt.as_secs_f64();
    let rate = model.pacing_rate().unwrap();
    assert!(rate >= floor, "paced at {rate} B/s, below {floor}");
}

/// Feeds one acknowledgement a round at `rate`, `rounds` times, a
/// round being `rtt`.
fn rounds_of(model: &mut Bbr, rate: f64, rtt: Duration, rounds: u32, clock: &mut (Instant, u64)) {
    for _ in 0..rounds {
        clock.0 += rtt;
        clock.1 += (rate * rtt.as_secs_f64()) as u64;
        let sample = sample(rate, rtt, clock.1);
        model.on_ack(clock.0, &sample, MSS as u64, clock.1, 0);
    }
}

fn rounds(model: &mut Bbr, rate: f64, rounds: u32, clock: &mut (Instant, u64)) {
    rounds_of(model, rate, Duration::from_millis(40), rounds, clock);
}

/// A receiver that stalled and acknowledged batches at once reads as
/// a path 60% faster; past Startup the estimate takes at most the
/// highest probing gain of it in a probing cycle, however many rounds
/// repeat it.
#[test]
fn a_burst_of_acknowledgements_does_not_raise_the_estimate_past_a_probe() {
    let mut clock = (Instant::now(), 0);
    let mut model = Bbr::new(clock.0, MSS);
    rounds(&mut model, 1e6, 20, &mut clock);
    assert_eq!(model.phase(), Phase::ProbeBandwidth);
    rounds(&mut model, 1.6e6, 3, &mut clock);
    let estimate = model.bandwidth().unwrap();
    assert!(estimate <= 1.25e6 + 1.0, "estimate {estimate}");
}

/// One round of `rtt` that delivers `delivered_rate`, acknowledged at
/// once with a rate sample of `sample_rate`.
fn round_at(
    model: &mut Bbr,
    clock: &mut (Instant, u64),
    rtt: Duration,
    sample_rate: f64,
    delivered_rate: f64,
) {
    let delivered = (delivered_rate * rtt.as_secs_f64()) as u64;
    clock.0 += rtt;
    clock.1 += delivered;
    let sample = sample(sample_rate, rtt, clock.1);
    model.on_ack(clock.0, &sample, delivered, clock.1, 0);
}

/// A model probing a 1 MB/s path of 40 ms, then ten rounds at
/// `rtt_ms`, then six rounds that deliver a tenth less.
fn after_slower_rounds(rtt_ms: u64) -> Bbr {
    let mut clock = (Instant::now(), 0);
    let mut model = Bbr::new(clock.0, MSS);
    rounds(&mut model, 1e6, 20, &mut clock);
    let rtt = Duration::from_millis(rtt_ms);
    for _ in 0..RECENT_RTT_ROUNDS {
        round_at(&mut model, &mut clock, rtt, 1e6, 1e6);
    }
    for _ in 0..6 {
        round_at(&mut model, &mut clock, rtt, 0.9e6, 0.9e6);
    }
    model
}

/// Beside a TCP flow that keeps the buffer full (every round trip
/// 50 ms above the path's 40): the window covers twice the round trip
/// that queue makes, so the sender is not held below its own estimate.
#[test]
fn beside_another_flows_queue_the_window_covers_its_round_trip() {
    let model = after_slower_rounds(90);
    assert!(model.bandwidth().unwrap() >= 1e6 - 1.0);
    let product = (1e6 * 0.090) as u64;
    assert!(model.cwnd() >= 2 * product, "window {}", model.cwnd());
}

/// Loopback: 50 us idle, 100 MB/s. The window holds `SHORT_PATH` of
/// the rate (the round trip under load, not the idle one) and nothing
/// is paced.
#[test]
fn a_short_path_is_windowed_by_its_loaded_round_trip_and_not_paced() {
    let mut clock = (Instant::now(), 0);
    let mut model = Bbr::new(clock.0, MSS);
    rounds_of(&mut model, 1e8, Duration::from_micros(50), 2000, &mut clock);
    assert_eq!(model.phase(), Phase::ProbeBandwidth);
    assert!(model.cwnd() >= 500_000, "window {}", model.cwnd());
    assert_eq!(model.pacing_rate(), None);
    // A round trip below the clock's resolution is as short: paced
    // at a rate measured over intervals of no length, a simulated
    // path with no delay held packets for seconds, and KCP gave up
    // on the link (fault simulator, seed 42).
    let mut model = Bbr::new(clock.0, MSS);
    rounds_of(&mut model, 1e8, Duration::ZERO, 50, &mut clock);
    assert_eq!(model.pacing_rate(), None);
}

/// A model probing a 1 MB/s path of 40 ms, then twenty rounds whose
/// rate samples read 4% fast and that each deliver `delivered_share` of
/// the line, every round trip 7 ms above the path's; returns the pacing
/// rate at a gain of 1.
fn pacing_behind_a_queue_of_7ms(delivered_share: f64) -> f64 {
    let mut clock = (Instant::now(), 0);
    let mut model = Bbr::new(clock.0, MSS);
    rounds(&mut model, 1e6, 20, &mut clock);
    let rtt = Duration::from_millis(47);
    for _ in 0..20 {
        round_at(&mut model, &mut clock, rtt, 1.04e6, delivered_share * 1e6);
    }
    while PROBE_GAINS[model.cycle] != 1.0 {
        model.cycle = (model.cycle + 1) % PROBE_GAINS.len();
    }
    model.pacing_rate().unwrap()
}

/// Alone, an estimate a few percent above the line keeps a queue
/// standing in its buffer, and the echo of every other tunnel waits in
/// it: behind a queue of its own the sender paces below what the rounds
/// deliver, so the queue drains. A round that delivered much less than
/// the estimate is another flow's queue growing, and there the sender
/// keeps its rate, or it would hand that flow the line.
#[test]
fn alone_behind_its_own_queue_the_sender_paces_below_the_line() {
    let alone = pacing_behind_a_queue_of_7ms(1.0);
    assert!(alone < 1e6, "alone: paced at {alone}");
    let beside_a_growing_flow = pacing_behind_a_queue_of_7ms(0.8);
    assert!(
        beside_a_growing_flow >= 1.04e6 * PACING_MARGIN - 1.0,
        "beside another flow: paced at {beside_a_growing_flow}"
    );
}

/// Two busy channels each keep their smallest share (four segments) in
/// flight, so the path's in flight stays at eight segments in ProbeRtt:
/// the model still returns to probing the bandwidth.
#[test]
fn probe_rtt_ends_though_the_channels_keep_more_than_its_window_in_flight() {
    let mut clock = (Instant::now(), 0);
    let mut model = Bbr::new(clock.0, MSS);
    rounds(&mut model, 1e6, 20, &mut clock);
    assert_eq!(model.phase(), Phase::ProbeBandwidth);
    let rtt = Duration::from_millis(50);
    let in_flight = 2 * MIN_CWND_SEGMENTS * MSS as u64;
    let mut entered = None;
    for _ in 0..2000 {
        clock.0 += Duration::from_millis(10);
        clock.1 += MSS as u64;
        model.on_ack(
            clock.0,
            &sample(1e6, rtt, clock.1),
            MSS as u64,
            clock.1,
            in_flight,
        );
        match (model.phase(), entered) {
            (Phase::ProbeRtt, None) => entered = Some(clock.0),
            (Phase::ProbeBandwidth, Some(at)) => {
                let stayed = clock.0 - at;
                assert!(
                    stayed <= rtt + PROBE_RTT_TIME + Duration::from_millis(20),
                    "{stayed:?}"
                );
                return;
            }
            _ => {}
        }
    }
    panic!("entered ProbeRtt at {entered:?} and never left it");
}
