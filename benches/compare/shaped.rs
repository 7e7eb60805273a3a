//! Downloads over a shaped path, as users' lines are: host B fetches from
//! host A across a router that delays every packet 20 ms each way and
//! limits the A-to-B direction to a rate with 60 ms of queue (`tc tbf`).
//! Each subject alone, against one plain TCP download sharing the line,
//! with 1% random loss, and a 64-byte echo on a second tunnel while a
//! download runs.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::netns::{within, NatKind, World, HOST_A_IP};
use crate::common::traffic::echo_server_at;
use crate::measure::{endless_source, goodput_mbit, middle, percentile, pings};
use crate::subjects::{self, Path, Subject};

pub const RATES_MBIT: [u64; 3] = [10, 20, 100];
const DELAY: Duration = Duration::from_millis(20);
const BUFFER: Duration = Duration::from_millis(60);
const LOSS_PERCENT: f64 = 1.0;
const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(6);
const PING_EVERY: Duration = Duration::from_millis(20);
const IDLE_PINGS: Duration = Duration::from_secs(2);

/// What one subject did at one rate.
#[derive(Debug, Clone, Default)]
pub struct ShapedColumn {
    pub alone: f64,
    /// This subject's goodput and the plain TCP flow's, sharing the line.
    pub against_tcp: (f64, f64),
    pub lossy: f64,
    /// Echo p50 and p99, idle and during a download.
    pub echo_idle: (Duration, Duration),
    pub echo_busy: (Duration, Duration),
}

pub const SUBJECTS: [&str; 3] = ["direct TCP", "toxtun", "kcptun"];

/// Whether subject `index` is measured: all of them, unless `only=` names
/// some by their first word (`only=toxtun`, `only=direct,toxtun`).
fn chosen(index: usize) -> bool {
    let first_word = |name: &str| name.split(' ').next().unwrap_or("").to_lowercase();
    std::env::args()
        .find_map(|a| a.strip_prefix("only=").map(str::to_string))
        .is_none_or(|only| only.split(',').any(|n| n == first_word(SUBJECTS[index])))
}

/// toxtun's `[kcp]` section: `mode=NAME` picks a preset to measure
/// (`mode=fast3`); the default mode otherwise.
fn kcp_mode() -> String {
    std::env::args()
        .find_map(|a| {
            a.strip_prefix("mode=")
                .map(|m| format!("[kcp]\nmode = {m}\n"))
        })
        .unwrap_or_default()
}

/// One column per subject, in `SUBJECTS` order (left at zero for those
/// `only=` leaves out).
pub fn measure_rate(rate_mbit: u64) -> Vec<ShapedColumn> {
    let mut columns = vec![ShapedColumn::default(); SUBJECTS.len()];
    {
        let world = World::new(NatKind::None, NatKind::None);
        let _path = world.shape(DELAY, rate_mbit * 1000, BUFFER, 0.0);
        let targets = within(&world.host_a, || {
            (endless_source(), echo_server_at("0.0.0.0:0"))
        });
        for (i, column) in columns.iter_mut().enumerate().filter(|(i, _)| chosen(*i)) {
            eprintln!("  {rate_mbit} Mbit/s, {}...", SUBJECTS[i]);
            let subject = start(i, &world, targets);
            let (source, echo) = (subject.entries[0], subject.entries[1]);
            // Idle first: a download's tail could still be in flight later.
            let idle = within(&world.host_b, move || pings(echo, PING_EVERY, IDLE_PINGS));
            column.echo_idle = (percentile(&idle, 50), percentile(&idle, 99));
            column.alone = download(&world, source);
            let ns = world.host_b.clone();
            let bulk = std::thread::spawn(move || within(&ns, move || measure_download(source)));
            let busy = within(&world.host_b, move || {
                std::thread::sleep(WARMUP);
                pings(echo, PING_EVERY, WINDOW)
            });
            bulk.join().unwrap();
            column.echo_busy = (percentile(&busy, 50), percentile(&busy, 99));
            let competing = direct(targets.0);
            let ns = world.host_b.clone();
            let other =
                std::thread::spawn(move || within(&ns, move || measure_download(competing)));
            let ours = download(&world, source);
            column.against_tcp = (ours, other.join().unwrap());
        }
    }
    let world = World::new(NatKind::None, NatKind::None);
    let _path = world.shape(DELAY, rate_mbit * 1000, BUFFER, LOSS_PERCENT);
    let targets = within(&world.host_a, || {
        (endless_source(), echo_server_at("0.0.0.0:0"))
    });
    for (i, column) in columns.iter_mut().enumerate().filter(|(i, _)| chosen(*i)) {
        eprintln!(
            "  {rate_mbit} Mbit/s with {LOSS_PERCENT}% loss, {}...",
            SUBJECTS[i]
        );
        let subject = start(i, &world, targets);
        column.lossy = download(&world, subject.entries[0]);
    }
    columns
}

fn direct(target: SocketAddr) -> SocketAddr {
    SocketAddr::new(HOST_A_IP.parse().unwrap(), target.port())
}

fn measure_download(entry: SocketAddr) -> f64 {
    goodput_mbit(entry, WARMUP, WINDOW)
}

fn download(world: &World, entry: SocketAddr) -> f64 {
    within(&world.host_b, move || measure_download(entry))
}

/// Subject `index` of `SUBJECTS`, forwarding to the source and the echo
/// server on host A.
fn start(index: usize, world: &World, (source, echo): (SocketAddr, SocketAddr)) -> Subject {
    let on_host_a = |t: SocketAddr| SocketAddr::from(([127, 0, 0, 1], t.port()));
    let targets = [on_host_a(source), on_host_a(echo)];
    let path = Path::Split {
        server_ns: &world.host_a,
        server_ip: HOST_A_IP,
        client_ns: &world.host_b,
    };
    match index {
        0 => subjects::direct(&[direct(source), direct(echo)]),
        1 => subjects::toxtun_with(&targets, path, &kcp_mode()),
        _ => subjects::kcptun(&targets, path),
    }
}

/// Each figure of each subject the median of its runs (the upper middle
/// one for an even count), taken apart, so a column may mix runs.
pub fn median(runs: &[Vec<ShapedColumn>]) -> Vec<ShapedColumn> {
    (0..SUBJECTS.len())
        .map(|i| {
            let of =
                |f: &dyn Fn(&ShapedColumn) -> f64| middle(runs.iter().map(|r| f(&r[i])).collect());
            let at = |f: &dyn Fn(&ShapedColumn) -> Duration| {
                middle(runs.iter().map(|r| f(&r[i])).collect())
            };
            ShapedColumn {
                alone: of(&|c| c.alone),
                against_tcp: (of(&|c| c.against_tcp.0), of(&|c| c.against_tcp.1)),
                lossy: of(&|c| c.lossy),
                echo_idle: (at(&|c| c.echo_idle.0), at(&|c| c.echo_idle.1)),
                echo_busy: (at(&|c| c.echo_busy.0), at(&|c| c.echo_busy.1)),
            }
        })
        .collect()
}
