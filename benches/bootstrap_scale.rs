//! A bootstrap node's work per lookup and per relayed packet, with 1,000
//! and with 100,000 registered nodes: nothing it does per packet may grow
//! with its table. Run: cargo bench --bench bootstrap_scale

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use toxtun::bootstrap::{Bootstrap, BootstrapConfig};
use toxtun::proto::identity::Identity;
use toxtun::proto::record::Record;
use toxtun::proto::rendezvous::{self, Rendezvous};

const UNIX_NOW: u64 = 1_800_000_000;
const OPERATIONS: u32 = 1_000_000;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(((0x0A00_0000 | i).to_be_bytes(), 33445))
}

/// A bootstrap node with `nodes` registered (each proved its address);
/// returns it, the time it ended at, and the first two nodes' keys.
fn populated(nodes: u32) -> (Bootstrap, Instant, Vec<Identity>) {
    let mut now = Instant::now();
    let mut core = Bootstrap::new(
        BootstrapConfig {
            relay_rate: u64::MAX / 4,
            relay_burst: u64::MAX / 4,
            entry_ttl: Duration::from_secs(24 * 3600),
            max_nodes: nodes as usize,
            seed: 1,
        },
        now,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut first = Vec::new();
    for i in 0..nodes {
        // Past the per-source and total rate limits of signature checks.
        now += Duration::from_millis(1);
        let identity = Identity::generate_from(&mut rng);
        let record = Record::new(&identity, 1, UNIX_NOW + 600, Vec::new()).encode(&identity);
        core.handle_datagram(
            now,
            UNIX_NOW,
            addr(i),
            &rendezvous::announce(&[0; 8], &record),
        );
        let challenge = core.poll_transmit().expect("a challenge").payload;
        let Some(Rendezvous::Challenge { nonce, cookie }) = rendezvous::parse(&challenge) else {
            panic!("no challenge");
        };
        let proof = identity.sign(&[rendezvous::PROOF_DOMAIN, &cookie].concat());
        let proven = rendezvous::proven_announce(&nonce, &cookie, &proof, &record);
        core.handle_datagram(now, UNIX_NOW, addr(i), &proven);
        assert!(core.poll_transmit().is_some(), "node {i} not registered");
        if first.len() < 2 {
            first.push(identity);
        }
    }
    (core, now, first)
}

/// Nanoseconds per lookup and per relayed packet.
fn measure(nodes: u32) -> (f64, f64) {
    let (mut core, now, first) = populated(nodes);
    let target = first[1].public_key();
    let asker = SocketAddr::from(([192, 0, 2, 1], 9));
    let lookup = rendezvous::lookup(&[1; 8], &target);
    let start = Instant::now();
    for _ in 0..OPERATIONS {
        core.handle_datagram(now, UNIX_NOW, asker, &lookup);
        assert!(core.poll_transmit().is_some());
    }
    let per_lookup = start.elapsed().as_nanos() as f64 / OPERATIONS as f64;
    let mut inner = vec![toxtun::proto::wire::DATA, 0, 0, 0];
    inner.resize(1200, 0xAB);
    let relay = rendezvous::relay(rendezvous::RELAY, &target, &inner);
    let start = Instant::now();
    for _ in 0..OPERATIONS {
        core.handle_datagram(now, UNIX_NOW, addr(0), &relay);
        assert!(core.poll_transmit().is_some());
    }
    let per_relay = start.elapsed().as_nanos() as f64 / OPERATIONS as f64;
    // The next expiry and eviction look only at the oldest entry.
    let start = Instant::now();
    for _ in 0..OPERATIONS {
        std::hint::black_box(core.poll_timeout());
    }
    let per_timeout = start.elapsed().as_nanos() as f64 / OPERATIONS as f64;
    println!("{nodes:>7} nodes: lookup {per_lookup:.0} ns, relayed packet {per_relay:.0} ns, poll_timeout {per_timeout:.1} ns");
    (per_lookup, per_relay)
}

fn main() {
    let small = measure(1_000);
    let large = measure(100_000);
    println!(
        "100,000 / 1,000 nodes: lookup {:.2}x, relayed packet {:.2}x (target: within 1.2x)",
        large.0 / small.0,
        large.1 / small.1
    );
}
