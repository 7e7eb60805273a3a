//! Sockets for LAN discovery: the shared listening socket on the LAN port,
//! and the broadcast address of every interface that has one.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::proto::lan;

/// Bound with SO_REUSEADDR and SO_REUSEPORT so every node on the host can
/// listen: the kernel gives each of them its own copy of a broadcast.
pub fn bind() -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, lan::PORT)).into())?;
    Ok(socket.into())
}

/// An IPv4 interface that is up and not loopback.
struct Interface {
    addr: Ipv4Addr,
    broadcast: Option<Ipv4Addr>,
}

/// Broadcast addresses of the IPv4 interfaces that are up and not loopback.
pub fn broadcast_addrs() -> Vec<Ipv4Addr> {
    interfaces()
        .into_iter()
        .filter_map(|i| i.broadcast)
        .collect()
}

/// Addresses of the IPv4 interfaces that are up and not loopback: where a
/// socket bound to 0.0.0.0 can be reached.
pub fn local_addrs() -> Vec<Ipv4Addr> {
    interfaces().into_iter().map(|i| i.addr).collect()
}

fn interfaces() -> Vec<Interface> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        let wanted = flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_LOOPBACK as u32 == 0;
        if !wanted || ifa.ifa_addr.is_null() {
            continue;
        }
        let has_broadcast = flags & libc::IFF_BROADCAST as u32 != 0 && !ifa.ifa_ifu.is_null();
        // SAFETY: both point to sockaddrs owned by the list; each family is
        // checked before reading it as sockaddr_in.
        unsafe {
            let ipv4 = |sockaddr: *const libc::sockaddr| {
                ((*sockaddr).sa_family as i32 == libc::AF_INET).then(|| {
                    let sin = &*(sockaddr as *const libc::sockaddr_in);
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
                })
            };
            let Some(addr) = ipv4(ifa.ifa_addr) else {
                continue;
            };
            let broadcast = if has_broadcast {
                ipv4(ifa.ifa_ifu)
            } else {
                None
            };
            found.push(Interface { addr, broadcast });
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}
