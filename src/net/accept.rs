//! What every listener does when accept fails (out of descriptors, most
//! often): the connection that could not be taken is still queued, so a
//! loop that tried again at once would spin a core and fill the log. It
//! pauses instead, and says so once per interval with a count.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
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

/// Hands every connection `listener` accepts to `each`, until `each` says
/// the node is gone (false); a failed accept pauses the loop, never ends it.
pub async fn accept_each<F, Done>(listener: TcpListener, label: String, mut each: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Done,
    Done: Future<Output = bool>,
{
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if !each(stream, peer).await {
                    return;
                }
            }
            Err(e) => {
                let until = failures.failed(&label, &e);
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
}
