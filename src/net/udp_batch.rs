//! Many datagrams per system call: sendmmsg and recvmmsg. At bulk rates a
//! tunnel moves ~100k datagrams a second each way, and one call per
//! datagram was a large share of the event loop's time (profiled).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Datagrams per call, each way.
pub const BATCH: usize = 32;
/// Larger than any datagram toxtun sends (a relayed DATA packet is about
/// 1420 bytes); a longer one arrives truncated and is dropped.
const SLOT: usize = 4096;

/// Sends as many of `datagrams` as the socket takes now, in order; returns
/// how many went (WouldBlock when none did).
pub fn send(fd: RawFd, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let count = datagrams.len().min(BATCH);
    let addrs: Vec<SockAddr> = datagrams[..count]
        .iter()
        .map(|(a, _)| SockAddr::from(*a))
        .collect();
    let mut iovecs: Vec<libc::iovec> = datagrams[..count]
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is a valid empty header.
    let mut headers: Vec<libc::mmsghdr> =
        (0..count).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (i, header) in headers.iter_mut().enumerate() {
        header.msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
        header.msg_hdr.msg_namelen = addrs[i].len();
        header.msg_hdr.msg_iov = &mut iovecs[i];
        header.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at an address and a buffer that outlive
    // the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), count as u32, 0) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Buffers for one recvmmsg call, allocated once.
pub struct RecvBatch {
    buffers: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buffers: vec![0; SLOT * BATCH],
            // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr.
            addrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            headers: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovecs: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// Receives up to BATCH datagrams without blocking; calls `each` with
    /// every one that arrived whole. Returns how many arrived.
    pub fn recv(
        &mut self,
        fd: RawFd,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        self.iovecs.clear();
        for slot in self.buffers.chunks_mut(SLOT) {
            self.iovecs.push(libc::iovec {
                iov_base: slot.as_mut_ptr() as *mut libc::c_void,
                iov_len: SLOT,
            });
        }
        for i in 0..BATCH {
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_flags = 0;
        }
        // SAFETY: the headers point at buffers and address slots owned by
        // self, which outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for i in 0..got {
            let header = &self.headers[i];
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            let Some(from) = socket_addr(&self.addrs[i]) else {
                continue;
            };
            let len = header.msg_len as usize;
            each(from, &self.buffers[i * SLOT..i * SLOT + len]);
        }
        Ok(got)
    }
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + i as usize * 30]).collect();
        let datagrams: Vec<(SocketAddr, &[u8])> =
            payloads.iter().map(|p| (to, p.as_slice())).collect();
        let mut sent = 0;
        while sent < datagrams.len() {
            sent += send(a.as_raw_fd(), &datagrams[sent..]).unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        for _ in 0..10_000 {
            if got.len() == payloads.len() {
                break;
            }
            let _ = batch.recv(b.as_raw_fd(), |from, bytes| {
                assert_eq!(from, a.local_addr().unwrap());
                got.push(bytes.to_vec());
            });
        }
        assert_eq!(got, payloads);
    }
}
