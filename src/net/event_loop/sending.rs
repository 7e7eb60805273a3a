//! Everything the event loop sends on its UDP socket: the core's
//! datagrams in batches, LAN queries out of every interface, and the odd
//! datagram with its own TTL.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use tokio::io::Interest;
use tracing::debug;

use super::{EventLoop, SEND_QUEUE};
use crate::net::lan::{self, BroadcastTarget};
use crate::proto::Dest;

impl EventLoop {
    pub(super) async fn send_transmits(&mut self) {
        let mut plain: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        // Only the first call flushes, and that is the one `now` is for.
        let now = Instant::now();
        while let Some(transmit) = self.core.poll_transmit(now) {
            let dst = match (transmit.dst, transmit.ttl) {
                (Dest::Unicast(dst), None) => {
                    if !self.links.send(&dst, &transmit.payload) {
                        plain.push((dst, transmit.payload));
                        if plain.len() == SEND_QUEUE {
                            self.send_batch(&mut plain).await;
                        }
                    }
                    continue;
                }
                (dst, _) => dst,
            };
            // Keep the order: what was queued before goes first.
            self.send_batch(&mut plain).await;
            match dst {
                Dest::LanBroadcast(port) => self.broadcast(&transmit.payload, port).await,
                Dest::Unicast(dst) => {
                    self.send_with_ttl(dst, &transmit.payload, transmit.ttl)
                        .await
                }
            }
        }
        self.send_batch(&mut plain).await;
    }

    /// A LAN query out of every interface, by its broadcast address or,
    /// where it has none, by the limited broadcast address.
    async fn broadcast(&mut self, payload: &[u8], port: u16) {
        for target in lan::broadcast_targets() {
            match target {
                BroadcastTarget::Directed(broadcast) => {
                    let dst = SocketAddr::from((broadcast, port));
                    if let Err(e) = self.socket.send_to(payload, dst).await {
                        debug!(%dst, error = %e, "LAN query not sent");
                    }
                }
                BroadcastTarget::Limited {
                    interface,
                    index,
                    source,
                } => {
                    debug!(%interface, %source, "interface has no broadcast address: LAN query sent to 255.255.255.255 through it");
                    let fd = self.socket.as_raw_fd();
                    if let Err(e) = lan::send_limited(fd, payload, port, index, source) {
                        debug!(%interface, error = %e, "LAN query not sent");
                    }
                }
            }
        }
    }

    /// One datagram with its own IP TTL (hole punching); the socket's
    /// default is put back after.
    async fn send_with_ttl(&mut self, dst: SocketAddr, payload: &[u8], ttl: Option<u32>) {
        let default_ttl = match ttl {
            Some(ttl) => self
                .socket
                .ttl()
                .ok()
                .filter(|_| self.socket.set_ttl(ttl).is_ok()),
            None => None,
        };
        if let Err(e) = self.socket.send_to(payload, dst).await {
            debug!(%dst, error = %e, "send failed");
        }
        if let Some(ttl) = default_ttl {
            let _ = self.socket.set_ttl(ttl);
        }
    }

    /// Sends and empties `queue` with as few system calls as the socket
    /// allows.
    pub(super) async fn send_batch(&mut self, queue: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let fd = self.socket.as_raw_fd();
        let datagrams: Vec<(SocketAddr, &[u8])> = queue
            .iter()
            .map(|(dst, payload)| (*dst, payload.as_slice()))
            .collect();
        let mut sent = 0;
        while sent < datagrams.len() {
            let rest = &datagrams[sent..];
            let sender = &mut self.sender;
            match self
                .socket
                .async_io(Interest::WRITABLE, || sender.send(fd, rest))
                .await
            {
                Ok(n) => sent += n.max(1),
                Err(e) => {
                    // A datagram the kernel refuses (no route, say) must not
                    // hold back the ones behind it.
                    debug!(dst = %rest[0].0, error = %e, "send failed");
                    sent += 1;
                }
            }
        }
        drop(datagrams);
        queue.clear();
    }
}
