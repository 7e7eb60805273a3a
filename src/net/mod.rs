//! Drivers: the event-loop thread that owns the UDP socket (and any TCP
//! links to bootstrap nodes) and the core.

pub(crate) mod accept;
pub(crate) mod command;
pub(crate) mod conn;
pub(crate) mod control;
pub(crate) mod event_loop;
pub(crate) mod lan;
pub(crate) mod local_stream;
pub(crate) mod memory;
pub mod proxy;
pub(crate) mod socks5;
pub(crate) mod stream_link;
pub(crate) mod target;
pub(crate) mod tcp;
pub mod udp;
pub(crate) mod udp_batch;
pub(crate) mod udp_flows;
