//! The UDP socket: bound, non-blocking, with buffers large enough to absorb
//! a burst of full KCP windows (the default ~200 KiB holds ~150 datagrams).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use tracing::debug;

/// Asked for each direction; the kernel may grant less.
const SOCKET_BUFFER: usize = 16 * 1024 * 1024;

/// Why the node's UDP address could not be bound, and what to do about
/// it: a port in use is most often another node already running.
pub fn bind_error(addr: SocketAddr, error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another program holds it, most likely another toxtun node already running \
             (`toxtun -c CONFIG status` asks it): stop that one, or set `listen` in [node] \
             to another port (port 0: any free one)"
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges",
        _ => "",
    };
    format!("cannot listen on UDP {addr}: {error}{hint}")
}

pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    for (force, plain, name) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "receive"),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "send"),
    ] {
        // The FORCE variant passes rmem_max/wmem_max when we have
        // CAP_NET_ADMIN; otherwise the plain one is capped by them.
        if set_int(&socket, force, SOCKET_BUFFER).is_err() {
            let _ = set_int(&socket, plain, SOCKET_BUFFER);
        }
        debug!(
            buffer = name,
            bytes = get_int(&socket, plain).unwrap_or(0),
            "UDP socket buffer"
        );
    }
    // Don't-fragment on every datagram, whatever the kernel learned from
    // ICMP: the core finds each path's size by probing (path_mtu.rs), and
    // a datagram fragmented here would make a probe pass that the path
    // cannot carry whole (and batched sends of that size then fail).
    let (level, option, probe) = match addr {
        SocketAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        ),
        SocketAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        ),
    };
    if let Err(e) = set_option(&socket, level, option, probe as usize) {
        debug!(error = %e, "cannot set don't-fragment probing mode");
    }
    Ok(socket)
}

fn set_int(socket: &UdpSocket, option: libc::c_int, value: usize) -> std::io::Result<()> {
    set_option(socket, libc::SOL_SOCKET, option, value)
}

fn set_option(
    socket: &UdpSocket,
    level: libc::c_int,
    option: libc::c_int,
    value: usize,
) -> std::io::Result<()> {
    let value = value as libc::c_int;
    // SAFETY: a valid socket fd and a pointer to a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_int(socket: &UdpSocket, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid socket fd and pointers to a live c_int and its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}
