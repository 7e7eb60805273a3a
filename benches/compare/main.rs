//! toxtun side by side with direct TCP and kcptun (fastest settings), on
//! this machine's loopback. Run: cargo bench --bench compare
//! Prints one markdown table and the targets from issue "Speed".

mod builds;
#[path = "../../tests/common/mod.rs"]
mod common;
mod impair;
mod measure;
mod shaped;
mod shaped_report;
mod subjects;

use std::net::SocketAddr;
use std::time::Duration;

use common::netns::within;
use common::traffic::echo_server;
use impair::{DelayRelay, LossyNamespace};
use measure::{Holder, Sink};
use subjects::{Path, Subject};

const MIB: usize = 1024 * 1024;
const BULK: usize = 256 * MIB;
const PARALLEL: usize = 100;
const PARALLEL_LEN: usize = 2 * MIB;
const IMPAIRED: usize = 32 * MIB;
const IDLE: usize = 1000;

/// One column of the table.
#[derive(Default, Clone)]
struct Column {
    upload: f64,
    download: f64,
    rtt_p50: Duration,
    rtt_p99: Duration,
    first_echo: Duration,
    parallel: f64,
    cpu_per_gb: Option<f64>,
    idle_rss: Option<(f64, f64)>,
    idle_wakeups: Option<f64>,
    lossy: Option<f64>,
    delayed: Option<f64>,
}

struct Targets {
    sink: Sink,
    source: SocketAddr,
    echo: SocketAddr,
    fan: SocketAddr,
}

impl Targets {
    fn start(bulk: usize) -> Targets {
        Targets {
            sink: Sink::start(),
            source: measure::source(bulk),
            echo: echo_server(),
            fan: measure::source(PARALLEL_LEN),
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        vec![self.sink.addr, self.source, self.echo, self.fan]
    }
}

fn core_metrics(subject: &Subject, sink: &Sink, column: &mut Column) {
    let e = &subject.entries;
    let cpu_before = measure::cpu_seconds(&subject.pids);
    column.upload = measure::upload(e[0], sink, BULK);
    column.download = measure::download(e[1], BULK);
    let cpu = measure::cpu_seconds(&subject.pids) - cpu_before;
    if !subject.pids.is_empty() {
        column.cpu_per_gb = Some(cpu / (2.0 * BULK as f64 / 1e9));
    }
    (column.rtt_p50, column.rtt_p99) = measure::round_trips(e[2], 2000);
    column.first_echo = measure::first_echo(e[2], 50);
    column.parallel = measure::parallel(e[3], PARALLEL, PARALLEL_LEN);
}

/// A fresh pair (peak RSS counts from its start) holding `IDLE` idle
/// tunnelled connections.
fn idle_metrics(start: impl Fn(&[SocketAddr]) -> Subject, column: &mut Column) {
    let holder = Holder::start();
    let subject = start(&[holder.addr]);
    let before = holder.accepted.load(std::sync::atomic::Ordering::SeqCst);
    let streams = measure::open_idle(subject.entries[0], IDLE);
    assert!(
        holder.wait_for(before, IDLE, Duration::from_secs(60)),
        "{}: not all {IDLE} connections reached the target",
        subject.name
    );
    let rss: Vec<f64> = subject
        .pids
        .iter()
        .map(|p| measure::peak_rss_mib(*p))
        .collect();
    let most = rss.iter().cloned().fold(0.0, f64::max);
    column.idle_rss = Some((most, rss.iter().sum()));
    if let Some(pid) = subject.toxtun_client {
        let window = Duration::from_secs(10);
        let before = common::thread_wakeups(pid, "friendnet");
        std::thread::sleep(window);
        let woke = common::thread_wakeups(pid, "friendnet") - before;
        column.idle_wakeups = Some(woke as f64 / window.as_secs_f64());
    }
    drop(streams);
}

fn lossy_metric(start: &dyn Fn(&[SocketAddr], Path) -> Subject, direct: bool) -> Option<f64> {
    let ns = match LossyNamespace::new(2) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("loss skipped (needs root and iptables): {why}");
            return None;
        }
    };
    let name = ns.name.clone();
    let source = within(&name, || measure::source(IMPAIRED));
    let subject = (!direct).then(|| start(&[source], Path::Namespace(&name)));
    let entry = subject.as_ref().map_or(source, |s| s.entries[0]);
    Some(within(&name, move || steady_download(entry)))
}

fn delayed_metric(start: &dyn Fn(&[SocketAddr], Path) -> Subject) -> f64 {
    let source = measure::source(IMPAIRED);
    let relays = std::sync::Mutex::new(Vec::new());
    let relay = |server: SocketAddr| {
        let relay = DelayRelay::start(server, Duration::from_millis(20));
        let addr = relay.addr;
        relays.lock().unwrap().push(relay);
        addr
    };
    let subject = start(&[source], Path::Relay(&relay));
    steady_download(subject.entries[0])
}

/// Goodput once the tunnel is up: the first download also pays for the
/// handshake (a lost handshake packet costs a retry timeout), so it is
/// not the one timed.
fn steady_download(entry: SocketAddr) -> f64 {
    measure::download(entry, IMPAIRED);
    measure::download(entry, IMPAIRED)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = |part: &str| std::env::args().any(|a| a == part);
    if only("builds") {
        raise_fd_limit();
        builds::builds_rows();
        return;
    }
    let (loopback, shaped) = match (only("loopback"), only("shaped")) {
        (false, false) => (true, true),
        chosen => chosen,
    };
    if loopback {
        loopback_rows();
    }
    if shaped {
        shaped_report::shaped_rows();
    }
}

/// Everything on this machine's loopback, and the loss and delay rows.
fn loopback_rows() {
    raise_fd_limit();
    let targets = Targets::start(BULK);
    let addrs = targets.addrs();
    let mut columns = vec![Column::default(), Column::default(), Column::default()];

    eprintln!("direct TCP...");
    core_metrics(&subjects::direct(&addrs), &targets.sink, &mut columns[0]);
    eprintln!("toxtun...");
    core_metrics(
        &subjects::toxtun(&addrs, Path::Loopback),
        &targets.sink,
        &mut columns[1],
    );
    eprintln!("kcptun...");
    core_metrics(
        &subjects::kcptun(&addrs, Path::Loopback),
        &targets.sink,
        &mut columns[2],
    );
    drop(targets);

    eprintln!("idle connections...");
    idle_metrics(|t| subjects::toxtun(t, Path::Loopback), &mut columns[1]);
    idle_metrics(|t| subjects::kcptun(t, Path::Loopback), &mut columns[2]);

    eprintln!("2% loss...");
    columns[0].lossy = lossy_metric(&subjects::toxtun, true);
    columns[1].lossy = lossy_metric(&subjects::toxtun, false);
    columns[2].lossy = lossy_metric(&subjects::kcptun, false);

    eprintln!("40 ms round trip...");
    columns[1].delayed = Some(delayed_metric(&subjects::toxtun));
    columns[2].delayed = Some(delayed_metric(&subjects::kcptun));

    print_table(&columns);
}

fn print_table(c: &[Column]) {
    let row = |name: &str, cells: [String; 3]| {
        println!("| {name} | {} | {} | {} |", cells[0], cells[1], cells[2]);
    };
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1}{unit}"));
    println!("| | direct TCP | toxtun | kcptun (fast3, wnd 2048, no FEC) |");
    println!("|---|---|---|---|");
    row(
        "upload, one stream (MB/s)",
        [0, 1, 2].map(|i| format!("{:.0}", c[i].upload)),
    );
    row(
        "download, one stream (MB/s)",
        [0, 1, 2].map(|i| format!("{:.0}", c[i].download)),
    );
    row("64 B round trip p50", [0, 1, 2].map(|i| ms(c[i].rtt_p50)));
    row("64 B round trip p99", [0, 1, 2].map(|i| ms(c[i].rtt_p99)));
    row(
        "new connection to first echoed byte (median)",
        [0, 1, 2].map(|i| ms(c[i].first_echo)),
    );
    row(
        &format!("{PARALLEL} parallel streams (MB/s)"),
        [0, 1, 2].map(|i| format!("{:.0}", c[i].parallel)),
    );
    row(
        "CPU seconds per GB moved (both sides)",
        [0, 1, 2].map(|i| opt(c[i].cpu_per_gb, " s")),
    );
    row(
        &format!("peak RSS with {IDLE} idle connections (largest side / all)"),
        [0, 1, 2].map(|i| {
            c[i].idle_rss.map_or("-".into(), |(most, all)| {
                format!("{most:.1} / {all:.1} MiB")
            })
        }),
    );
    row(
        "event-loop wake-ups a second with those idle",
        [0, 1, 2].map(|i| opt(c[i].idle_wakeups, "")),
    );
    row(
        "download with 2% loss (MB/s)",
        [0, 1, 2].map(|i| opt(c[i].lossy, "")),
    );
    row(
        "download with 40 ms round trip (MB/s)",
        [0, 1, 2].map(|i| opt(c[i].delayed, "")),
    );

    let (t, k, d) = (&c[1], &c[2], &c[0]);
    println!();
    println!("Targets:");
    let check = |name: &str, value: f64, target: f64, more_is_better: bool| {
        let met = if more_is_better {
            value >= target
        } else {
            value <= target
        };
        println!(
            "- {name}: {value:.2} (target {} {target}) {}",
            if more_is_better { ">=" } else { "<=" },
            if met { "met" } else { "NOT met" }
        );
    };
    check("upload / kcptun", t.upload / k.upload, 5.0, true);
    check("download / kcptun", t.download / k.download, 5.0, true);
    check(
        "round trip p50 / direct",
        t.rtt_p50.as_secs_f64() / d.rtt_p50.as_secs_f64(),
        2.0,
        false,
    );
    if let (Some(tl), Some(kl)) = (t.lossy, k.lossy) {
        check("2% loss goodput / kcptun", tl / kl, 2.0, true);
    }
    if let Some((most, _)) = t.idle_rss {
        check(
            &format!("RSS per side with {IDLE} idle (MiB)"),
            most,
            64.0,
            false,
        );
    }
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write a valid struct; a failure
    // leaves the old limit.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !raised || limit.rlim_cur < 8 * IDLE as u64 {
        eprintln!("could not raise the open-file limit; {IDLE} idle connections may fail");
    }
}
