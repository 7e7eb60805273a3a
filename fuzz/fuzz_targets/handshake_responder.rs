//! A responder core fed arbitrary datagrams: it must never panic and never
//! answer anything, since no fuzzer input carries a valid mac1 and handshake.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use toxtun::proto::identity::Identity;
use toxtun::proto::{FriendNet, FriendNetConfig};

fn identity() -> Arc<Identity> {
    static IDENTITY: OnceLock<Arc<Identity>> = OnceLock::new();
    IDENTITY
        .get_or_init(|| Arc::new(Identity::generate()))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = FriendNetConfig {
        keepalive: Duration::from_secs(15),
        friend_timeout: Duration::from_secs(45),
        psk: [0; 32],
        accept_requests: true,
        lan_discovery: false,
        max_friends: 1024,
    };
    let mut core = FriendNet::new(
        identity(),
        config,
        now,
        Duration::from_secs(1_800_000_000),
        1,
    );
    let from = "192.0.2.7:4000".parse().unwrap();
    core.handle_datagram(now, from, data);
    // A valid mac1 on an initiation lets the responder try the Noise read too.
    if data.len() == toxtun::proto::wire::INITIATION_LEN {
        let mut packet = data.to_vec();
        let (mac1_at, mac2_at) = (toxtun::proto::wire::MAC1_AT, toxtun::proto::wire::MAC2_AT);
        let key = toxtun::proto::handshake::mac1_key(&identity().noise_public);
        let mac = toxtun::proto::handshake::mac1(&key, &packet[..mac1_at]);
        packet[mac1_at..mac2_at].copy_from_slice(&mac);
        core.handle_datagram(now, from, &packet);
    }
    assert!(core.poll_transmit().is_none(), "answered a stranger");
    assert!(core.poll_event().is_none());
});
