//! The friends, with an index of when each is next due, so that a loop
//! turn costs the same with 100,000 remembered offline friends as with
//! one: `poll_timeout` reads the earliest entry instead of asking every
//! friend, and `handle_timeout` visits only the friends that are due.
//!
//! Every change to a friend goes through `get_mut` (or `insert`), which
//! marks it touched; touched friends are rescheduled before the index is
//! trusted. Reading goes through `Deref` to the map.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;
use std::time::Instant;

use super::friend::Friend;
use crate::id::PublicKey;

#[derive(Default)]
pub(super) struct FriendTable {
    friends: BTreeMap<PublicKey, Friend>,
    /// Changed since they were last scheduled: their index entry may be
    /// stale, early or late.
    touched: BTreeSet<PublicKey>,
    due: BTreeSet<(Instant, PublicKey)>,
    scheduled: HashMap<PublicKey, Instant>,
}

impl Deref for FriendTable {
    type Target = BTreeMap<PublicKey, Friend>;

    fn deref(&self) -> &Self::Target {
        &self.friends
    }
}

impl FriendTable {
    pub fn get_mut(&mut self, key: &PublicKey) -> Option<&mut Friend> {
        let friend = self.friends.get_mut(key)?;
        self.touched.insert(*key);
        Some(friend)
    }

    pub fn get_or_insert(&mut self, key: PublicKey, new: impl FnOnce() -> Friend) -> &mut Friend {
        self.touched.insert(key);
        self.friends.entry(key).or_insert_with(new)
    }

    pub fn insert(&mut self, key: PublicKey, friend: Friend) {
        self.friends.insert(key, friend);
        self.touched.insert(key);
    }

    pub fn remove(&mut self, key: &PublicKey) -> Option<Friend> {
        self.set_deadline(*key, None);
        self.touched.remove(key);
        self.friends.remove(key)
    }

    /// Friends changed since they were last scheduled.
    pub fn touched(&self) -> impl Iterator<Item = (&PublicKey, &Friend)> {
        self.touched
            .iter()
            .filter_map(|key| self.friends.get(key).map(|f| (key, f)))
    }

    pub fn take_touched(&mut self) -> BTreeSet<PublicKey> {
        std::mem::take(&mut self.touched)
    }

    pub fn set_deadline(&mut self, key: PublicKey, at: Option<Instant>) {
        if let Some(old) = self.scheduled.remove(&key) {
            self.due.remove(&(old, key));
        }
        if let Some(at) = at {
            self.scheduled.insert(key, at);
            self.due.insert((at, key));
        }
    }

    /// The earliest deadline in the index (touched friends aside).
    pub fn earliest(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes out of the index every friend due by `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<PublicKey> {
        let mut keys = Vec::new();
        while let Some(&(at, key)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.remove(&(at, key));
            self.scheduled.remove(&key);
            keys.push(key);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_due_friends_come_out_and_a_change_marks_one_for_rescheduling() {
        let start = Instant::now();
        let mut table = FriendTable::default();
        for byte in 0..100u8 {
            let key = PublicKey([byte; 32]);
            table.insert(key, Friend::new(start, Duration::from_secs(1)));
            table.set_deadline(key, Some(start + Duration::from_secs(byte as u64 + 1)));
        }
        assert_eq!(table.take_touched().len(), 100);
        assert_eq!(table.earliest(), Some(start + Duration::from_secs(1)));
        let due = table.take_due(start + Duration::from_secs(3));
        assert_eq!(
            due,
            [PublicKey([0; 32]), PublicKey([1; 32]), PublicKey([2; 32])]
        );
        assert_eq!(table.earliest(), Some(start + Duration::from_secs(4)));

        let changed = PublicKey([50; 32]);
        assert!(table.get_mut(&changed).is_some());
        assert_eq!(
            table.touched().map(|(k, _)| *k).collect::<Vec<_>>(),
            [changed]
        );
        table.remove(&PublicKey([3; 32]));
        assert_eq!(table.earliest(), Some(start + Duration::from_secs(5)));
        assert_eq!(table.len(), 99);
    }
}
