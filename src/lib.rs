//! toxtun: TCP tunnels between friends' hosts, end-to-end encrypted.
//!
//! `proto` is the protocol as a pure state machine; `net` drives it with
//! one event-loop thread that owns the UDP socket; `app` wires the two to
//! the command line.

pub mod app;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod friends_file;
pub mod id;
pub mod key_file;
pub mod net;
pub mod proto;
pub mod status;
pub mod token_bucket;
pub mod tunnel_spec;
