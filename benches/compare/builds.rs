//! Two or more toxtun builds measured in turn by this one bench binary,
//! on the loopback rows that a build changes (the idle rows need a run of
//! their own each). Runs of one build spread by 25% from one to the next
//! on a shared machine and the machine drifts over an hour, so builds
//! alternate pair by pair and the median of many pairs is compared, not
//! one run of each: `cargo bench --bench compare -- builds OLD NEW
//! [rounds=N]`, each build a path to a toxtun binary.

use std::path::PathBuf;
use std::time::Duration;

use crate::measure::middle;
use crate::subjects::{self, Path};
use crate::{core_metrics, lossy_metric, Column, Targets, BULK};

const ROUNDS: usize = 15;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A row's name and how to read its figure from a column.
type Row = (&'static str, fn(&Column) -> f64);

const ROWS: [Row; 8] = [
    ("upload, one stream (MB/s)", |c| c.upload),
    ("download, one stream (MB/s)", |c| c.download),
    ("CPU seconds per GB moved (both sides)", |c| {
        c.cpu_per_gb.unwrap_or(0.0)
    }),
    ("64 B round trip p50 (ms)", |c| ms(c.rtt_p50)),
    ("64 B round trip p99 (ms)", |c| ms(c.rtt_p99)),
    ("new connection to first echoed byte (ms)", |c| {
        ms(c.first_echo)
    }),
    ("100 parallel streams (MB/s)", |c| c.parallel),
    ("download with 2% loss (MB/s)", |c| c.lossy.unwrap_or(0.0)),
];

pub fn builds_rows() {
    let builds: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| a.contains('/'))
        .map(PathBuf::from)
        .collect();
    if let Some(missing) = builds.iter().find(|b| !b.is_file()) {
        eprintln!("builds: no toxtun binary at {}", missing.display());
        return;
    }
    if builds.len() < 2 {
        eprintln!("builds: give two or more paths to toxtun binaries");
        return;
    }
    let rounds = std::env::args()
        .find_map(|a| a.strip_prefix("rounds=").and_then(|n| n.parse().ok()))
        .unwrap_or(ROUNDS);
    let targets = Targets::start(BULK);
    let addrs = targets.addrs();
    let mut measured: Vec<Vec<[f64; 8]>> = vec![Vec::new(); builds.len()];
    for round in 1..=rounds {
        for (build, runs) in builds.iter().zip(&mut measured) {
            crate::common::use_binary(build.clone());
            let mut column = Column::default();
            core_metrics(
                &subjects::toxtun(&addrs, Path::Loopback),
                &targets.sink,
                &mut column,
            );
            column.lossy = lossy_metric(&subjects::toxtun, false);
            let row = ROWS.map(|(_, figure)| figure(&column));
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
            println!("round {round} {}: {}", build.display(), cells.join(" "));
            runs.push(row);
        }
    }
    print_medians(&builds, &measured, rounds);
}

fn print_medians(builds: &[PathBuf], measured: &[Vec<[f64; 8]>], rounds: usize) {
    let names: Vec<String> = builds.iter().map(|b| b.display().to_string()).collect();
    println!();
    println!("Medians of {rounds} alternating rounds; the change is the last build's against the first's.");
    println!();
    println!("| row | {} | change |", names.join(" | "));
    println!("|---|{}---|", "---|".repeat(names.len()));
    for (i, (name, _)) in ROWS.iter().enumerate() {
        let medians: Vec<f64> = measured
            .iter()
            .map(|runs| middle(runs.iter().map(|r| r[i]).collect()))
            .collect();
        let cells: Vec<String> = medians.iter().map(|m| format!("{m:.3}")).collect();
        let (first, last) = (medians[0], medians[medians.len() - 1]);
        let change = if first > 0.0 {
            format!("{:+.1}%", (last / first - 1.0) * 100.0)
        } else {
            "-".into()
        };
        println!("| {name} | {} | {change} |", cells.join(" | "));
    }
}
