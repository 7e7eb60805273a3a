//! An impairment relay: forwards UDP between one client and a server,
//! dropping a fixed share of datagrams each way at random (seeded), and
//! keeping a copy of what it forwards when asked to.
//!
//! Its server-side socket is connected, so it takes datagrams from the
//! server only: whoever the server tells about the relay's address cannot
//! reach the client through it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct LossyRelay {
    pub addr: SocketAddr,
    pub dropped: Arc<AtomicUsize>,
    pub forwarded: Arc<AtomicUsize>,
    /// Every forwarded datagram's bytes, in order, when capturing.
    pub captured: Option<Arc<Mutex<Vec<u8>>>>,
}

struct Rng(u64);

impl Rng {
    fn chance(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < percent
    }
}

impl LossyRelay {
    pub fn start(server: SocketAddr, loss_percent: u64, seed: u64) -> LossyRelay {
        Self::start_with(server, loss_percent, seed, false)
    }

    /// Forwards everything and keeps a copy of it.
    pub fn capturing(server: SocketAddr) -> LossyRelay {
        Self::start_with(server, 0, 1, true)
    }

    fn start_with(server: SocketAddr, loss_percent: u64, seed: u64, capture: bool) -> LossyRelay {
        let front = super::relay_socket();
        let back = super::relay_socket();
        back.connect(server).unwrap();
        let addr = front.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let captured: Option<Arc<Mutex<Vec<u8>>>> = capture.then(Arc::default);
        let directions = [
            (front.try_clone().unwrap(), back.try_clone().unwrap(), true),
            (back, front, false),
        ];
        for (i, (from, to, towards_server)) in directions.into_iter().enumerate() {
            let (dropped, forwarded, client) = (dropped.clone(), forwarded.clone(), client.clone());
            let captured = captured.clone();
            let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(i as u64) | 1);
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                loop {
                    let (n, source) = match from.recv_from(&mut buf) {
                        Ok(got) => got,
                        Err(_) => return,
                    };
                    if rng.chance(loss_percent) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    forwarded.fetch_add(1, Ordering::Relaxed);
                    if let Some(captured) = &captured {
                        captured.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if towards_server {
                        *client.lock().unwrap() = Some(source);
                        let _ = to.send(&buf[..n]);
                    } else if let Some(dst) = *client.lock().unwrap() {
                        let _ = to.send_to(&buf[..n], dst);
                    }
                }
            });
        }
        LossyRelay {
            addr,
            dropped,
            forwarded,
            captured,
        }
    }
}
