//! One friend cannot take a server down for another: friend A (scripted)
//! opens a thousand tunnels to a target that never accepts and keeps
//! flooding OPENs at a server with 256 descriptors, while friend B (the
//! real client) moves 8 MiB each way and `status` keeps answering. Before
//! the limits, A's pending connects took every descriptor: B's target
//! connect and the control socket failed with EMFILE.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::scripted::ScriptedFriend;
use common::sim::identity;
use common::traffic::{exchange, pattern_hash, Target};
use common::{status_json, tunnel_line, write_config, Node, WAIT};
use toxtun::id::ToxId;
use toxtun::proto::reason::ReasonCode;
use toxtun::proto::tunnel::control::{Control, PROTOCOL_TCP};

const MIB: usize = 1024 * 1024;
const FRIEND_A_SEED: u64 = 41;

/// A listener whose accept queue is full and that never accepts: every
/// further connect to it hangs until the connector gives up.
fn never_accepting() -> (SocketAddr, socket2::Socket, Vec<TcpStream>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // A backlog of 0 still queues one; fill it (and one more for luck).
    let fillers = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
        .collect();
    (addr, socket, fillers)
}

/// What friend A saw: how many of its OPENs were refused for a limit.
struct Flood {
    limit_refusals: usize,
    other_refusals: Vec<String>,
}

/// Friend A: a session with the server, then OPENs until `stop`.
fn flood_opens(
    server: SocketAddr,
    server_id: ToxId,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    started: mpsc::Sender<()>,
) -> Flood {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut friend = ScriptedFriend::new(
        socket.local_addr().unwrap(),
        Instant::now(),
        FRIEND_A_SEED,
        server_id,
        server,
    );
    assert!(
        friend.drive(&socket, server, WAIT, &mut |f| f.online),
        "friend A got no session"
    );
    let open = |request: u32| Control::Open {
        request,
        protocol: PROTOCOL_TCP,
        target: target.to_string(),
    };
    let mut request = 0;
    for _ in 0..10 {
        for _ in 0..100 {
            request += 1;
            friend.send_control(Instant::now(), &open(request));
        }
        friend.drive(&socket, server, Duration::from_millis(50), &mut |_| false);
    }
    let _ = started.send(());
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..20 {
            request += 1;
            friend.send_control(Instant::now(), &open(request));
        }
        friend.drive(&socket, server, Duration::from_millis(20), &mut |_| false);
    }
    let mut flood = Flood {
        limit_refusals: 0,
        other_refusals: Vec::new(),
    };
    for message in &friend.received {
        if let Control::Refuse { refusal, .. } = message {
            if refusal.code == ReasonCode::LimitReached {
                flood.limit_refusals += 1;
            } else {
                flood.other_refusals.push(refusal.to_string());
            }
        }
    }
    flood
}

fn status_answers(config: &std::path::Path) {
    let status = status_json(None, config);
    assert!(status["friends"].is_array(), "{status}");
}

#[test]
fn a_friend_flooding_tunnels_leaves_room_for_another() {
    if !common::has_prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (stuck, _listener, _fillers) = never_accepting();
    let target = Target::start(7, 8 * MIB);
    let friend_b_config = write_config(dir.path(), "b", "listen = 127.0.0.1:0\n");
    let friend_b_id = common::id_of(&friend_b_config);
    let friend_a_id = identity(FRIEND_A_SEED).id();
    let server_config = write_config(
        dir.path(),
        "server",
        &format!(
            "listen = 127.0.0.1:0\n[server]\nfriends = {friend_a_id}, {friend_b_id}\nallow = 127.0.0.1:*\nconnect_timeout = 120s\n"
        ),
    );
    let server = Node::start_limited(256, "server", &server_config, "server");
    let server_addr = server.udp_addr();
    let server_id: ToxId = server.id.parse().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (started, flooding) = mpsc::channel();
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || flood_opens(server_addr, server_id, stuck, stop, started))
    };
    flooding
        .recv_timeout(WAIT)
        .expect("friend A never sent its 1000 OPENs");
    status_answers(&server_config);

    std::fs::write(
        &friend_b_config,
        format!(
            "[node]\nkey_file = b.key\nlisten = 127.0.0.1:0\nlan_discovery = off\n[peers]\n{} = {server_addr}\n[client]\n{}",
            server.id,
            tunnel_line("t0", target.addr, &server.id)
        ),
    )
    .unwrap();
    let friend_b = Node::start("b", &friend_b_config, "client");
    let tunnel = friend_b.tunnel_addr();
    for round in 0..2 {
        // Bounded: before the limits, B's connect waited until A's gave up.
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || done.send(exchange(tunnel, 100 + round, 8 * MIB)));
        let (received, hash) = result
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("round {round}: friend B's 8 MiB did not get through"));
        assert_eq!(received, 8 * MIB, "round {round}");
        assert_eq!(hash, pattern_hash(7, 8 * MIB), "round {round}");
        let seen = target.next_seen(WAIT);
        assert_eq!(seen.received, 8 * MIB, "round {round}");
        assert_eq!(
            seen.hash,
            pattern_hash(100 + round, 8 * MIB),
            "round {round}"
        );
        status_answers(&server_config);
    }

    stop.store(true, Ordering::Relaxed);
    let flood = flood.join().unwrap();
    assert!(
        flood.limit_refusals >= 800,
        "friend A was refused {} OPENs for a limit",
        flood.limit_refusals
    );
    assert!(
        flood.other_refusals.is_empty(),
        "{:?}",
        flood.other_refusals
    );
    let lines = server.count(&["refused tunnel", "limit reached"]);
    assert!(
        lines <= 3,
        "{lines} log lines for {} refusals",
        flood.limit_refusals
    );
    println!(
        "friend A: {} OPENs refused for a limit, logged in {lines} lines",
        flood.limit_refusals
    );
}
