//! A datagram the core wants sent, built complete: where to, with what IP
//! TTL. The driver only carries it out.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Unicast(SocketAddr),
    /// To this port at the broadcast address of every local IPv4 network
    /// (LAN discovery queries).
    LanBroadcast(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: Dest,
    pub payload: Vec<u8>,
    /// Send with this IP TTL instead of the default (hole punching).
    pub ttl: Option<u32>,
}

impl Transmit {
    pub fn to(addr: SocketAddr, payload: Vec<u8>) -> Self {
        Transmit {
            dst: Dest::Unicast(addr),
            payload,
            ttl: None,
        }
    }

    pub fn lan_broadcast(port: u16, payload: Vec<u8>) -> Self {
        Transmit {
            dst: Dest::LanBroadcast(port),
            payload,
            ttl: None,
        }
    }

    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The one address it goes to; None for a broadcast.
    pub fn unicast_addr(&self) -> Option<SocketAddr> {
        match self.dst {
            Dest::Unicast(addr) => Some(addr),
            Dest::LanBroadcast(_) => None,
        }
    }
}
