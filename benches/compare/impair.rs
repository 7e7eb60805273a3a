//! Impaired paths: random loss with iptables `statistic` inside a network
//! namespace, and a UDP relay that delays every datagram.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A namespace whose loopback drops `percent` of UDP datagrams at random,
/// each way. TCP is untouched.
pub struct LossyNamespace {
    pub name: String,
}

impl LossyNamespace {
    pub fn new(percent: u32) -> Result<LossyNamespace, String> {
        let name = format!("bench{}loss", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = LossyNamespace { name };
        let exec = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", &ns.name];
            full.extend_from_slice(args);
            run(&full)
        };
        exec(&["ip", "link", "set", "lo", "up"])?;
        // A run of datagrams sent with segmentation offload would meet the
        // drop rule as one packet; split on the device, the loss is per
        // datagram as on a real path.
        exec(&["ip", "link", "set", "lo", "gso_max_segs", "1"])?;
        let probability = format!("{:.4}", percent as f64 / 100.0);
        exec(&[
            "iptables",
            "-A",
            "INPUT",
            "-i",
            "lo",
            "-p",
            "udp",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &probability,
            "-j",
            "DROP",
        ])?;
        Ok(ns)
    }
}

impl Drop for LossyNamespace {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Forwards UDP between one client and a server, holding every datagram
/// for `delay` each way (`2 x delay` of round trip).
pub struct DelayRelay {
    pub addr: SocketAddr,
}

type Queue = Arc<(Mutex<VecDeque<(Instant, Vec<u8>)>>, Condvar)>;

impl DelayRelay {
    pub fn start(server: SocketAddr, delay: Duration) -> DelayRelay {
        let front = crate::common::relay_socket();
        let back = crate::common::relay_socket();
        back.connect(server).unwrap();
        let addr = front.local_addr().unwrap();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        for towards_server in [true, false] {
            let (from, to) = if towards_server {
                (front.try_clone().unwrap(), back.try_clone().unwrap())
            } else {
                (back.try_clone().unwrap(), front.try_clone().unwrap())
            };
            let queue: Queue = Arc::default();
            let inbox = queue.clone();
            let seen = client.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, source)) = from.recv_from(&mut buf) {
                    if towards_server {
                        *seen.lock().unwrap() = Some(source);
                    }
                    let (lock, wake) = &*inbox;
                    lock.lock()
                        .unwrap()
                        .push_back((Instant::now() + delay, buf[..n].to_vec()));
                    wake.notify_one();
                }
            });
            let client = client.clone();
            std::thread::spawn(move || loop {
                let (lock, wake) = &*queue;
                let mut pending = lock.lock().unwrap();
                while pending.is_empty() {
                    pending = wake.wait(pending).unwrap();
                }
                let (due, bytes) = pending.pop_front().unwrap();
                drop(pending);
                let now = Instant::now();
                if due > now {
                    // The impairment itself: this datagram is due later.
                    std::thread::sleep(due - now);
                }
                if towards_server {
                    let _ = to.send(&bytes);
                } else if let Some(dst) = *client.lock().unwrap() {
                    let _ = to.send_to(&bytes, dst);
                }
            });
        }
        DelayRelay { addr }
    }
}
