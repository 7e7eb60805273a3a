//! A server core with one online friend, fed arbitrary payloads over the
//! friend's real session: as they stand (any frame type), as KCP input on
//! the control channel or a tunnel channel, and as control messages on a
//! working control channel. No panic, whatever an authenticated friend
//! sends.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use toxtun::id::PeerRef;
use toxtun::proto::identity::Identity;
use toxtun::proto::tunnel::allow::AllowRule;
use toxtun::proto::tunnel::kcp_settings::KcpSettings;
use toxtun::proto::tunnel::limits::TunnelLimits;
use toxtun::proto::tunnel::link::new_pipe;
use toxtun::proto::tunnel::outbox::{Outbox, FRAME_KCP};
use toxtun::proto::{Core, FriendNet, FriendNetConfig, TunnelConfig};

const UNIX: Duration = Duration::from_secs(1_800_000_000);

fn identity(seed: u64) -> Arc<Identity> {
    Arc::new(Identity::generate_from(
        &mut rand::rngs::StdRng::seed_from_u64(seed),
    ))
}

fn net_config(accept_requests: bool) -> FriendNetConfig {
    FriendNetConfig {
        keepalive: Duration::from_secs(15),
        friend_timeout: Duration::from_secs(45),
        psk: [0; 32],
        accept_requests,
        lan_discovery: false,
        max_friends: 1024,
    }
}

fn keys() -> &'static (Arc<Identity>, Arc<Identity>) {
    static KEYS: OnceLock<(Arc<Identity>, Arc<Identity>)> = OnceLock::new();
    KEYS.get_or_init(|| (identity(1), identity(2)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let (server_id, friend_id) = keys();
    let server_addr: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let friend_addr: SocketAddr = "10.0.0.1:2".parse().unwrap();
    let tunnels = TunnelConfig {
        kcp: KcpSettings::default(),
        open_timeout: Duration::from_secs(15),
        idle_timeout: Duration::from_secs(3600),
        udp_idle_timeout: Duration::from_secs(60),
        limits: TunnelLimits::default(),
        allow: Some(vec![AllowRule {
            host: None,
            port: None,
        }]),
        services: Default::default(),
    };
    let net = FriendNet::new(server_id.clone(), net_config(true), now, UNIX, 1);
    let mut server = Core::new(net, tunnels, now);
    let mut friend = FriendNet::new(friend_id.clone(), net_config(false), now, UNIX, 2);
    friend.add_friend(now, PeerRef::Id(server_id.id()), Some(server_addr), true);
    friend.handle_timeout(now);
    // Handshake until the server sees the friend online.
    for _ in 0..8 {
        while let Some(t) = friend.poll_transmit() {
            server.handle_datagram(now, friend_addr, &t.payload);
        }
        while let Some(t) = server.poll_transmit(now) {
            friend.handle_datagram(now, server_addr, &t.payload);
        }
    }
    let key = server_id.public_key();
    assert!(friend.is_online(&key), "no session to fuzz over");
    match mode % 3 {
        0 => {
            friend.send(now, &key, payload);
        }
        1 => {
            let mut framed = vec![FRAME_KCP];
            framed.extend_from_slice(payload);
            friend.send(now, &key, &framed);
        }
        _ => {
            let outbox = Outbox::default();
            let mut control = new_pipe(0, &KcpSettings::default(), &outbox, 0);
            let _ = control.send(payload);
            let _ = control.flush();
            while let Some(frame) = outbox.pop(now, None) {
                friend.send(now, &key, &frame);
            }
        }
    }
    while let Some(t) = friend.poll_transmit() {
        server.handle_datagram(now, friend_addr, &t.payload);
    }
    server.handle_timeout(now + Duration::from_secs(1));
    while server.poll_transmit(now).is_some() {}
    while server.poll_event().is_some() {}
});
