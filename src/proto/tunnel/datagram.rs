//! How a UDP tunnel's datagrams travel: each in a DATA payload of its own,
//! never over KCP (a lost one stays lost, as on the path it replaces):
//! `FRAME_DATAGRAM, conv (u32 LE), bytes`. One larger than the path
//! carries goes in the friend network's pieces, and is whole again, or
//! lost, on the far side.

/// Inner frame type of a DATA payload that carries a datagram.
pub const FRAME_DATAGRAM: u8 = 8;
const HEADER: usize = 1 + 4;
/// Largest datagram a UDP tunnel carries; larger ones are dropped and
/// counted. Above the 1500 bytes of an Ethernet frame, with room for
/// EDNS answers (4096); small enough that a datagram is a handful of
/// pieces at most, each of which must arrive.
pub const MAX_DATAGRAM: usize = 8192;

pub fn encode(conv: u32, datagram: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + datagram.len());
    frame.push(FRAME_DATAGRAM);
    frame.extend_from_slice(&conv.to_le_bytes());
    frame.extend_from_slice(datagram);
    frame
}

/// The conv and datagram of a DATA payload (its frame type byte
/// included); None when it is no datagram frame.
pub fn parse(payload: &[u8]) -> Option<(u32, &[u8])> {
    if payload.first() != Some(&FRAME_DATAGRAM) {
        return None;
    }
    let conv = u32::from_le_bytes(payload.get(1..HEADER)?.try_into().ok()?);
    Some((conv, &payload[HEADER..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_empty_datagrams() {
        for datagram in [&b"dns query"[..], &[], &[0u8; MAX_DATAGRAM]] {
            let frame = encode(0xDEAD_BEEF, datagram);
            assert_eq!(parse(&frame), Some((0xDEAD_BEEF, datagram)));
        }
    }

    #[test]
    fn short_or_other_frames_are_rejected() {
        let frame = encode(7, b"x");
        for len in 0..HEADER {
            assert_eq!(parse(&frame[..len]), None, "length {len}");
        }
        let mut kcp = frame.clone();
        kcp[0] = 1;
        assert_eq!(parse(&kcp), None);
    }
}
