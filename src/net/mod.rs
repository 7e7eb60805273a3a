//! Drivers: the event-loop thread that owns the UDP socket (and any TCP
//! links to bootstrap nodes) and the core.

pub mod command;
pub mod conn;
pub mod control;
pub mod event_loop;
pub mod lan;
pub mod stream_link;
pub mod tcp;
pub mod udp;
pub mod udp_batch;
