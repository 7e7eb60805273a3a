//! Command line: `toxtun [-c FILE | --config FILE | -config FILE] [-v|-q] <COMMAND>`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "toxtun",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TOXTUN_COMMIT"), ")"),
    about = "TCP and UDP tunnels between friends' hosts, end-to-end encrypted"
)]
pub struct Cli {
    /// Config file (INI); `-config FILE` works too
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// More log output (-v debug, -vv trace)
    #[arg(short = 'v', action = ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only warnings and errors
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,
    /// Where a friend can be reached, as a [peers] line; repeatable
    #[arg(long = "peer", value_name = "ID=HOST:PORT", global = true)]
    pub peers: Vec<String>,
    /// A bootstrap node, as a [node] bootstrap entry; repeatable
    #[arg(long = "bootstrap", value_name = "HOST:PORT:ID", global = true)]
    pub bootstrap: Vec<String>,
    /// The TCP link to bootstrap nodes goes through this proxy, as
    /// [node] proxy: --proxy http://user:pass@proxy.example:3128 (or
    /// socks5://HOST:PORT, or none); without it ALL_PROXY or HTTPS_PROXY
    #[arg(long = "proxy", value_name = "URL", global = true)]
    pub proxy: Option<String>,
    /// server, client: serve one connection, then exit
    #[arg(long, global = true)]
    pub once: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept friends and forward their tunnels to allowed targets
    Server,
    /// Open the tunnels listed in [client] and given with -L:
    /// toxtun client -L 8080:127.0.0.1:80 ID --peer ID=192.0.2.10:33445
    Client {
        /// A local TCP port forwarded to a target at the server ID;
        /// LHOST defaults to 127.0.0.1; repeatable
        #[arg(short = 'L', value_name = "[LHOST:]LPORT:THOST:TPORT")]
        forwards: Vec<String>,
        /// A local UDP port forwarded to a target at the server ID, one
        /// flow per local source: -U 5353:127.0.0.1:53; repeatable
        #[arg(short = 'U', value_name = "[LHOST:]LPORT:THOST:TPORT")]
        udp_forwards: Vec<String>,
        /// A local SOCKS5 server whose connections become tunnels to the
        /// server ID (which applies its allow); LHOST defaults to
        /// 127.0.0.1; repeatable
        #[arg(short = 'D', value_name = "[LHOST:]PORT")]
        socks: Vec<String>,
        /// The server the -L, -U and -D tunnels go to (76 hex digits)
        #[arg(value_name = "ID")]
        server: Option<String>,
    },
    /// Join standard input and output to one tunnel, through the node
    /// running on this key or a node of its own:
    /// ssh -o ProxyCommand='toxtun connect ID 127.0.0.1:%p' host
    Connect {
        /// The server's ID (76 hex digits)
        id: String,
        /// What the server connects to: HOST:PORT, or a name in its [services]
        target: String,
    },
    /// Print this node's ID (one line), creating the identity if needed
    Id,
    /// Run a bootstrap node: rendezvous and relay for others
    Bootstrap,
    /// Ask the running node on this config for friends, paths, tunnels, counters
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Remove a friend: from the running node (its tunnels are reset) and
    /// from the remembered friends file
    Forget {
        /// The friend's ID or 64-hex public key
        friend: String,
    },
    /// List friends: from the config, remembered, and added while
    /// running, with when each was last seen (kept across restarts)
    Friends {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Print the ID; with --new, give the identity a new nospam and print
    /// the new ID: friends already known by key keep working, new ones
    /// need the new ID (a running node takes it when it restarts)
    Nospam {
        #[arg(long)]
        new: bool,
    },
    /// Read the config as a node would and print what it would do; exits
    /// non-zero, naming the file and line, on any error
    Check,
    /// Print a shell completion script:
    /// toxtun completions bash > /etc/bash_completion.d/toxtun
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): toxtun man | man -l -
    Man,
}

/// The Go toxtun (and its users) spell the flag `-config`; clap only knows
/// `--config`, so the single-dash spelling is rewritten before parsing.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some("-config") => OsString::from("--config"),
            Some(s) if s.starts_with("-config=") => OsString::from(format!("-{s}")),
            _ => arg,
        })
        .collect()
}

pub fn parse() -> Cli {
    Cli::parse_from(normalize_args(std::env::args_os()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Cli {
        Cli::try_parse_from(normalize_args(words.iter().map(OsString::from))).unwrap()
    }

    #[test]
    fn all_three_config_spellings() {
        for words in [
            ["toxtun", "-config", "a.ini", "client"],
            ["toxtun", "-c", "a.ini", "client"],
            ["toxtun", "--config", "a.ini", "client"],
            ["toxtun", "client", "-config", "a.ini"],
        ] {
            let cli = parse_words(&words);
            assert_eq!(cli.config, Some(PathBuf::from("a.ini")), "{words:?}");
            assert!(matches!(cli.command, Command::Client { .. }));
        }
        assert_eq!(
            parse_words(&["toxtun", "-config=b.ini", "id"]).config,
            Some(PathBuf::from("b.ini"))
        );
    }
}
