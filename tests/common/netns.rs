//! Simulated internet in network namespaces: a bootstrap host and a router
//! in the middle, and two hosts each behind its own NAT (or none).

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// A public address: routed, no translation, no filter.
    None,
    /// Linux MASQUERADE: keeps the source port, filters unsolicited inbound.
    Cone,
    /// MASQUERADE --random-fully: a new port for every destination.
    Random,
    /// Cone NAT that forwards no UDP at all: only TCP gets out.
    UdpBlocked,
}

impl NatKind {
    pub fn name(&self) -> &'static str {
        match self {
            NatKind::None => "none",
            NatKind::Cone => "cone",
            NatKind::Random => "random",
            NatKind::UdpBlocked => "no-udp",
        }
    }
}

/// Whether namespace tests can run here. Under CI they must: a missing
/// tool there is a failure, not a skip.
pub fn can_run() -> Result<(), String> {
    let ready = check_tools();
    if let (Err(why), Ok(_)) = (&ready, std::env::var("CI")) {
        panic!("namespace tests cannot run under CI: {why}");
    }
    ready
}

fn check_tools() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    for tool in ["ip", "iptables", "conntrack"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{tool} not installed"));
        }
    }
    Ok(())
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(super) fn in_ns(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full);
}

/// Runs `f` on a thread inside namespace `ns`; sockets it creates stay there.
pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f()
    })
    .join()
    .unwrap()
}

/// Short enough that `{prefix}{tag}a` fits an interface name (15 bytes).
fn unique_prefix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn add_namespace(ns: &str) {
    run(&["ip", "netns", "add", ns]);
    in_ns(ns, &["ip", "link", "set", "lo", "up"]);
}

/// Two hosts on one Ethernet segment (a bridge in its own namespace), with
/// no route anywhere else: what a home or office LAN looks like.
pub struct LanWorld {
    pub switch: String,
    pub host_a: String,
    pub host_b: String,
}

impl LanWorld {
    pub fn new() -> LanWorld {
        Self::build(true)
    }

    /// Its hosts' addresses added without `brd`: interfaces that have no
    /// broadcast address.
    pub fn without_broadcast() -> LanWorld {
        Self::build(false)
    }

    fn build(broadcast: bool) -> LanWorld {
        let prefix = unique_prefix();
        let world = LanWorld {
            switch: format!("{prefix}sw"),
            host_a: format!("{prefix}ha"),
            host_b: format!("{prefix}hb"),
        };
        for ns in [&world.switch, &world.host_a, &world.host_b] {
            add_namespace(ns);
        }
        in_ns(
            &world.switch,
            &["ip", "link", "add", "br0", "type", "bridge"],
        );
        in_ns(&world.switch, &["ip", "link", "set", "br0", "up"]);
        for (host, ip, tag) in [
            (&world.host_a, "10.9.0.1/24", "1"),
            (&world.host_b, "10.9.0.2/24", "2"),
        ] {
            let port = format!("{prefix}{tag}p");
            let nic = format!("{prefix}{tag}h");
            run(&[
                "ip",
                "link",
                "add",
                &nic,
                "netns",
                host,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &world.switch,
            ]);
            match broadcast {
                true => in_ns(host, &["ip", "addr", "add", ip, "brd", "+", "dev", &nic]),
                false => in_ns(host, &["ip", "addr", "add", ip, "dev", &nic]),
            }
            in_ns(host, &["ip", "link", "set", &nic, "up"]);
            in_ns(
                &world.switch,
                &["ip", "link", "set", &port, "master", "br0"],
            );
            in_ns(&world.switch, &["ip", "link", "set", &port, "up"]);
        }
        world
    }
}

impl Drop for LanWorld {
    fn drop(&mut self) {
        for ns in [&self.switch, &self.host_a, &self.host_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub struct World {
    prefix: String,
    pub bootstrap: String,
    pub router: String,
    pub nat_a: String,
    pub nat_b: String,
    pub host_a: String,
    pub host_b: String,
}

pub const BOOTSTRAP_IP: &str = "10.0.0.2";
pub const HOST_A_IP: &str = "192.168.1.2";
pub const HOST_B_IP: &str = "192.168.2.2";
/// Host B's NAT uses these ports after `rebind_b`: outside the ephemeral
/// range, so the new mapping cannot keep the old port.
pub const REBOUND_PORTS: &str = "20000-20999";

impl World {
    pub fn new(a: NatKind, b: NatKind) -> World {
        let prefix = unique_prefix();
        let name = |s: &str| format!("{prefix}{s}");
        let world = World {
            bootstrap: name("bs"),
            router: name("in"),
            nat_a: name("na"),
            nat_b: name("nb"),
            host_a: name("ha"),
            host_b: name("hb"),
            prefix,
        };
        for ns in world.all() {
            add_namespace(ns);
        }
        world.link(
            &world.bootstrap,
            "10.0.0.2/24",
            &world.router,
            "10.0.0.1/24",
            "1",
        );
        world.link(
            &world.router,
            "10.1.0.1/24",
            &world.nat_a,
            "10.1.0.2/24",
            "2",
        );
        world.link(
            &world.router,
            "10.2.0.1/24",
            &world.nat_b,
            "10.2.0.2/24",
            "3",
        );
        world.link(
            &world.nat_a,
            "192.168.1.1/24",
            &world.host_a,
            "192.168.1.2/24",
            "4",
        );
        world.link(
            &world.nat_b,
            "192.168.2.1/24",
            &world.host_b,
            "192.168.2.2/24",
            "5",
        );
        for (ns, gateway) in [
            (&world.bootstrap, "10.0.0.1"),
            (&world.nat_a, "10.1.0.1"),
            (&world.nat_b, "10.2.0.1"),
            (&world.host_a, "192.168.1.1"),
            (&world.host_b, "192.168.2.1"),
        ] {
            in_ns(ns, &["ip", "route", "add", "default", "via", gateway]);
        }
        for ns in [&world.router, &world.nat_a, &world.nat_b] {
            in_ns(ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        }
        world.nat(
            &world.nat_a.clone(),
            &format!("{}2b", world.prefix),
            "192.168.1.0/24",
            "10.1.0.2",
            a,
        );
        world.nat(
            &world.nat_b.clone(),
            &format!("{}3b", world.prefix),
            "192.168.2.0/24",
            "10.2.0.2",
            b,
        );
        world
    }

    /// Drops everything the router forwards, both ways, until called with
    /// false: the path between the hosts goes dark.
    pub fn blackout(&self, on: bool) {
        let op = if on { "-I" } else { "-D" };
        in_ns(&self.router, &["iptables", op, "FORWARD", "-j", "DROP"]);
    }

    /// Host B's NAT forwards nothing from it, UDP nor TCP: only what runs
    /// on the NAT box itself is in its reach.
    pub fn cut_b_off(&self) {
        in_ns(
            &self.nat_b,
            &[
                "iptables",
                "-I",
                "FORWARD",
                "-s",
                "192.168.2.0/24",
                "-j",
                "DROP",
            ],
        );
    }

    /// The link between the router and host A's NAT carries at most `mtu`
    /// bytes a packet, both ways; the hosts' own links stay at 1500. The
    /// two ends answer an oversized packet with ICMP "fragmentation
    /// needed" unless `icmp` is false, when they drop those answers.
    pub fn narrow_link_a(&self, mtu: u32, icmp: bool) {
        self.narrow([(&self.router, "2a"), (&self.nat_a, "2b")], mtu, icmp);
    }

    /// The same for the bootstrap node's link: what it relays must fit.
    pub fn narrow_bootstrap_link(&self, mtu: u32, icmp: bool) {
        self.narrow([(&self.bootstrap, "1a"), (&self.router, "1b")], mtu, icmp);
    }

    fn narrow(&self, ends: [(&String, &str); 2], mtu: u32, icmp: bool) {
        let mtu = mtu.to_string();
        for (ns, end) in ends {
            let dev = format!("{}{end}", self.prefix);
            in_ns(ns, &["ip", "link", "set", &dev, "mtu", &mtu]);
            if !icmp {
                let drop_icmp = [
                    "iptables",
                    "-A",
                    "OUTPUT",
                    "-p",
                    "icmp",
                    "--icmp-type",
                    "fragmentation-needed",
                    "-j",
                    "DROP",
                ];
                in_ns(ns, &drop_icmp);
            }
        }
    }

    /// Host B's NAT forgets its mappings and maps anew from another port
    /// range: host B's public port changes under a live session.
    pub fn rebind_b(&self) {
        let wan = format!("{}3b", self.prefix);
        in_ns(
            &self.nat_b,
            &[
                "iptables",
                "-t",
                "nat",
                "-I",
                "POSTROUTING",
                "1",
                "-o",
                &wan,
                "-p",
                "udp",
                "-j",
                "MASQUERADE",
                "--to-ports",
                REBOUND_PORTS,
            ],
        );
        in_ns(&self.nat_b, &["conntrack", "-F"]);
    }

    /// The name of end `a` or `b` of link `tag` (`{prefix}{tag}{end}`).
    pub(super) fn device(&self, tag_and_end: &str) -> String {
        format!("{}{tag_and_end}", self.prefix)
    }

    fn all(&self) -> [&String; 6] {
        [
            &self.bootstrap,
            &self.router,
            &self.nat_a,
            &self.nat_b,
            &self.host_a,
            &self.host_b,
        ]
    }

    /// A veth pair between two namespaces, `{prefix}{tag}a` in `left`.
    fn link(&self, left: &str, left_ip: &str, right: &str, right_ip: &str, tag: &str) {
        let l = format!("{}{tag}a", self.prefix);
        let r = format!("{}{tag}b", self.prefix);
        run(&[
            "ip", "link", "add", &l, "netns", left, "type", "veth", "peer", "name", &r, "netns",
            right,
        ]);
        in_ns(left, &["ip", "addr", "add", left_ip, "dev", &l]);
        in_ns(right, &["ip", "addr", "add", right_ip, "dev", &r]);
        in_ns(left, &["ip", "link", "set", &l, "up"]);
        in_ns(right, &["ip", "link", "set", &r, "up"]);
    }

    fn nat(&self, ns: &str, wan: &str, lan: &str, wan_ip: &str, kind: NatKind) {
        match kind {
            NatKind::None => in_ns(&self.router, &["ip", "route", "add", lan, "via", wan_ip]),
            NatKind::Cone | NatKind::Random | NatKind::UdpBlocked => {
                if kind == NatKind::UdpBlocked {
                    in_ns(
                        ns,
                        &["iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP"],
                    );
                }
                let mut masquerade = vec![
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-o",
                    wan,
                    "-j",
                    "MASQUERADE",
                ];
                if kind == NatKind::Random {
                    masquerade.push("--random-fully");
                }
                in_ns(ns, &masquerade);
                let established = [
                    "iptables",
                    "-A",
                    "FORWARD",
                    "-i",
                    wan,
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "ESTABLISHED,RELATED",
                    "-j",
                    "ACCEPT",
                ];
                in_ns(ns, &established);
                in_ns(ns, &["iptables", "-A", "FORWARD", "-i", wan, "-j", "DROP"]);
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for ns in self.all() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
