//! Sockets for LAN discovery: the shared listening socket on the LAN port,
//! and where a query goes out on each interface.

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
    name: String,
    index: u32,
    addr: Ipv4Addr,
    broadcast: Option<Ipv4Addr>,
}

/// Where a LAN query goes out on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastTarget {
    /// The interface's own broadcast address.
    Directed(Ipv4Addr),
    /// An interface with no broadcast address (one added without `brd`):
    /// the limited broadcast address, sent out through that interface from
    /// its address, since the routing table alone would pick one interface
    /// for 255.255.255.255, or none.
    Limited {
        interface: String,
        index: u32,
        source: Ipv4Addr,
    },
}

/// Where LAN queries go: one target per IPv4 interface that is up and not
/// loopback.
pub fn broadcast_targets() -> Vec<BroadcastTarget> {
    interfaces()
        .into_iter()
        .map(|i| match i.broadcast {
            Some(broadcast) => BroadcastTarget::Directed(broadcast),
            None => BroadcastTarget::Limited {
                interface: i.name,
                index: i.index,
                source: i.addr,
            },
        })
        .collect()
}

/// Sends `payload` to 255.255.255.255:`port` out of interface `index`,
/// from `source`, with one system call on the non-blocking socket `fd`.
pub fn send_limited(
    fd: std::os::fd::RawFd,
    payload: &[u8],
    port: u16,
    index: u32,
    source: Ipv4Addr,
) -> std::io::Result<()> {
    let dst = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::BROADCAST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let info = libc::in_pktinfo {
        ipi_ifindex: index as libc::c_int,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(source).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    // Room for one cmsghdr with an in_pktinfo, aligned as cmsghdr needs.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the
    // sendmsg call, and the control buffer is large enough for the one
    // cmsg written into it (CMSG_SPACE of in_pktinfo is 32 bytes of 64).
    unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_name = &dst as *const libc::sockaddr_in as *mut libc::c_void;
        header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen =
            libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = libc::IP_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in_pktinfo>(), info);
        if libc::sendmsg(fd, &header, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
            // Without `brd`, getifaddrs gives the address itself here.
            let broadcast = if has_broadcast {
                ipv4(ifa.ifa_ifu).filter(|b| !b.is_unspecified() && *b != addr)
            } else {
                None
            };
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name);
            found.push(Interface {
                name: name.to_string_lossy().into_owned(),
                index: libc::if_nametoindex(ifa.ifa_name),
                addr,
                broadcast,
            });
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}
