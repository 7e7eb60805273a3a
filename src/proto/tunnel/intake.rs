//! How much one KCP instance may be holding on its receive side, read from
//! the segment headers going in and out, since kcp keeps its buffers to
//! itself: what it has queued for us to read, plus the span from the next
//! segment it waits for to the highest one it was given. An upper bound (a
//! sparse span counts as full), which is what a budget needs.
//!
//! Over a friend's budget, its segments other than the one an instance
//! waits for are dropped before KCP sees them: they are resent later, as
//! after a loss, and the one that fills the hole lets the queue drain.

use std::borrow::Cow;

use super::segments::{CMD_PUSH, KCP_HEADER};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Intake {
    /// The next segment KCP waits for, as its last output said (una).
    next: u32,
    /// Segments it holds in order for us to read (its window minus what
    /// it last advertised).
    queued: u32,
    /// One past the highest segment number it was given.
    top: u32,
}

impl Intake {
    /// Segments held at most, for an instance with this receive window
    /// (KCP holds nothing out of order beyond it).
    pub fn held(&self, window: u16) -> usize {
        let ahead = self.top.wrapping_sub(self.next);
        let ahead = if (ahead as i32) > 0 { ahead } else { 0 };
        (self.queued + ahead.min(window as u32)) as usize
    }

    /// A packet the instance wrote: every segment in it carries the next
    /// number it waits for and the window it has left.
    pub fn saw_output(&mut self, packet: &[u8], window: u16) {
        let Some(header) = packet.get(..KCP_HEADER) else {
            return;
        };
        let advertised = u16::from_le_bytes([header[6], header[7]]);
        self.next = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
        self.queued = window.saturating_sub(advertised) as u32;
    }

    /// The segments of `packet` to give KCP, noting each PUSH: all of them,
    /// or, when `over_budget`, all but the PUSH segments other than the one
    /// it waits for. Also returns how many were dropped.
    pub fn admit<'a>(&mut self, packet: &'a [u8], over_budget: bool) -> (Cow<'a, [u8]>, usize) {
        let mut kept: Option<Vec<u8>> = None;
        let mut dropped = 0;
        let mut at = 0;
        while let Some(header) = packet.get(at..at + KCP_HEADER) {
            let len = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
            let end = at.saturating_add(KCP_HEADER).saturating_add(len as usize);
            let Some(segment) = packet.get(at..end) else {
                // Malformed: KCP refuses it whole.
                break;
            };
            let drop = header[4] == CMD_PUSH && {
                let sn = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
                let wanted = sn == self.next;
                if (sn.wrapping_add(1).wrapping_sub(self.top) as i32) > 0
                    && (!over_budget || wanted)
                {
                    self.top = sn.wrapping_add(1);
                }
                over_budget && !wanted
            };
            if drop {
                dropped += 1;
                kept.get_or_insert_with(|| packet[..at].to_vec());
            } else if let Some(kept) = &mut kept {
                kept.extend_from_slice(segment);
            }
            at = end;
        }
        match kept {
            Some(mut kept) => {
                kept.extend_from_slice(&packet[at.min(packet.len())..]);
                (Cow::Owned(kept), dropped)
            }
            None => (Cow::Borrowed(packet), dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(cmd: u8, sn: u32, una: u32, wnd: u16, data: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&7u32.to_le_bytes());
        s.extend_from_slice(&[cmd, 0]);
        s.extend_from_slice(&wnd.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&sn.to_le_bytes());
        s.extend_from_slice(&una.to_le_bytes());
        s.extend_from_slice(&(data.len() as u32).to_le_bytes());
        s.extend_from_slice(data);
        s
    }

    const ACK: u8 = 82;

    #[test]
    fn held_is_the_span_given_plus_what_is_queued() {
        let mut intake = Intake::default();
        let push = segment(CMD_PUSH, 9, 0, 128, b"x");
        let (kept, dropped) = intake.admit(&push, false);
        assert_eq!((kept.len(), dropped), (25, 0));
        assert_eq!(intake.held(128), 10, "segments 0 to 9 may all be held");
        // KCP answered: it waits for 0 still, and has 3 queued for us.
        intake.saw_output(&segment(ACK, 9, 0, 125, b""), 128);
        assert_eq!(intake.held(128), 13);
        // A forged number far ahead counts as a full window, no more.
        intake.admit(&segment(CMD_PUSH, 1 << 30, 0, 128, b""), false);
        assert_eq!(intake.held(128), 3 + 128);
    }

    #[test]
    fn over_budget_only_the_awaited_push_passes_and_acks_always_do() {
        let mut intake = Intake::default();
        intake.saw_output(&segment(ACK, 0, 5, 128, b""), 128);
        let mut packet = segment(ACK, 3, 0, 128, b"");
        packet.extend(segment(CMD_PUSH, 6, 0, 128, b"later"));
        packet.extend(segment(CMD_PUSH, 5, 0, 128, b"awaited"));
        let (kept, dropped) = intake.admit(&packet, true);
        assert_eq!(dropped, 1);
        let mut expected = segment(ACK, 3, 0, 128, b"");
        expected.extend(segment(CMD_PUSH, 5, 0, 128, b"awaited"));
        assert_eq!(kept.as_ref(), expected.as_slice());
        assert_eq!(intake.held(128), 1, "the dropped segment is not counted");
    }
}
