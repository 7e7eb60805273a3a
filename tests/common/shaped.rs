//! A long, narrow path between the hosts of a `World`, as users' lines
//! are: a delay each way on the router, the router's link toward host B's
//! side limited by `tc tbf` with a bounded queue (downloads from A to B
//! meet the bottleneck there), and random loss if asked.

use std::time::Duration;

use super::delay_line::DelayLine;
use super::netns::{in_ns, World};

/// Ends when dropped (the namespaces go with the World).
pub struct ShapedPath {
    _delay: DelayLine,
}

impl World {
    /// `delay` each way; `rate_kbit` from A toward B with `buffer` of
    /// queue at that rate; `loss_percent` of packets dropped at random on
    /// the line, each way.
    pub fn shape(
        &self,
        delay: Duration,
        rate_kbit: u64,
        buffer: Duration,
        loss_percent: f64,
    ) -> ShapedPath {
        let line = self.device("dl");
        let delay = DelayLine::start(&self.router, &line, delay, loss_percent);
        let router = |args: &[&str]| in_ns(&self.router, args);
        router(&["ip", "link", "set", &line, "up"]);
        router(&[
            "ip", "route", "add", "default", "dev", &line, "table", "100",
        ]);
        // Everything arriving from either side goes through the line; what
        // comes back out of it is routed as usual.
        for side in ["2a", "3a"] {
            let dev = self.device(side);
            router(&["ip", "rule", "add", "iif", &dev, "lookup", "100"]);
        }
        for conf in ["all", "default", line.as_str()] {
            let key = format!("net.ipv4.conf.{conf}.rp_filter=0");
            router(&["sysctl", "-qw", &key]);
        }
        let bytes_per_ms = rate_kbit / 8;
        // A burst of one millisecond at the rate, at least two packets:
        // what a real line's shaper lets through back to back.
        let burst = (bytes_per_ms).max(3028).to_string();
        let latency = format!("{}ms", buffer.as_millis());
        let rate = format!("{rate_kbit}kbit");
        let towards_b = self.device("3a");
        router(&[
            "tc", "qdisc", "add", "dev", &towards_b, "root", "tbf", "rate", &rate, "burst", &burst,
            "latency", &latency,
        ]);
        ShapedPath { _delay: delay }
    }
}
