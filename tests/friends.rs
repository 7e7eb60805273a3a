//! Two real nodes on loopback shake hands and exchange keepalives; a node
//! that is not a friend gets nothing back but the public record.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{id_of, write_config, Node, NO_LAN, WAIT};

const FAST: &str = "listen = 127.0.0.1:0\nkeepalive = 200ms\nfriend_timeout = 2s\n";

#[test]
fn friends_handshake_and_exchange_keepalives() {
    let dir = tempfile::tempdir().unwrap();
    let client_config = write_config(dir.path(), "client", FAST);
    let client_id = id_of(&client_config);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[server]\nfriends = {client_id}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    let server_addr = server.udp_addr();
    std::fs::write(
        &client_config,
        format!(
            "[node]\nkey_file = client.key\n{NO_LAN}{FAST}[peers]\n{id} = {server_addr}\n\
             [client]\nt = 127.0.0.1:0:127.0.0.1:9:{id}\n",
            id = server.id
        ),
    )
    .unwrap();
    let client = Node::start("client", &client_config, "client");
    assert_eq!(client.id, client_id);
    client.wait_for(&["friend online", &server.id[..64]], WAIT);
    server.wait_for(&["friend online", &client_id[..64]], WAIT);
    // Several authenticated keepalives each way, not just the confirmation.
    for node in [&client, &server] {
        node.wait_for_count(&["keepalive received"], 3, WAIT);
    }
}

/// HELLO_REPLY's type byte: the public record, which anyone may have.
const HELLO_REPLY: u8 = 2;

/// Forwards between a node and the server; counts the datagrams forwarded,
/// and the bytes that came back other than HELLO_REPLY.
fn counting_relay(
    server: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    let front_addr = front.local_addr().unwrap();
    let forwarded = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let (fwd, ret) = (forwarded.clone(), returned.clone());
    let front2 = front.try_clone().unwrap();
    let back2 = back.try_clone().unwrap();
    let client_addr = Arc::new(std::sync::Mutex::new(None));
    let client_addr2 = client_addr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            *client_addr.lock().unwrap() = Some(from);
            fwd.fetch_add(1, Ordering::SeqCst);
            let _ = back.send(&buf[..n]);
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = back2.recv(&mut buf) {
            if buf[0] != HELLO_REPLY {
                ret.fetch_add(n, Ordering::SeqCst);
            }
            if let Some(to) = *client_addr2.lock().unwrap() {
                let _ = front2.send_to(&buf[..n], to);
            }
        }
    });
    (front_addr, forwarded, returned)
}

#[test]
fn stranger_gets_nothing_but_the_public_record() {
    let dir = tempfile::tempdir().unwrap();
    let friend_config = write_config(dir.path(), "friend", FAST);
    let friend_id = id_of(&friend_config);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[server]\nfriends = {friend_id}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    let (relay, forwarded, returned) = counting_relay(server.udp_addr());
    let stranger_config = write_config(
        dir.path(),
        "stranger",
        &format!(
            "{FAST}[peers]\n{id} = {relay}\n[client]\nt = 127.0.0.1:0:127.0.0.1:9:{id}\n",
            id = server.id
        ),
    );
    let stranger = Node::start("stranger", &stranger_config, "client");
    // The stranger gets the record (as from any bootstrap node), then its
    // message 1 is refused, and it keeps retrying with backoff. Any answer
    // to the first retries would have been relayed before the server even
    // read the later ones.
    server.wait_for(&["refused handshake: not a friend"], WAIT);
    // A HELLO and three message 1s were forwarded at least a retry (250 ms
    // or more) before the fourth message 1 was sent.
    stranger.wait_for_count(&["sent handshake"], 4, WAIT);
    assert!(forwarded.load(Ordering::SeqCst) >= 4);
    assert_eq!(
        returned.load(Ordering::SeqCst),
        0,
        "the server answered a stranger"
    );
    assert_eq!(stranger.count(&["friend online"]), 0);
    assert_eq!(server.count(&["friend online"]), 0);
}

#[test]
fn a_named_friend_is_a_friend_and_shows_by_name_in_log_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let client_config = write_config(dir.path(), "client", FAST);
    let client_id = id_of(&client_config);
    let server_config = write_config(
        dir.path(),
        "server",
        &format!("{FAST}[friends]\nlaptop = {client_id}\n"),
    );
    let server = Node::start("server", &server_config, "server");
    std::fs::write(
        &client_config,
        format!(
            "[node]\nkey_file = client.key\n{NO_LAN}{FAST}[peers]\n{id} = {}\n\
             [client]\nt = 127.0.0.1:0:127.0.0.1:9:{id}\n",
            server.udp_addr(),
            id = server.id
        ),
    )
    .unwrap();
    let _client = Node::start("client", &client_config, "client");
    server.wait_for(
        &["friend online", &format!("{} (laptop)", &client_id[..64])],
        WAIT,
    );
    let status = common::status_json(None, &server_config);
    assert_eq!(status["friends"][0]["name"], "laptop", "{status}");
    // Naming a friend lists it: no one else is accepted by ID alone.
    assert!(
        !server.log_text().contains("accepted friend request"),
        "the named friend came in as a stranger's request"
    );
}

#[test]
fn a_psk_mismatch_is_a_warning_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let psk = |byte: &str| format!("psk = {}\n", byte.repeat(32));
    let server_config = write_config(dir.path(), "server", &format!("{FAST}{}", psk("aa")));
    let server = Node::start("server", &server_config, "server");
    let client_config = write_config(
        dir.path(),
        "client",
        &format!(
            "{FAST}{}[peers]\n{id} = {}\n[client]\nt = 127.0.0.1:0:127.0.0.1:9:{id}\n",
            psk("bb"),
            server.udp_addr(),
            id = server.id
        ),
    );
    let client = Node::start("client", &client_config, "client");
    // The client cannot read the server's answer; the server never hears
    // the client confirm its keys.
    let line = client.wait_for(&["response that did not decrypt", "psk differs"], WAIT);
    assert!(
        line.contains(" WARN ") && line.contains(&server.id[..64]),
        "{line}"
    );
    let line = server.wait_for(&["confirms none of the handshakes", "psk differs"], WAIT);
    assert!(
        line.contains(" WARN ") && line.contains(&client.id[..64]),
        "{line}"
    );
}
