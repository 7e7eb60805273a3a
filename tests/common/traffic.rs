//! Deterministic byte streams, TCP targets that hash what they get, and
//! clients that push and pull through a tunnel.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A cheap reproducible byte stream (xorshift), so both ends can hash it.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn pattern_hash(seed: u64, len: usize) -> [u8; 32] {
    let mut pattern = Pattern::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        pattern.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n;
    }
    hasher.finalize().into()
}

/// Writes `len` bytes of pattern `seed`, then half-closes.
pub fn send_pattern(stream: &mut TcpStream, seed: u64, len: usize) -> std::io::Result<()> {
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        pattern.fill(&mut buf[..n]);
        stream.write_all(&buf[..n])?;
        left -= n;
    }
    stream.shutdown(Shutdown::Write)
}

/// Reads to end of file; returns byte count and SHA-256.
pub fn drain(stream: &mut TcpStream) -> std::io::Result<(usize, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok((total, hasher.finalize().into()));
        }
        hasher.update(&buf[..n]);
        total += n;
    }
}

/// What a target saw on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub received: usize,
    pub hash: [u8; 32],
}

/// A TCP server on loopback: on each connection it sends `reply_len` bytes
/// of pattern `reply_seed` and reads everything, concurrently.
pub struct Target {
    pub addr: SocketAddr,
    pub seen: mpsc::Receiver<Seen>,
}

impl Target {
    pub fn start(reply_seed: u64, reply_len: usize) -> Target {
        Self::start_with(reply_seed, reply_len, false)
    }

    /// With `after_eof`, the reply is sent only once the client has
    /// half-closed: the half-close test.
    pub fn start_with(reply_seed: u64, reply_len: usize, after_eof: bool) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    if after_eof {
                        if let Ok((received, hash)) = drain(&mut stream) {
                            let _ = send_pattern(&mut writer, reply_seed, reply_len);
                            let _ = tx.send(Seen { received, hash });
                        }
                        return;
                    }
                    let sender = std::thread::spawn(move || {
                        send_pattern(&mut writer, reply_seed, reply_len)
                    });
                    if let Ok((received, hash)) = drain(&mut stream) {
                        let _ = tx.send(Seen { received, hash });
                    }
                    let _ = sender.join();
                });
            }
        });
        Target { addr, seen }
    }

    pub fn next_seen(&self, timeout: Duration) -> Seen {
        self.seen
            .recv_timeout(timeout)
            .expect("target saw no finished connection")
    }
}

/// Connects to a tunnel, sends `len` bytes of pattern `seed` while reading
/// the reply to end of file; returns what came back.
pub fn exchange(tunnel: SocketAddr, seed: u64, len: usize) -> (usize, [u8; 32]) {
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || send_pattern(&mut writer, seed, len));
    let result = drain(&mut stream).expect("reading the reply");
    sender.join().unwrap().expect("sending through the tunnel");
    result
}

/// Connects to a tunnel whose target talks first, and returns how long
/// after `since` its first byte arrived.
pub fn first_byte_after(tunnel: SocketAddr, since: std::time::Instant) -> Duration {
    let mut stream = TcpStream::connect(tunnel).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut one = [0u8; 1];
    stream
        .read_exact(&mut one)
        .expect("first byte through the tunnel");
    since.elapsed()
}

/// Echoes every byte back on each connection, `TCP_NODELAY` on.
pub fn echo_server() -> SocketAddr {
    echo_server_at("127.0.0.1:0")
}

/// The same, listening on `bind`.
pub fn echo_server_at(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
