//! A payload larger than the path carries goes in pieces. KCP cuts new
//! segments to the path's size, but segments it queued before the path
//! shrank (a VPN coming up, a new route) keep their size and are resent as
//! they are: without this they could never pass, and their connection
//! would die. Pieces are rare (only after a shrink), so the receiver keeps
//! few: at most `MAX_PARTIAL` payloads in progress per friend.

use std::collections::VecDeque;

/// A piece: [FRAME_FRAGMENT, id (4 bytes), index, count, bytes...].
pub(super) const FRAME_FRAGMENT: u8 = 7;
const HEADER: usize = 1 + 4 + 1 + 1;
const MAX_PARTIAL: usize = 8;

/// Cuts `payload` into pieces of at most `limit` bytes each.
fn split(id: u32, payload: &[u8], limit: usize) -> Vec<Vec<u8>> {
    let room = limit.saturating_sub(HEADER).max(1);
    let count = payload.len().div_ceil(room);
    payload
        .chunks(room)
        .enumerate()
        .map(|(index, part)| {
            let mut piece = Vec::with_capacity(HEADER + part.len());
            piece.push(FRAME_FRAGMENT);
            piece.extend_from_slice(&id.to_be_bytes());
            piece.push(index as u8);
            piece.push(count as u8);
            piece.extend_from_slice(part);
            piece
        })
        .collect()
}

struct Partial {
    id: u32,
    parts: Vec<Option<Vec<u8>>>,
}

/// One friend's pieces: the next id to send under, and what is arriving.
#[derive(Default)]
pub struct Fragments {
    next_id: u32,
    partial: VecDeque<Partial>,
}

impl Fragments {
    pub(super) fn split(&mut self, payload: &[u8], limit: usize) -> Vec<Vec<u8>> {
        self.next_id = self.next_id.wrapping_add(1);
        split(self.next_id, payload, limit)
    }

    /// Takes a piece; returns the whole payload once every piece is in.
    pub(super) fn add(&mut self, piece: &[u8]) -> Option<Vec<u8>> {
        let header = piece.get(..HEADER)?;
        let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let (index, count) = (header[5] as usize, header[6] as usize);
        if count < 2 || index >= count {
            return None;
        }
        let at = match self.partial.iter().position(|p| p.id == id) {
            Some(at) => at,
            None => {
                if self.partial.len() == MAX_PARTIAL {
                    self.partial.pop_front();
                }
                self.partial.push_back(Partial {
                    id,
                    parts: vec![None; count],
                });
                self.partial.len() - 1
            }
        };
        let partial = &mut self.partial[at];
        if partial.parts.len() != count {
            return None;
        }
        partial.parts[index] = Some(piece[HEADER..].to_vec());
        if partial.parts.iter().any(Option::is_none) {
            return None;
        }
        let done = self.partial.remove(at)?;
        Some(done.parts.into_iter().flatten().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_in_any_order_make_the_whole() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let pieces = split(9, &payload, 1200);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.len() <= 1200));
        let mut reassembly = Fragments::default();
        assert_eq!(reassembly.add(&pieces[2]), None);
        assert_eq!(reassembly.add(&pieces[0]), None);
        assert_eq!(reassembly.add(&pieces[1]), Some(payload));
        assert!(reassembly.partial.is_empty());
    }

    #[test]
    fn few_payloads_are_kept_in_progress() {
        let mut reassembly = Fragments::default();
        for id in 0..100 {
            reassembly.add(&split(id, &[1; 2000], 1200)[0]);
        }
        assert_eq!(reassembly.partial.len(), MAX_PARTIAL);
        assert_eq!(reassembly.add(&[FRAME_FRAGMENT, 0, 0, 0, 0, 5, 2, 1]), None);
    }
}
