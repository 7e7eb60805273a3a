//! A paced flood of datagrams from one loopback socket, for attack tests.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Flood {
    thread: JoinHandle<u64>,
    running: Arc<AtomicBool>,
}

impl Flood {
    /// Sends `packet(n)` to `dst`, `rate` a second for `span`, from its own
    /// thread.
    pub fn start(
        dst: SocketAddr,
        rate: u64,
        span: Duration,
        mut packet: impl FnMut(u64) -> Vec<u8> + Send + 'static,
    ) -> Flood {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < span {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while sent < due {
                    let _ = socket.send_to(&packet(sent), dst);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            flag.store(false, Ordering::SeqCst);
            sent
        });
        Flood { thread, running }
    }

    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits for the end; how many datagrams were sent.
    pub fn join(self) -> u64 {
        self.thread.join().unwrap()
    }
}
