//! How a packet reaches a friend: straight to its address, or wrapped for a
//! bootstrap node to relay (which sees only the ciphertext inside).

use std::fmt;
use std::net::SocketAddr;

use super::rendezvous;
use super::snapshot::PathKind;
use super::transmit::Transmit;
use crate::id::PublicKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct(SocketAddr),
    Relay { via: SocketAddr, peer: PublicKey },
}

impl Route {
    /// The address the datagram is actually sent to.
    pub fn socket_addr(&self) -> SocketAddr {
        match self {
            Route::Direct(addr) | Route::Relay { via: addr, .. } => *addr,
        }
    }

    pub fn transmit(&self, payload: Vec<u8>) -> Transmit {
        match self {
            Route::Direct(dst) => Transmit::to(*dst, payload),
            Route::Relay { via, peer } => {
                Transmit::to(*via, rendezvous::relay(rendezvous::RELAY, peer, &payload))
            }
        }
    }

    pub fn kind(&self) -> PathKind {
        match self {
            Route::Direct(addr) => PathKind::Direct(*addr),
            Route::Relay { via, .. } => PathKind::Relayed(*via),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct(addr) => write!(f, "{addr}"),
            Route::Relay { via, .. } => write!(f, "relay {via}"),
        }
    }
}
