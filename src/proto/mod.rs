//! The protocol core: no sockets, no clock. Time and datagrams go in;
//! datagrams, events and the next deadline come out.

pub mod friend;
pub mod friendnet;
pub mod handshake;
pub mod record;
pub mod replay;
pub mod session;
pub mod wire;

pub use friendnet::{Event, FriendNet, FriendNetConfig, Transmit};

#[cfg(test)]
mod pair_tests;
