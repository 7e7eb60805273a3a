//! A fixed delay on every packet a namespace forwards, without netem: the
//! namespace routes what it forwards into a TUN device, and two threads
//! read each packet, hold it for the delay and write it back, where the
//! kernel routes it on to its destination. TCP and UDP alike see the
//! round trip a long path has, and the same random loss if asked: the
//! line drops packets one by one as they come out of the device, where
//! the kernel has already split what receive offload merged (iptables'
//! `statistic` match on the router would drop a merged run of TCP
//! segments as one packet, sparing TCP most of the loss).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct InterfaceRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

type Queue = Arc<(Mutex<VecDeque<(Instant, Vec<u8>)>>, Condvar)>;

/// Opens TUN device `name` in the calling thread's namespace.
fn open_tun(name: &str) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("/dev/net/tun");
    let mut request = InterfaceRequest {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a valid descriptor and a request laid out as the kernel's
    // struct ifreq for TUNSETIFF.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut request) };
    assert_eq!(
        rc,
        0,
        "TUNSETIFF {name}: {}",
        std::io::Error::last_os_error()
    );
    file
}

/// Every packet routed into the device waits `delay`; the threads stop
/// (and the device goes) when this is dropped.
pub struct DelayLine {
    stop: Arc<AtomicBool>,
}

impl DelayLine {
    /// Creates TUN device `name` in namespace `ns` (the caller routes
    /// into it) and starts the line, dropping `loss_percent` of packets.
    pub fn start(ns: &str, name: &str, delay: Duration, loss_percent: f64) -> DelayLine {
        let (ns, name) = (ns.to_string(), name.to_string());
        let tun = super::netns::within(&ns, move || open_tun(&name));
        let stop = Arc::new(AtomicBool::new(false));
        let queue: Queue = Arc::default();
        let mut reader = tun.try_clone().unwrap();
        let (inbox, stopped) = (queue.clone(), stop.clone());
        let drop_below = (loss_percent / 100.0 * u64::MAX as f64) as u64;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut random = 0x9e37_79b9_7f4a_7c15u64;
            while !stopped.load(Ordering::Relaxed) {
                if !readable(&reader, POLL_EVERY) {
                    continue;
                }
                let Ok(n) = reader.read(&mut buf) else { return };
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                if random < drop_below {
                    continue;
                }
                let (lock, wake) = &*inbox;
                lock.lock()
                    .unwrap()
                    .push_back((Instant::now() + delay, buf[..n].to_vec()));
                wake.notify_one();
            }
        });
        let mut writer = tun;
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let (lock, wake) = &*queue;
                let pending = lock.lock().unwrap();
                let (mut pending, _) = wake
                    .wait_timeout_while(pending, POLL_EVERY, |p| p.is_empty())
                    .unwrap();
                let Some((due, packet)) = pending.pop_front() else {
                    continue;
                };
                drop(pending);
                let now = Instant::now();
                if due > now {
                    // The impairment itself: this packet is due later.
                    std::thread::sleep(due - now);
                }
                let _ = writer.write(&packet);
            }
        });
        DelayLine { stop }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the threads look at the stop flag while idle.
const POLL_EVERY: Duration = Duration::from_millis(100);

fn readable(file: &File, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the length given.
    unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) > 0 }
}
