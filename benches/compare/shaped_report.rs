//! The shaped paths' tables and targets (`shaped` measures them).

use std::time::Duration;

use crate::ms;
use crate::shaped::{self, ShapedColumn};

/// Runs per rate: the targets are judged on the median.
const RUNS: usize = 3;

/// The shaped paths' rows: for each rate (those given as arguments, or
/// all), `RUNS` runs (or `runs=N`), each run's table, then the median of
/// each figure over the runs and the targets judged on those.
pub fn shaped_rows() {
    if let Err(why) = crate::common::netns::can_run() {
        eprintln!("shaped paths skipped (need root, iproute2, iptables): {why}");
        return;
    }
    let chosen: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let rates = shaped::RATES_MBIT
        .into_iter()
        .filter(|r| chosen.is_empty() || chosen.contains(r));
    let runs = std::env::args()
        .find_map(|a| a.strip_prefix("runs=").and_then(|n| n.parse().ok()))
        .unwrap_or(RUNS);
    for rate in rates {
        let measured: Vec<Vec<ShapedColumn>> = (1..=runs)
            .map(|run| {
                eprintln!("shaped path, {rate} Mbit/s, run {run} of {runs}...");
                let columns = shaped::measure_rate(rate);
                print_table(&format!("{rate} Mbit/s, run {run} of {runs}"), &columns);
                columns
            })
            .collect();
        let median = shaped::median(&measured);
        print_table(&format!("{rate} Mbit/s, median of {runs}"), &median);
        print_targets(rate, &median);
    }
}

fn print_table(title: &str, c: &[ShapedColumn]) {
    println!();
    println!(
        "| {title}, 40 ms round trip, 60 ms buffer | {} |",
        shaped::SUBJECTS.join(" | ")
    );
    println!("|---|---|---|---|");
    let row = |name: &str, cell: &dyn Fn(&ShapedColumn) -> String| {
        let cells: Vec<String> = c.iter().map(cell).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("alone (Mbit/s)", &|c| format!("{:.1}", c.alone));
    row("against one TCP flow (Mbit/s, this vs TCP)", &|c| {
        format!("{:.1} vs {:.1}", c.against_tcp.0, c.against_tcp.1)
    });
    row("with 1% loss (Mbit/s)", &|c| format!("{:.1}", c.lossy));
    row("64 B echo idle, p50 / p99", &|c| {
        format!("{} / {}", ms(c.echo_idle.0), ms(c.echo_idle.1))
    });
    row("64 B echo during a download, p50 / p99", &|c| {
        format!("{} / {}", ms(c.echo_busy.0), ms(c.echo_busy.1))
    });
}

fn print_targets(rate: u64, c: &[ShapedColumn]) {
    let (direct, toxtun) = (&c[0], &c[1]);
    println!();
    println!("Targets at {rate} Mbit/s:");
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let alone = toxtun.alone / direct.alone;
    println!(
        "- alone / direct TCP: {alone:.2} (target >= 0.90) {}",
        verdict(alone >= 0.9)
    );
    let share = toxtun.against_tcp.0 / rate as f64;
    println!(
        "- share of the line against one TCP flow: {share:.2} (target 0.35 to 0.65) {}",
        verdict((0.35..=0.65).contains(&share))
    );
    let lossy = toxtun.lossy / rate as f64;
    println!(
        "- with 1% loss, share of the line: {lossy:.2} (target >= 0.70) {}",
        verdict(lossy >= 0.7)
    );
    let added = toxtun.echo_busy.0.saturating_sub(toxtun.echo_idle.0);
    println!(
        "- echo p50 added by a download: {} (target <= 15 ms) {}",
        ms(added),
        verdict(added <= Duration::from_millis(15))
    );
    println!(
        "- echo p99 during a download: {} (target < 60 ms) {}",
        ms(toxtun.echo_busy.1),
        verdict(toxtun.echo_busy.1 < Duration::from_millis(60))
    );
}
