//! Runs the bootstrap core on a UDP socket.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tracing::debug;

use super::Bootstrap;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn run(socket: std::net::UdpSocket, mut core: Bootstrap) -> std::io::Result<()> {
    let socket = UdpSocket::from_std(socket)?;
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(transmit) = core.poll_transmit() {
            if let Err(e) = socket.send_to(&transmit.payload, transmit.dst).await {
                debug!(dst = %transmit.dst, error = %e, "send failed");
            }
        }
        let deadline = core.poll_timeout();
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
            _ = sleep => core.handle_timeout(Instant::now()),
        }
    }
}
