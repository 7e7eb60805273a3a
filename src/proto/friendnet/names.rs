//! Friends' names (`[friends] NAME = ID`), for people reading logs and
//! status: a key is shown with its name beside it, never replaced by it,
//! so a log line can still be pasted into `friends` or `forget`.

use std::collections::BTreeMap;
use std::fmt;

use super::FriendNet;
use crate::id::PublicKey;

/// A friend as a log line shows it: its key (whole, or the first 8 hex
/// digits), then its name when it has one.
pub struct FriendLabel<'a> {
    key: &'a PublicKey,
    short: bool,
    name: Option<&'a str>,
}

impl fmt::Display for FriendLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.short {
            true => f.write_str(&self.key.short())?,
            false => write!(f, "{}", self.key)?,
        }
        match self.name {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

#[derive(Default)]
pub struct Names(BTreeMap<PublicKey, String>);

impl FriendNet {
    /// Names friends; a key named twice keeps the last name.
    pub fn set_names(&mut self, names: impl IntoIterator<Item = (PublicKey, String)>) {
        self.names = Names(names.into_iter().collect());
    }

    pub fn name_of(&self, key: &PublicKey) -> Option<&str> {
        self.names.0.get(key).map(String::as_str)
    }

    /// The whole key, and the name.
    pub fn label<'a>(&'a self, key: &'a PublicKey) -> FriendLabel<'a> {
        FriendLabel {
            key,
            short: false,
            name: self.name_of(key),
        }
    }

    /// The key's first 8 hex digits, and the name.
    pub fn short_label<'a>(&'a self, key: &'a PublicKey) -> FriendLabel<'a> {
        FriendLabel {
            key,
            short: true,
            name: self.name_of(key),
        }
    }
}
