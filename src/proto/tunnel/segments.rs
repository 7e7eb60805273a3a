//! KCP segment headers, read from the packets going out and coming in,
//! since kcp keeps its own bookkeeping to itself: the path's controller
//! learns from them what was sent and what the friend acknowledged, a
//! receive intake what an instance holds.

/// KCP's segment header: conv, cmd, frg, wnd, ts, sn, una, len.
pub const KCP_HEADER: usize = 24;
pub const CMD_PUSH: u8 = 81;
pub const CMD_ACK: u8 = 82;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub conv: u32,
    pub cmd: u8,
    pub sn: u32,
    /// The next segment the sender of this one waits for: everything
    /// below it arrived.
    pub una: u32,
    /// Bytes of data after the header.
    pub len: u32,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The segments of one KCP packet, in order, each read and whole (header
/// and data); stops at the first that does not fit (KCP refuses such a
/// packet too).
pub fn segments(packet: &[u8]) -> impl Iterator<Item = (Header, &[u8])> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = packet.get(at..at + KCP_HEADER)?;
        let len = u32_at(header, 20);
        let end = at.checked_add(KCP_HEADER)?.checked_add(len as usize)?;
        let whole = packet.get(at..end)?;
        at = end;
        let header = Header {
            conv: u32_at(header, 0),
            cmd: header[4],
            sn: u32_at(header, 12),
            una: u32_at(header, 16),
            len,
        };
        Some((header, whole))
    })
}

/// The headers of the segments in one KCP packet (see `segments`).
pub fn headers(packet: &[u8]) -> impl Iterator<Item = Header> + '_ {
    segments(packet).map(|(header, _)| header)
}

/// Whether `packet` carries data (a PUSH segment): what the pacer holds
/// back. Acknowledgements and window probes alone go at once.
pub fn carries_data(packet: &[u8]) -> bool {
    headers(packet).any(|h| h.cmd == CMD_PUSH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(conv: u32, cmd: u8, sn: u32, una: u32, data: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&conv.to_le_bytes());
        s.extend_from_slice(&[cmd, 0, 0, 1]);
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&sn.to_le_bytes());
        s.extend_from_slice(&una.to_le_bytes());
        s.extend_from_slice(&(data.len() as u32).to_le_bytes());
        s.extend_from_slice(data);
        s
    }

    #[test]
    fn headers_are_read_in_order_and_a_truncated_one_ends_them() {
        let mut packet = segment(7, CMD_ACK, 3, 4, &[]);
        packet.extend(segment(7, CMD_PUSH, 9, 4, b"hello"));
        let read: Vec<Header> = headers(&packet).collect();
        assert_eq!(read.len(), 2);
        assert_eq!((read[0].cmd, read[0].sn, read[0].una), (CMD_ACK, 3, 4));
        assert_eq!((read[1].conv, read[1].sn, read[1].len), (7, 9, 5));
        assert!(carries_data(&packet));
        packet.truncate(packet.len() - 1);
        assert_eq!(headers(&packet).count(), 1, "the cut segment is not read");
        assert!(!carries_data(&packet));
    }
}
