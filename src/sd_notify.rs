//! Telling a service manager how the node is doing: systemd's
//! `Type=notify` protocol, one datagram to the socket `NOTIFY_SOCKET`
//! names (a path, or an abstract name after '@'). Without that variable
//! this does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::{debug, warn};

/// The node serves: its sockets are bound and its listeners listen.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}\n"));
}

/// The node is stopping.
pub fn stopping() {
    send("STOPPING=1\n");
}

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent =
        addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr));
    match sent {
        Ok(_) => debug!(socket = %path, message = message.trim_end(), "told the service manager"),
        Err(e) => warn!(socket = %path, error = %e, "cannot notify the service manager"),
    }
}
