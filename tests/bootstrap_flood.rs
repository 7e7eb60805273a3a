//! A bootstrap node under 20,000 announcements a second (the registered
//! node's own record replayed, and records of 100,000 throwaway keys) still
//! answers a registered node's lookups, and its memory stays bounded: none
//! of the flood proves an address, so none of it enters the table.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::by_id::Bootstrap;
use common::flood::Flood;
use rand::SeedableRng;
use toxtun::id::{PublicKey, ToxId};
use toxtun::proto::identity::Identity;
use toxtun::proto::record::Record;
use toxtun::proto::rendezvous::{self, Rendezvous};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 1s\n";
const RATE: u64 = 20_000;
const FLOOD: Duration = Duration::from_secs(10);
const THROWAWAY: usize = 100_000;
/// The bootstrap node's peak memory: its table holds only proven nodes.
const MAX_RSS_MIB: u64 = 64;

fn throwaway_records(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let key = Identity::generate_from(&mut rng);
            Record::new(&key, 1, 1_800_000_000, Vec::new()).encode(&key)
        })
        .collect()
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// The node's record as a LOOKUP hands it out; None if not known.
fn lookup(
    socket: &UdpSocket,
    bootstrap: SocketAddr,
    key: &PublicKey,
    nonce: u64,
) -> Option<Vec<u8>> {
    socket
        .send_to(&rendezvous::lookup(&nonce.to_le_bytes(), key), bootstrap)
        .unwrap();
    let mut buf = [0u8; 2048];
    loop {
        let n = socket.recv(&mut buf).ok()?;
        if let Some(Rendezvous::LookupReply { nonce: got, found }) = rendezvous::parse(&buf[..n]) {
            if got == nonce.to_le_bytes() {
                return found.map(|(_, record)| record.to_vec());
            }
        }
    }
}

#[test]
fn lookups_are_answered_through_an_announcement_flood() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Bootstrap::start(dir.path(), FAST);
    let bootstrap_addr = bootstrap.addr;
    let server = bootstrap.server(dir.path(), FAST, &[]);
    let key = server.id.parse::<ToxId>().unwrap().key;
    let asker = UdpSocket::bind("127.0.0.1:0").unwrap();
    asker
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let replayed = lookup(&asker, bootstrap_addr, &key, 0).expect("the server is not registered");
    // The throwaway keys, made on both cores.
    let halves: Vec<_> = (0..2u64)
        .map(|seed| std::thread::spawn(move || throwaway_records(THROWAWAY / 2, seed)))
        .collect();
    let mut records: Vec<Vec<u8>> = halves.into_iter().flat_map(|h| h.join().unwrap()).collect();
    records.push(replayed);

    // Every other one is the registered node's own record.
    let flood = Flood::start(bootstrap_addr, RATE, FLOOD, move |n| {
        let record = if n.is_multiple_of(2) {
            records.last().unwrap()
        } else {
            &records[(n / 2) as usize % THROWAWAY]
        };
        rendezvous::announce(&n.to_le_bytes(), record)
    });
    // Ten lookups a second while it lasts.
    let start = Instant::now();
    let (mut asked, mut answered) = (0u64, 0u64);
    while start.elapsed() < FLOOD {
        asked += 1;
        if lookup(&asker, bootstrap_addr, &key, asked).is_some() {
            answered += 1;
        }
        let next = start + Duration::from_millis(100) * asked as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let sent = flood.join();
    assert!(sent >= RATE * FLOOD.as_secs() * 9 / 10, "only {sent} sent");
    assert!(
        answered * 10 >= asked * 9,
        "{answered} of {asked} lookups answered"
    );
    let rss = peak_rss_mib(bootstrap.node.child.id());
    assert!(rss <= MAX_RSS_MIB, "bootstrap node peaked at {rss} MiB");
    assert_eq!(
        bootstrap.node.count(&["node announced"]),
        1,
        "a flood record entered the table"
    );
    println!("flood of {sent}: {answered} of {asked} lookups answered, peak RSS {rss} MiB");
}
