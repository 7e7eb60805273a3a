//! Sliding replay window over data-packet counters (2048 wide, as WireGuard
//! recommends). `check` is pure; `accept` is called only after the packet
//! authenticated, so forged counters can never move the window.

const WORDS: usize = 32;
pub const WINDOW: u64 = (WORDS * 64) as u64;

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// One past the highest counter accepted; 0 when none yet.
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            next: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    fn slot(counter: u64) -> (usize, u64) {
        let bit = counter % WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Would `counter` be fresh?
    pub fn check(&self, counter: u64) -> bool {
        if counter >= self.next {
            return counter != u64::MAX;
        }
        if self.next - counter > WINDOW {
            return false;
        }
        let (word, mask) = Self::slot(counter);
        self.bits[word] & mask == 0
    }

    /// Records an authenticated counter. Returns false if it was not fresh.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            let advance = counter + 1 - self.next;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for c in self.next..=counter {
                    let (word, mask) = Self::slot(c);
                    self.bits[word] &= !mask;
                }
            }
            self.next = counter + 1;
        }
        let (word, mask) = Self::slot(counter);
        self.bits[word] |= mask;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(5));
        assert!(!w.check(5));
        assert!(!w.accept(5));
    }

    #[test]
    fn reordered_inside_window_is_accepted_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(100));
        for c in (0..100).rev() {
            assert!(w.accept(c), "counter {c}");
        }
        for c in 0..=100 {
            assert!(!w.check(c), "counter {c} accepted twice");
        }
    }

    #[test]
    fn older_than_window_is_refused() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(WINDOW + 10));
        assert!(!w.check(9));
        assert!(!w.check(10), "exactly WINDOW behind is outside");
        assert!(w.check(11));
        assert!(w.accept(11));
    }

    #[test]
    fn big_jump_clears_old_bits() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(1));
        assert!(w.accept(1 + WINDOW * 3));
        assert!(w.check(1 + WINDOW * 3 - 1));
        assert!(w.check(1 + WINDOW * 2 + 2));
    }

    #[test]
    fn window_moves_only_on_accept() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(10));
        // A forged packet with a huge counter is checked but fails to
        // authenticate, so accept is never called: old counters stay valid.
        assert!(w.check(1_000_000));
        assert!(w.check(9));
        assert!(w.accept(9));
    }

    #[test]
    fn max_counter_is_never_fresh() {
        let w = ReplayWindow::default();
        assert!(!w.check(u64::MAX));
    }
}
