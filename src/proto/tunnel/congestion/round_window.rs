//! The best value seen over the last few rounds (the highest delivery
//! rate, the lowest round trip), kept as a queue of candidates: each new
//! value drops the older ones it beats, so the front is the best and the
//! queue stays short.

use std::cmp::Ordering;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct RoundWindow<T> {
    rounds: u64,
    /// Which way is better: Greater keeps the highest, Less the lowest.
    better: Ordering,
    /// (round, value), best first.
    candidates: VecDeque<(u64, T)>,
}

impl<T: PartialOrd + Copy> RoundWindow<T> {
    pub fn new(rounds: u64, better: Ordering) -> Self {
        RoundWindow {
            rounds,
            better,
            candidates: VecDeque::new(),
        }
    }

    pub fn best(&self) -> Option<T> {
        self.candidates.front().map(|&(_, value)| value)
    }

    /// `value` seen in `round`; what is older than the window goes.
    pub fn note(&mut self, round: u64, value: T) {
        while self
            .candidates
            .back()
            .is_some_and(|&(_, old)| old.partial_cmp(&value) != Some(self.better))
        {
            self.candidates.pop_back();
        }
        self.candidates.push_back((round, value));
        while self
            .candidates
            .front()
            .is_some_and(|&(seen, _)| seen + self.rounds <= round)
        {
            self.candidates.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_of_the_last_rounds_wins_and_ages_out() {
        let mut highest = RoundWindow::new(3, Ordering::Greater);
        highest.note(0, 5.0);
        highest.note(1, 9.0);
        highest.note(2, 7.0);
        assert_eq!(highest.best(), Some(9.0));
        highest.note(4, 1.0);
        assert_eq!(highest.best(), Some(7.0), "9 was seen three rounds ago");
        highest.note(5, 2.0);
        assert_eq!(highest.best(), Some(2.0));
        let mut lowest = RoundWindow::new(10, Ordering::Less);
        lowest.note(0, 4);
        lowest.note(1, 6);
        assert_eq!(lowest.best(), Some(4));
    }
}
