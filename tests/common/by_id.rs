//! Nodes that know each other by ID alone, through a bootstrap node on
//! loopback.

use std::net::SocketAddr;
use std::path::Path;

use super::traffic::{exchange, pattern_hash, Target};
use super::{tunnel_line, write_config, Node, WAIT};

pub struct Bootstrap {
    pub node: Node,
    pub addr: SocketAddr,
    /// The `[node]` line that names it.
    pub entry: String,
}

impl Bootstrap {
    pub fn start(dir: &Path, node_lines: &str) -> Bootstrap {
        let node = Node::start(
            "bootstrap",
            &write_config(dir, "bootstrap", node_lines),
            "bootstrap",
        );
        let addr = node.udp_addr();
        let entry = format!("bootstrap = {addr}:{}\n", node.id);
        Bootstrap { node, addr, entry }
    }

    /// A server that announces here (with `env` for its process), once
    /// registered.
    pub fn server(&self, dir: &Path, node_lines: &str, env: &[(&str, &str)]) -> Node {
        let config = write_config(dir, "server", &format!("{node_lines}{}", self.entry));
        let server = Node::start_with(None, env, "server", &config, "server");
        server.wait_for(&["bootstrap node sees us at"], WAIT);
        server
    }

    /// A client that knows `server` by ID alone; checks that 64 KiB cross
    /// its tunnel to `target` (which answers with pattern 1) both ways.
    pub fn client_tunnels(
        &self,
        dir: &Path,
        node_lines: &str,
        server: &Node,
        target: &Target,
    ) -> Node {
        const LEN: usize = 64 * 1024;
        let client = Node::start(
            "client",
            &write_config(
                dir,
                "client",
                &format!(
                    "{node_lines}{}[client]\n{}",
                    self.entry,
                    tunnel_line("t0", target.addr, &server.id)
                ),
            ),
            "client",
        );
        let (received, hash) = exchange(client.tunnel_addr(), 2, LEN);
        assert_eq!((received, hash), (LEN, pattern_hash(1, LEN)));
        client
    }
}
