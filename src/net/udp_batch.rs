//! Many datagrams per system call: sendmmsg and recvmmsg, and where the
//! kernel offers it, segmentation offload both ways (UDP_SEGMENT to send a
//! run of equal datagrams as one, UDP_GRO to receive such a run as one).
//! At bulk rates a tunnel moves ~100k datagrams a second each way; the
//! per-datagram work in the kernel's UDP path was most of the event loop's
//! time (profiled).

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;

use socket2::SockAddr;
use tracing::debug;

/// Messages per call, each way. With offload one message carries a run.
pub const BATCH: usize = 32;
/// The kernel's limit on segments in one offloaded send (UDP_MAX_SEGMENTS).
const MAX_SEGMENTS: usize = 64;
/// Payload bytes of one offloaded send, all segments together: what one
/// IP packet can hold, less its headers.
const MAX_RUN_BYTES: usize = 65_000;
/// Room for one received message: a coalesced run, or one datagram.
const SLOT: usize = 65_536;
/// Control buffer per message: one cmsg carrying an int, with room to spare.
const CONTROL: usize = 64;

/// Sends datagrams, in runs when the kernel accepts segmentation offload.
pub struct Sender {
    offload: bool,
}

impl Default for Sender {
    fn default() -> Self {
        Sender { offload: true }
    }
}

impl Sender {
    /// Sends as many of `datagrams` as the socket takes now, in order;
    /// returns how many went (WouldBlock when none did).
    pub fn send(&mut self, fd: RawFd, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        if datagrams.is_empty() {
            return Ok(0);
        }
        let runs = if self.offload {
            offload_runs(datagrams)
        } else {
            (0..datagrams.len().min(BATCH)).map(|i| i..i + 1).collect()
        };
        match send_runs(fd, datagrams, &runs) {
            Err(e) if runs[0].len() > 1 && offload_refused(&e) => {
                // No offload on this path (a device without checksum
                // offload, or a route whose MTU is below a datagram):
                // plain sends from now on.
                debug!(error = %e, "UDP segmentation offload refused; sending datagrams one by one");
                self.offload = false;
                self.send(fd, datagrams)
            }
            other => other,
        }
    }
}

fn offload_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Splits the front of `datagrams` into at most BATCH runs that one
/// offloaded send each can carry: one destination, equal lengths except a
/// shorter last one.
fn offload_runs(datagrams: &[(SocketAddr, &[u8])]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < datagrams.len() && runs.len() < BATCH {
        let (dst, first) = datagrams[start];
        let mut end = start + 1;
        let mut bytes = first.len();
        while end < datagrams.len() && end - start < MAX_SEGMENTS {
            let (next_dst, next) = datagrams[end];
            if next_dst != dst || next.len() > first.len() || bytes + next.len() > MAX_RUN_BYTES {
                break;
            }
            bytes += next.len();
            end += 1;
            if next.len() < first.len() {
                break;
            }
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// One sendmmsg of `runs`; returns how many datagrams went.
fn send_runs(
    fd: RawFd,
    datagrams: &[(SocketAddr, &[u8])],
    runs: &[Range<usize>],
) -> io::Result<usize> {
    let addrs: Vec<SockAddr> = runs
        .iter()
        .map(|run| SockAddr::from(datagrams[run.start].0))
        .collect();
    let mut iovecs: Vec<libc::iovec> = datagrams[..runs.last().map_or(0, |r| r.end)]
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        })
        .collect();
    let mut controls = vec![[0u64; CONTROL / 8]; runs.len()];
    // SAFETY: an all-zero mmsghdr is a valid empty header.
    let mut headers: Vec<libc::mmsghdr> =
        runs.iter().map(|_| unsafe { std::mem::zeroed() }).collect();
    for (i, run) in runs.iter().enumerate() {
        let header = &mut headers[i].msg_hdr;
        header.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
        header.msg_namelen = addrs[i].len();
        header.msg_iov = &mut iovecs[run.start];
        header.msg_iovlen = run.len();
        if run.len() > 1 {
            let segment = datagrams[run.start].1.len() as u16;
            header.msg_control = controls[i].as_mut_ptr().cast();
            header.msg_controllen = CONTROL;
            // SAFETY: the control buffer is aligned for cmsghdr and has
            // room for one header and a u16; msg_controllen is then cut
            // to exactly what was written.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(header);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
                header.msg_controllen = libc::CMSG_SPACE(2) as usize;
            }
        }
    }
    // SAFETY: every header points at an address, buffers and a control
    // message that outlive the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), runs.len() as u32, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(runs[..sent as usize].iter().map(|r| r.len()).sum())
}

/// Asks the kernel to hand over runs of datagrams coalesced, with their
/// segment size; without it every datagram arrives alone, which also works.
pub fn enable_receive_offload(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!(error = %io::Error::last_os_error(), "UDP receive offload unavailable");
    }
}

/// Buffers for one recvmmsg call, allocated once.
pub struct RecvBatch {
    buffers: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<[u64; CONTROL / 8]>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buffers: vec![0; SLOT * BATCH],
            // SAFETY: all-zero is a valid sockaddr_storage and mmsghdr.
            addrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            headers: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovecs: Vec::with_capacity(BATCH),
            controls: vec![[0u64; CONTROL / 8]; BATCH],
        }
    }
}

impl RecvBatch {
    /// Receives up to BATCH messages without blocking; calls `each` with
    /// every datagram that arrived whole, in order. Returns how many
    /// messages arrived.
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
            header.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_controllen = CONTROL;
            header.msg_flags = 0;
        }
        // SAFETY: the headers point at buffers, address slots and control
        // buffers owned by self, which outlive the call.
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
            let bytes = &self.buffers[i * SLOT..i * SLOT + len];
            let segment = segment_size(&header.msg_hdr).unwrap_or(len).max(1);
            for datagram in bytes.chunks(segment) {
                each(from, datagram);
            }
        }
        Ok(got)
    }
}

/// The segment size the kernel reports for a coalesced run, if it is one.
fn segment_size(header: &libc::msghdr) -> Option<usize> {
    // SAFETY: the header's control buffer was filled by recvmmsg, which
    // set msg_controllen to what it wrote; the CMSG macros stay within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).ok();
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    None
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

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn runs_hold_one_destination_and_equal_lengths_but_a_shorter_last() {
        let big = [0u8; 1400];
        let small = [0u8; 100];
        let datagrams: Vec<(SocketAddr, &[u8])> = vec![
            (addr(1), &big),
            (addr(1), &big),
            (addr(1), &small),
            (addr(1), &big),
            (addr(2), &big),
            (addr(2), &small),
            (addr(2), &big),
        ];
        assert_eq!(offload_runs(&datagrams), vec![0..3, 3..4, 4..6, 6..7]);
    }

    #[test]
    fn runs_stop_at_the_segment_and_byte_limits() {
        let big = [0u8; 1400];
        let datagrams: Vec<(SocketAddr, &[u8])> = vec![(addr(1), &big); 100];
        let runs = offload_runs(&datagrams);
        assert!(runs.iter().all(|r| r.len() * 1400 <= MAX_RUN_BYTES));
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 100);
        let tiny = [0u8; 10];
        let many: Vec<(SocketAddr, &[u8])> = vec![(addr(1), &tiny); 100];
        assert_eq!(
            offload_runs(&many),
            vec![0..MAX_SEGMENTS, MAX_SEGMENTS..100]
        );
    }

    /// Sends a mix of runs and odd sizes; the receiver gets every datagram
    /// whole and in order, whether or not it takes coalesced runs.
    fn round_trip(receive_offload: bool) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Large buffers: a run sent at once must not overflow the receiver.
        let b = super::super::udp::bind(addr(0)).unwrap();
        if receive_offload {
            enable_receive_offload(b.as_raw_fd());
        }
        let to = b.local_addr().unwrap();
        let mut payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + i as usize * 30]).collect();
        payloads.extend(
            (0..200u32).map(|i| vec![(i % 251) as u8; if i % 50 == 49 { 700 } else { 1400 }]),
        );
        let datagrams: Vec<(SocketAddr, &[u8])> =
            payloads.iter().map(|p| (to, p.as_slice())).collect();
        let mut sender = Sender::default();
        let mut sent = 0;
        while sent < datagrams.len() {
            sent += sender.send(a.as_raw_fd(), &datagrams[sent..]).unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        let mut messages = 0;
        for _ in 0..10_000 {
            if got.len() >= payloads.len() {
                break;
            }
            messages += batch
                .recv(b.as_raw_fd(), |from, bytes| {
                    assert_eq!(from, a.local_addr().unwrap());
                    got.push(bytes.to_vec());
                })
                .unwrap_or(0);
        }
        if receive_offload && sender.offload {
            assert!(messages < payloads.len(), "no run arrived coalesced");
        }
        let lengths = |v: &[Vec<u8>]| v.iter().map(|p| p.len()).collect::<Vec<_>>();
        assert_eq!(lengths(&got), lengths(&payloads));
        assert!(got == payloads, "same lengths, different bytes");
    }

    #[test]
    fn datagrams_arrive_whole_and_in_order_with_receive_offload() {
        round_trip(true);
    }

    #[test]
    fn datagrams_arrive_whole_and_in_order_without_receive_offload() {
        round_trip(false);
    }
}
