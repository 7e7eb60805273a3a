//! The protocol core: no sockets, no clock. Time and datagrams go in;
//! datagrams, events and the next deadline come out.

pub(crate) mod address;
pub(crate) mod cookie;
pub(crate) mod cookie_reply;
pub mod friendnet;
pub mod handshake;
pub mod identity;
pub mod lan;
pub(crate) mod log_limit;
pub mod reason;
pub mod record;
pub mod rendezvous;
pub(crate) mod replay;
pub(crate) mod route;
pub(crate) mod session;
pub mod snapshot;
pub(crate) mod source_limit;
pub mod transmit;
pub mod tunnel;
pub mod wire;

pub use friendnet::{FriendNet, FriendNetConfig, NetEvent};
pub use transmit::{Dest, Transmit};
pub use tunnel::link::ConnId;
pub use tunnel::{Core, Event, TunnelConfig};

#[cfg(test)]
mod amplification_tests;
#[cfg(test)]
mod pair_tests;
