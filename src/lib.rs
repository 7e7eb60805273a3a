//! toxtun: TCP and UDP tunnels between friends' hosts, end-to-end encrypted.
//!
//! `proto` is the protocol as a pure state machine; `net` drives it with
//! one event-loop thread that owns the UDP socket; `node` builds one from
//! the settings, and `app` (with `connect`, for the stdio command, and
//! `attach`, for a client on a key whose node already runs) wires it to the
//! command line.
//!
//! The public surface is what the binary, the tests, the benches and the
//! fuzz targets use, and nothing more:
//!
//! - `app::run` and `cli::parse`: the binary.
//! - `config::Settings`: parsing a config file, with `net::proxy::Proxy`
//!   (`[node] proxy`) in it.
//! - `id`: IDs and keys as users write them.
//! - `net::udp::bind`: a UDP socket with the buffers the node uses.
//! - `proto::Core` (the whole protocol core), its `Event`s and
//!   `TunnelConfig`; `proto::FriendNet` with `FriendNetConfig` and
//!   `NetEvent`; `proto::Transmit` and `Dest`; `proto::snapshot`.
//! - `proto::identity` (keys, no files), `proto::reason` (why things end,
//!   and the wire's reason codes).
//! - For tests that script a friend: `proto::tunnel::control` (control
//!   messages), `proto::tunnel::link` (a KCP pipe and its outbox),
//!   `proto::tunnel::allow`, `proto::tunnel::kcp_settings`.
//! - For fuzz targets, and tests that forge packets: `proto::wire`,
//!   `proto::rendezvous`, `proto::lan`, `proto::record`, `proto::handshake`.
//! - `proto::friendnet::STREAM_LINK_RETRY`, which tests measure against.
//! - `bootstrap::{Bootstrap, BootstrapConfig}`: the bootstrap node's core,
//!   for its fuzz target.
//!
//! Everything else is `pub(crate)`.

pub mod app;
pub(crate) mod attach;
pub mod bootstrap;
pub(crate) mod bootstrap_node;
pub(crate) mod bootstrap_status;
pub(crate) mod check;
pub mod cli;
pub mod config;
pub(crate) mod connect;
pub(crate) mod descriptors;
pub(crate) mod friends_file;
pub(crate) mod friends_list;
pub mod id;
pub(crate) mod key_file;
pub(crate) mod listeners;
pub mod log_sink;
pub(crate) mod manual;
pub mod net;
pub(crate) mod node;
pub(crate) mod private_file;
pub mod proto;
pub(crate) mod reload;
pub(crate) mod sd_notify;
pub(crate) mod seen_file;
pub(crate) mod signals;
pub(crate) mod socks_listen;
pub(crate) mod status;
pub(crate) mod token_bucket;
pub(crate) mod tunnel_spec;
