//! One measurement each: they connect to a tunnel entry, move bytes, and
//! time it. Every byte count is checked, so a broken tunnel cannot post a
//! number.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MB: f64 = 1_000_000.0;

/// Counts what arrives on each connection until end of file, then closes;
/// never half-closes first (kcptun cannot carry a half-close).
pub struct Sink {
    pub addr: SocketAddr,
    received: std::sync::mpsc::Receiver<usize>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut total = 0;
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total += n;
                    }
                    let _ = tx.send(total);
                });
            }
        });
        Sink { addr, received }
    }
}

/// Sends `len` bytes on each connection, then closes.
pub fn source(len: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let chunk: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 + i / 251) as u8).collect();
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

/// Sends `len` bytes through `entry` to `sink`; MB/s until the sink has
/// them all.
pub fn upload(entry: SocketAddr, sink: &Sink, len: usize) -> f64 {
    let start = Instant::now();
    let mut stream = TcpStream::connect(entry).unwrap();
    let chunk = vec![0x5au8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    drop(stream);
    // Empty connections (a subject's readiness probe) report 0: skip them.
    let got = loop {
        match sink
            .received
            .recv_timeout(Duration::from_secs(300))
            .unwrap()
        {
            0 => continue,
            n => break n,
        }
    };
    assert_eq!(got, len, "short upload through {entry}");
    len as f64 / MB / start.elapsed().as_secs_f64()
}

pub fn download(entry: SocketAddr, len: usize) -> f64 {
    let start = Instant::now();
    assert_eq!(pull(entry), len, "short download through {entry}");
    len as f64 / MB / start.elapsed().as_secs_f64()
}

fn pull(entry: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(entry).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("download through {entry}: {e}"),
        }
    }
}

/// 64-byte request, 64-byte answer, on one connection: p50 and p99.
pub fn round_trips(entry: SocketAddr, count: usize) -> (Duration, Duration) {
    let mut stream = TcpStream::connect(entry).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut samples = Vec::with_capacity(count);
    let mut buf = [0u8; 64];
    for i in 0..count + 20 {
        let start = Instant::now();
        stream.write_all(&[i as u8; 64]).unwrap();
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [i as u8; 64]);
        if i >= 20 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    (samples[count / 2], samples[count * 99 / 100])
}

/// A new connection each time: connect, send one byte, get it echoed.
/// Returns the median.
pub fn first_echo(entry: SocketAddr, count: usize) -> Duration {
    let mut samples: Vec<Duration> = (0..count)
        .map(|_| {
            let start = Instant::now();
            let mut stream = TcpStream::connect(entry).unwrap();
            stream.set_nodelay(true).unwrap();
            stream.write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            stream.read_exact(&mut one).unwrap();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[count / 2]
}

/// `streams` downloads of `len` bytes at once: aggregate MB/s.
pub fn parallel(entry: SocketAddr, streams: usize, len: usize) -> f64 {
    let start = Instant::now();
    let workers: Vec<_> = (0..streams)
        .map(|_| std::thread::spawn(move || pull(entry)))
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap(), len);
    }
    (streams * len) as f64 / MB / start.elapsed().as_secs_f64()
}

/// User plus system CPU seconds the processes have used so far.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            // Fields after the command name, which is in parentheses.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields[11].parse().unwrap();
            let stime: f64 = fields[12].parse().unwrap();
            (utime + stime) / ticks
        })
        .sum()
}

/// Peak resident set of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// A target that accepts connections, counts them, and holds them open
/// without a byte either way.
pub struct Holder {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Holder {
    pub fn start() -> Holder {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Holder { addr, accepted }
    }

    /// Waits until `n` connections have arrived since `before`.
    pub fn wait_for(&self, before: usize, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.accepted.load(Ordering::SeqCst) < before + n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Opens `n` connections through `entry` and keeps them.
pub fn open_idle(entry: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(entry).unwrap()).collect()
}

/// Sends to each connection until it closes, on every address of the
/// namespace it is started in (direct TCP from another host reaches it).
pub fn endless_source() -> SocketAddr {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let chunk = vec![0xa5u8; 64 * 1024];
                while stream.write_all(&chunk).is_ok() {}
            });
        }
    });
    addr
}

/// Reads from `entry` for `warmup`, then counts what arrives over
/// `window`: Mbit/s of goodput once the sender is up to speed.
pub fn goodput_mbit(entry: SocketAddr, warmup: Duration, window: Duration) -> f64 {
    let mut stream = TcpStream::connect(entry).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let (counting, end) = (start + warmup, start + warmup + window);
    let mut counted = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            return counted as f64 * 8.0 / MB / window.as_secs_f64();
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("download through {entry} ended early"),
            Ok(n) if now >= counting => counted += n,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("download through {entry}: {e}"),
        }
    }
}

/// A 64-byte request and its echo every `every`, for `duration`: each
/// round trip.
pub fn pings(entry: SocketAddr, every: Duration, duration: Duration) -> Vec<Duration> {
    let mut stream = TcpStream::connect(entry).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    // The first answer also waits for the tunnel to open: not a sample.
    stream.write_all(&[0xff; 64]).unwrap();
    stream.read_exact(&mut buf).unwrap();
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut next = start;
    while next < start + duration {
        let now = Instant::now();
        if next > now {
            // The schedule itself: one request per tick.
            std::thread::sleep(next - now);
        }
        let sent = Instant::now();
        stream.write_all(&[samples.len() as u8; 64]).unwrap();
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(buf, [samples.len() as u8; 64]);
        samples.push(sent.elapsed());
        next += every;
    }
    samples
}

/// The median (the upper middle one for an even count).
pub fn middle<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// The `p`th percentile of `samples`.
pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}
