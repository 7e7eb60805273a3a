//! Refusals logged at a rate, not per packet: a flood of one kind of bad
//! packet is one log line per interval with a count, however fast it
//! comes. The caller writes the line (with its own fields) when `hit`
//! says so.

use std::time::{Duration, Instant};

/// One line per kind of refusal this often at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct LogLimit {
    /// When the last line was written.
    last: Option<Instant>,
    /// Refusals since then, not yet reported.
    unreported: u64,
}

impl LogLimit {
    /// Counts one refusal; returns how many to report (this one included)
    /// when a line is due now, None when it is not.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        let due = self.last.is_none_or(|at| now >= at + LOG_EVERY);
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_per_interval_with_the_count() {
        let start = Instant::now();
        let mut limit = LogLimit::default();
        let mut lines = Vec::new();
        // 10,000 refusals a second for 25 s.
        for i in 0..250_000u64 {
            let now = start + Duration::from_micros(i * 100);
            if let Some(count) = limit.hit(now) {
                lines.push(count);
            }
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], 1, "the first refusal is reported at once");
        assert_eq!(lines.iter().sum::<u64>() + limit.unreported, 250_000);
    }
}
