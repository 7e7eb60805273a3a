//! What every listener does when accept fails (out of descriptors, most
//! often): the connection that could not be taken is still queued, so a
//! loop that tried again at once would spin a core and fill the log. It
//! pauses instead, and says so once per interval with a count.

use std::io;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::proto::log_limit::LogLimit;

/// How long a listener rests after a failed accept.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct AcceptFailures {
    log: LogLimit,
}

impl AcceptFailures {
    /// Notes a failed accept on `listener`; returns until when to pause.
    pub fn failed(&mut self, listener: &str, error: &io::Error) -> Instant {
        let now = Instant::now();
        if let Some(times) = self.log.hit(now) {
            warn!(%listener, %error, times, "accept failed; pausing that listener");
        }
        now + ACCEPT_PAUSE
    }
}
