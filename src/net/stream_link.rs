//! Datagrams carried over TCP, for nodes whose UDP is blocked: each one is
//! framed as a 2-byte big-endian length and the bytes. Both ends keep the
//! datagram's meaning: a frame that does not fit the send queue is dropped,
//! as a datagram would be, and never stalls the event loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use tokio::sync::mpsc;
use tracing::debug;

use crate::proto::log_limit::LogLimit;

/// Frames queued towards one peer before further ones are dropped.
const SEND_QUEUE: usize = 1024;
/// Bytes queued towards one peer (and in its writer's hands) before
/// further frames are dropped: a peer that never reads holds this much of
/// our memory at most.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;
const INCOMING_QUEUE: usize = 1024;
/// Frames written with one system call at most.
const WRITE_BATCH: usize = 64;

pub enum Incoming {
    Frame(SocketAddr, Vec<u8>),
    /// The link numbered `generation` to this peer ended.
    Closed(SocketAddr, u64, String),
}

struct Link {
    sender: mpsc::Sender<Vec<u8>>,
    generation: u64,
    /// Bytes handed to the writer and not yet written.
    queued: Arc<AtomicUsize>,
}

/// The TCP links of one event loop, keyed by the peer's address. Frames
/// from every link arrive on the one `incoming` queue.
pub struct Links {
    links: HashMap<SocketAddr, Link>,
    incoming_tx: mpsc::Sender<Incoming>,
    pub incoming: mpsc::Receiver<Incoming>,
    next_generation: u64,
    /// A link that brings nothing for this long is closed.
    idle: Option<Duration>,
    dropped: LogLimit,
}

impl Links {
    pub fn new(idle: Option<Duration>) -> Self {
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        Links {
            links: HashMap::new(),
            incoming_tx,
            incoming,
            next_generation: 1,
            idle,
            dropped: LogLimit::default(),
        }
    }

    pub fn count(&self) -> usize {
        self.links.len()
    }

    /// Starts carrying frames over `stream`, replacing any older link to
    /// the same peer. Needs a tokio runtime.
    pub fn attach(&mut self, peer: SocketAddr, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let generation = self.next_generation;
        self.next_generation += 1;
        let (sender, queue) = mpsc::channel(SEND_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let (read, write) = stream.into_split();
        tokio::spawn(read_frames(
            peer,
            generation,
            read,
            self.incoming_tx.clone(),
            self.idle,
        ));
        tokio::spawn(write_frames(
            peer,
            generation,
            write,
            queue,
            queued.clone(),
            self.incoming_tx.clone(),
        ));
        self.links.insert(
            peer,
            Link {
                sender,
                generation,
                queued,
            },
        );
    }

    /// Forgets the link if it is still the one numbered `generation`.
    pub fn closed(&mut self, peer: SocketAddr, generation: u64) -> bool {
        let current = self
            .links
            .get(&peer)
            .is_some_and(|l| l.generation == generation);
        if current {
            self.links.remove(&peer);
        }
        current
    }

    /// Sends over the peer's link if it has one; false if it has none. A
    /// frame that does not fit the link's queue is dropped, as a datagram
    /// would be.
    pub fn send(&mut self, peer: &SocketAddr, payload: &[u8]) -> bool {
        let Some(link) = self.links.get(peer) else {
            return false;
        };
        let fits = payload.len() <= u16::MAX as usize
            && link.queued.load(Ordering::Acquire) + payload.len() <= MAX_QUEUED_BYTES
            && link.sender.try_send(payload.to_vec()).is_ok();
        if fits {
            link.queued.fetch_add(payload.len(), Ordering::AcqRel);
        } else if let Some(times) = self.dropped.hit(Instant::now()) {
            debug!(%peer, times, "TCP link queue full: frames dropped");
        }
        true
    }
}

async fn read_frames(
    peer: SocketAddr,
    generation: u64,
    mut read: OwnedReadHalf,
    incoming: mpsc::Sender<Incoming>,
    idle: Option<Duration>,
) {
    let reason = loop {
        let frame = match idle {
            Some(idle) => match tokio::time::timeout(idle, read_frame(&mut read)).await {
                Ok(frame) => frame,
                Err(_) => break format!("nothing received for {}s", idle.as_secs()),
            },
            None => read_frame(&mut read).await,
        };
        match frame {
            Ok(Some(frame)) => {
                if incoming.send(Incoming::Frame(peer, frame)).await.is_err() {
                    return;
                }
            }
            Ok(None) => break "closed by peer".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    let _ = incoming
        .send(Incoming::Closed(peer, generation, reason))
        .await;
}

/// Ok(None) on a clean end of stream between frames.
async fn read_frame(read: &mut OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 2];
    match read.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut frame = vec![0u8; u16::from_be_bytes(header) as usize];
    read.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

async fn write_frames(
    peer: SocketAddr,
    generation: u64,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    incoming: mpsc::Sender<Incoming>,
) {
    let mut buf = Vec::new();
    while let Some(first) = queue.recv().await {
        buf.clear();
        let mut taken = first.len();
        push_frame(&mut buf, &first);
        for _ in 1..WRITE_BATCH {
            match queue.try_recv() {
                Ok(frame) => {
                    taken += frame.len();
                    push_frame(&mut buf, &frame);
                }
                Err(_) => break,
            }
        }
        let written = write.write_all(&buf).await;
        queued.fetch_sub(taken, Ordering::AcqRel);
        if let Err(e) = written {
            let _ = incoming
                .send(Incoming::Closed(peer, generation, e.to_string()))
                .await;
            return;
        }
    }
}

fn push_frame(buf: &mut Vec<u8>, frame: &[u8]) {
    buf.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    buf.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_in_order_and_end_with_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (server_stream, client_addr) = accepted.unwrap();
        let mut near = Links::new(None);
        let mut far = Links::new(None);
        near.attach(addr, client.unwrap());
        far.attach(client_addr, server_stream);
        let frames: Vec<Vec<u8>> = [0usize, 1, 1400, 65535]
            .iter()
            .map(|&n| (0..n).map(|i| i as u8).collect())
            .collect();
        for frame in &frames {
            assert!(near.send(&addr, frame));
        }
        for frame in &frames {
            match far.incoming.recv().await.unwrap() {
                Incoming::Frame(from, got) => {
                    assert_eq!(from, client_addr);
                    assert_eq!(&got, frame);
                }
                Incoming::Closed(..) => panic!("closed early"),
            }
        }
        assert!(!near.send(&"127.0.0.1:1".parse().unwrap(), b"x"));
        drop(near);
        match far.incoming.recv().await.unwrap() {
            Incoming::Closed(from, generation, _) => {
                assert_eq!(from, client_addr);
                assert!(far.closed(from, generation));
                assert!(!far.closed(from, generation), "forgotten once");
            }
            Incoming::Frame(..) => panic!("frame after close"),
        }
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_holds_a_bounded_queue() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let _never_read = accepted.unwrap();
        let mut links = Links::new(None);
        links.attach(addr, client.unwrap());
        let frame = vec![7u8; 60_000];
        for _ in 0..1000 {
            assert!(links.send(&addr, &frame));
            tokio::task::yield_now().await;
        }
        let queued = links.links[&addr].queued.load(Ordering::Acquire);
        assert!(queued <= MAX_QUEUED_BYTES, "{queued} bytes queued");
        assert!(queued > 0, "nothing queued: the test proved nothing");
    }
}
