//! Runs the bootstrap core on a UDP socket and, on the same port, a TCP
//! listener whose connections carry the same datagrams framed (for nodes
//! whose UDP is blocked). Answers go back the way the request came.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::{Bootstrap, BootstrapStats};
use crate::net::accept::AcceptFailures;
use crate::net::stream_link::{Incoming, Links};
use crate::proto::log_limit::LogLimit;

/// Connections beyond this are refused, so TCP cannot exhaust descriptors.
const MAX_TCP_LINKS: usize = 4096;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the control socket asks the driver for: the core's counters and
/// the TCP links open now.
pub type StatsRequest = oneshot::Sender<(BootstrapStats, usize)>;

/// `idle`: a TCP link silent this long is closed (nodes announce sooner).
pub async fn run(
    socket: std::net::UdpSocket,
    listener: std::net::TcpListener,
    mut core: Bootstrap,
    idle: Duration,
    mut stats_requests: mpsc::Receiver<StatsRequest>,
) -> std::io::Result<()> {
    let socket = UdpSocket::from_std(socket)?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let mut links = Links::new(Some(idle));
    let mut failures = AcceptFailures::default();
    let mut refused = LogLimit::default();
    let mut accept_paused_until: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(transmit) = core.poll_transmit() {
            // The bootstrap core only ever answers a source.
            let Some(dst) = transmit.unicast_addr() else {
                continue;
            };
            if links.send(&dst, &transmit.payload) {
                continue;
            }
            if let Err(e) = socket.send_to(&transmit.payload, dst).await {
                debug!(%dst, error = %e, "send failed");
            }
        }
        let accepting = accept_paused_until.is_none_or(|until| Instant::now() >= until);
        let deadline = [
            core.poll_timeout(),
            accept_paused_until.filter(|_| !accepting),
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    core.handle_datagram(Instant::now(), unix_now(), from, &buf[..n]);
                }
            }
            accepted = listener.accept(), if accepting => match accepted {
                Ok((stream, peer)) if links.count() < MAX_TCP_LINKS => {
                    debug!(%peer, "TCP link opened");
                    links.attach(peer, stream);
                }
                Ok((_, peer)) => {
                    if let Some(times) = refused.hit(Instant::now()) {
                        warn!(%peer, limit = MAX_TCP_LINKS, times, "TCP links refused: too many");
                    }
                }
                Err(e) => accept_paused_until = Some(failures.failed("bootstrap TCP", &e)),
            },
            incoming = links.incoming.recv() => match incoming {
                Some(Incoming::Frame(from, frame)) => {
                    core.handle_datagram(Instant::now(), unix_now(), from, &frame);
                }
                Some(Incoming::Closed(peer, generation, reason)) => {
                    if links.closed(peer, generation) {
                        info!(%peer, %reason, "TCP link closed");
                    }
                }
                None => return Ok(()),
            },
            Some(reply) = stats_requests.recv() => {
                let _ = reply.send((core.stats(), links.count()));
            }
            _ = sleep => core.handle_timeout(Instant::now()),
        }
    }
}
