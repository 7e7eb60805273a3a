//! The core decides when a bootstrap node needs a TCP stream link and owns
//! the retry: after a failed attempt, and after a link that closes, the
//! next request comes on the core's own deadline, not whenever something
//! else happens to wake the loop.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::sim::{addr, identity, Host, Net};
use toxtun::proto::friendnet::STREAM_LINK_RETRY;
use toxtun::proto::Event;

const CLIENT: usize = 0;

/// A client whose one bootstrap node never answers over UDP (nothing is at
/// its address on the simulated network).
fn client_with_silent_bootstrap() -> (Net, SocketAddr) {
    let now = Instant::now();
    let mut client = Host::new(2, now, false, 2);
    let bootstrap = addr(9);
    client
        .core
        .net_mut()
        .add_bootstrap(now, bootstrap, identity(9).id());
    let mut net = Net::new(now);
    net.add(client);
    (net, bootstrap)
}

fn wants(net: &Net) -> usize {
    net.host(CLIENT)
        .events
        .iter()
        .filter(|e| matches!(e, Event::StreamLinkWanted { .. }))
        .count()
}

/// Runs until the next request for a stream link; returns when it came.
fn next_want(net: &mut Net) -> Instant {
    let before = wants(net);
    let asked = net.run_until(Duration::from_secs(60), &mut |_, _| false, &mut |n| {
        wants(n) > before
    });
    assert!(asked, "no stream link asked for");
    net.now
}

#[test]
fn a_failed_stream_link_is_asked_for_again_on_the_cores_own_deadline() {
    let (mut net, bootstrap) = client_with_silent_bootstrap();
    let start = net.now;
    let first = next_want(&mut net);
    assert!(
        first - start < Duration::from_secs(2),
        "took {:?}",
        first - start
    );
    assert!(net
        .host(CLIENT)
        .events
        .contains(&Event::StreamLinkWanted { addr: bootstrap }));
    // The driver could not connect.
    let failed_at = net.now;
    net.host_mut(CLIENT)
        .core
        .stream_link_down(failed_at, bootstrap);
    assert_eq!(next_want(&mut net) - failed_at, STREAM_LINK_RETRY);
}

#[test]
fn a_stream_link_that_closes_is_replaced() {
    let (mut net, bootstrap) = client_with_silent_bootstrap();
    next_want(&mut net);
    let up_at = net.now;
    net.host_mut(CLIENT).core.stream_link_up(up_at, bootstrap);
    net.record = true;
    // Up: the client announces over it at once.
    net.pump(&mut |_, _| false);
    assert!(
        net.sent
            .iter()
            .any(|(_, t)| t.unicast_addr() == Some(bootstrap)),
        "nothing sent to the bootstrap node when the link came up"
    );
    // It stays up (as far as the core knows) until the driver says it
    // closed: no new request meanwhile.
    net.idle(Duration::from_secs(20));
    assert_eq!(wants(&net), 1, "asked again while the link was up");
    let closed_at = net.now;
    net.host_mut(CLIENT)
        .core
        .stream_link_down(closed_at, bootstrap);
    assert_eq!(next_want(&mut net) - closed_at, STREAM_LINK_RETRY);
}
