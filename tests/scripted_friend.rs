//! A scripted friend sends OPENs a server must refuse, to the core on the
//! simulated network and to the real binary: the REFUSE that comes back
//! carries the reason code, not only text.

mod common;

use std::time::{Duration, Instant};

use common::scripted::{push_segment, ScriptedFriend};
use common::sim::{addr, Host, Net};
use common::{write_config, Node, WAIT};
use toxtun::id::ToxId;
use toxtun::proto::reason::ReasonCode;
use toxtun::proto::tunnel::allow::AllowRule;
use toxtun::proto::tunnel::control::{Control, PROTOCOL_TCP};
use toxtun::proto::Event;

const SERVER: usize = 0;
const FRIEND: usize = 1;

/// `server` on the simulated network with a scripted friend that has a
/// session with it.
fn with_scripted_friend(now: Instant, server: Host) -> Net {
    let friend = ScriptedFriend::new(addr(3), now, 3, server.id(), server.addr);
    let mut net = Net::new(now);
    net.add(server);
    net.add(friend);
    let online = net.run_until(Duration::from_secs(5), &mut |_, _| false, &mut |n| {
        n.get::<ScriptedFriend>(FRIEND).online
    });
    assert!(online, "the scripted friend never got a session");
    net
}

fn open(request: u32, protocol: u8, target: &str) -> Control {
    Control::Open {
        request,
        protocol,
        target: target.into(),
    }
}

/// The code of the REFUSE for `request`, once it arrived.
fn refusal_code(friend: &ScriptedFriend, request: u32) -> Option<(ReasonCode, String)> {
    friend.received.iter().find_map(|m| match m {
        Control::Refuse {
            request: r,
            refusal,
        } if *r == request => Some((refusal.code, refusal.text.clone())),
        _ => None,
    })
}

#[test]
fn the_core_refuses_with_a_reason_code() {
    let now = Instant::now();
    let only_port_1 = AllowRule {
        host: Some("127.0.0.1".into()),
        port: Some(1),
    };
    let mut net = with_scripted_friend(now, Host::with_allow(1, now, 1, Some(vec![only_port_1])));

    let now = net.now;
    let friend = net.get_mut::<ScriptedFriend>(FRIEND);
    friend.send_control(now, &open(5, PROTOCOL_TCP, "127.0.0.1:2"));
    friend.send_control(now, &open(6, 9, "127.0.0.1:1"));
    friend.send_control(now, &open(7, PROTOCOL_TCP, "not an address"));
    friend.send_control(now, &open(8, PROTOCOL_TCP, "127.0.0.1:1"));
    let answered = net.run_until(Duration::from_secs(5), &mut |_, _| false, &mut |n| {
        let f = n.get::<ScriptedFriend>(FRIEND);
        [5, 6, 7].iter().all(|r| refusal_code(f, *r).is_some())
    });
    assert!(answered, "refusals missing");
    let friend = net.get::<ScriptedFriend>(FRIEND);
    let (code, text) = refusal_code(friend, 5).unwrap();
    assert_eq!(code, ReasonCode::NotAllowed, "{text}");
    assert!(text.contains("not in the allow list"), "{text}");
    assert_eq!(
        refusal_code(friend, 6).unwrap().0,
        ReasonCode::ProtocolError
    );
    assert_eq!(
        refusal_code(friend, 7).unwrap().0,
        ReasonCode::ProtocolError
    );
    // The allowed one is not refused: the server asks its driver to connect.
    assert!(refusal_code(friend, 8).is_none());
    let connects: Vec<String> = net
        .host(SERVER)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Connect { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(connects, ["127.0.0.1:1"]);
}

#[test]
fn the_real_server_refuses_with_a_reason_code() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "server",
        "listen = 127.0.0.1:0\n[server]\nallow = 127.0.0.1:1\n",
    );
    let server = Node::start("server", &config, "server");
    let server_addr = server.udp_addr();
    let id: ToxId = server.id.parse().unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut friend = ScriptedFriend::new(
        socket.local_addr().unwrap(),
        Instant::now(),
        4,
        id,
        server_addr,
    );
    let online = friend.drive(&socket, server_addr, WAIT, &mut |f| f.online);
    assert!(online, "no session with the real server");
    friend.send_control(Instant::now(), &open(1, PROTOCOL_TCP, "127.0.0.1:2"));
    let refused = friend.drive(&socket, server_addr, WAIT, &mut |f| {
        refusal_code(f, 1).is_some()
    });
    assert!(refused, "no REFUSE from the real server");
    let (code, text) = refusal_code(&friend, 1).unwrap();
    assert_eq!(code, ReasonCode::NotAllowed, "{text}");
    server.wait_for(&["refused tunnel", "not in the allow list"], WAIT);
}

#[test]
fn a_segment_larger_than_any_mtu_is_dropped_unread() {
    let now = Instant::now();
    let mut net = with_scripted_friend(now, Host::new(1, now, true, 1));
    net.idle(Duration::from_secs(1));
    // The server acknowledges a segment of normal size at once...
    net.record = true;
    let now = net.now;
    net.get_mut::<ScriptedFriend>(FRIEND)
        .send_segment(now, &push_segment(0, 0, 1000));
    net.pump(&mut |_, _| false);
    let answered = net.sent.iter().filter(|(from, _)| *from == SERVER).count();
    assert!(answered > 0, "a normal segment got no acknowledgement");
    // ...and drops one of 63 KB (sequence 2: out of order, which KCP would
    // buffer) without a word.
    net.sent.clear();
    net.get_mut::<ScriptedFriend>(FRIEND)
        .send_segment(now, &push_segment(0, 2, 63 * 1024));
    net.pump(&mut |_, _| false);
    let answered = net.sent.iter().filter(|(from, _)| *from == SERVER).count();
    assert_eq!(answered, 0, "an oversized segment was taken in");
}
