//! Drivers: the event-loop thread that owns the UDP socket and the core.

pub mod control;
pub mod event_loop;
pub mod tcp;
pub mod udp;
