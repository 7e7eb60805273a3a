//! Where a friend's KCP instances write their packets: each channel's go
//! into its own queue of the path's pacer, and the core seals each packet
//! the pacer releases into a DATA packet.
//!
//! At most one copy of a data segment waits. KCP counts a segment as sent
//! when it writes it, not when the pacer lets it go, so while the pacer
//! holds a backlog (the rate just fell) KCP sees acknowledgements skip
//! segments that have not left yet and resends them, every two
//! acknowledgements: without this rule the backlog grew with copies of
//! itself (3.6 MB of them on a 20 Mbit/s line) and the line carried
//! mostly duplicates.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::rc::Rc;
use std::time::Instant;

use super::congestion::pacer::Pacer;
use super::segments::{segments, CMD_PUSH};

/// Inner frame type of a DATA payload that carries KCP output.
pub const FRAME_KCP: u8 = 1;

#[derive(Default)]
struct Waiting {
    pacer: Pacer,
    /// (conv, sn) of the data segments queued in the pacer.
    segments: HashSet<(u32, u32)>,
}

#[derive(Clone, Default)]
pub struct Outbox(Rc<RefCell<Waiting>>);

impl Outbox {
    /// The next frame that may leave at `rate` bytes a second (None:
    /// unpaced).
    pub fn pop(&self, now: Instant, rate: Option<f64>) -> Option<Vec<u8>> {
        let mut waiting = self.0.borrow_mut();
        let frame = waiting.pacer.pop(now, rate)?;
        for (header, _) in segments(&frame[1..]).filter(|(h, _)| h.cmd == CMD_PUSH) {
            waiting.segments.remove(&(header.conv, header.sn));
        }
        Some(frame)
    }

    pub fn next_due(&self, now: Instant, rate: Option<f64>) -> Option<Instant> {
        self.0.borrow().pacer.next_due(now, rate)
    }

    pub fn queued_bytes(&self) -> usize {
        self.0.borrow().pacer.queued_bytes()
    }

    pub fn forget(&self, conv: u32) {
        let mut waiting = self.0.borrow_mut();
        waiting.pacer.forget(conv);
        waiting.segments.retain(|&(c, _)| c != conv);
    }
}

impl io::Write for Outbox {
    fn write(&mut self, packet: &[u8]) -> io::Result<usize> {
        let mut waiting = self.0.borrow_mut();
        let mut frame = Vec::with_capacity(packet.len() + 1);
        frame.push(FRAME_KCP);
        let mut data_conv = None;
        for (header, whole) in segments(packet) {
            if header.cmd == CMD_PUSH {
                if !waiting.segments.insert((header.conv, header.sn)) {
                    continue;
                }
                data_conv = Some(header.conv);
            }
            frame.extend_from_slice(whole);
        }
        if frame.len() > 1 {
            waiting.pacer.push(data_conv, frame);
        }
        Ok(packet.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::proto::tunnel::segments::CMD_ACK;

    fn segment(cmd: u8, sn: u32) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&7u32.to_le_bytes());
        s.extend_from_slice(&[cmd, 0, 0, 1]);
        s.extend_from_slice(&[0; 4]);
        s.extend_from_slice(&sn.to_le_bytes());
        s.extend_from_slice(&[0; 4]);
        let data: &[u8] = if cmd == CMD_PUSH { b"data" } else { b"" };
        s.extend_from_slice(&(data.len() as u32).to_le_bytes());
        s.extend_from_slice(data);
        s
    }

    #[test]
    fn a_segment_written_again_while_its_copy_waits_is_left_out() {
        let mut outbox = Outbox::default();
        let now = Instant::now();
        outbox.write_all(&segment(CMD_PUSH, 1)).unwrap();
        // KCP resends 1 (it thinks it left) with new segment 2 and an ack.
        let mut packet = segment(CMD_PUSH, 1);
        packet.extend(segment(CMD_PUSH, 2));
        packet.extend(segment(CMD_ACK, 9));
        outbox.write_all(&packet).unwrap();
        let frames: Vec<Vec<u8>> = std::iter::from_fn(|| outbox.pop(now, None)).collect();
        let sent: Vec<(u8, u32)> = frames
            .iter()
            .flat_map(|f| {
                segments(&f[1..])
                    .map(|(h, _)| (h.cmd, h.sn))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(sent, [(CMD_PUSH, 1), (CMD_PUSH, 2), (CMD_ACK, 9)]);
        // Once the copy has left, a resend goes again.
        outbox.write_all(&segment(CMD_PUSH, 1)).unwrap();
        assert!(outbox.pop(now, None).is_some());
    }
}
