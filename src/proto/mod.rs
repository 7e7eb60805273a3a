//! The protocol core: no sockets, no clock. Time and datagrams go in;
//! datagrams, events and the next deadline come out.

pub mod control;
pub mod discovery;
pub mod friend;
pub mod friendnet;
pub mod handshake;
pub mod lan;
pub mod link;
pub mod node;
pub mod record;
pub mod rendezvous;
pub mod replay;
pub mod route;
pub mod session;
pub mod wire;

pub use friendnet::{Event, FriendNet, FriendNetConfig, Transmit};
pub use link::ConnId;
pub use node::{Node, NodeEvent, TunnelConfig};

#[cfg(test)]
mod amplification_tests;
#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod recovery_tests;
