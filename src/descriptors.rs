//! How many tunnels the node's descriptors allow. Every tunnel holds one
//! descriptor (the local or the target connection); the rest of the node
//! (sockets, listeners, the control socket, bootstrap links, a status
//! client, the friends file) needs a few more, kept in reserve so that
//! `status` and a new friend still work when tunnels have taken the rest.

use tracing::info;

/// Descriptors kept for everything but tunnels, besides one per listener.
pub const RESERVED: u64 = 32;

/// Raises the soft descriptor limit to the hard one (as servers do; the
/// soft default of 1024 is a relic) and returns the tunnels it leaves room
/// for, given how many listeners the node has.
pub fn tunnel_budget(listeners: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return usize::MAX;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let reserve = RESERVED + listeners as u64;
    let budget = limit.rlim_cur.saturating_sub(reserve).max(1);
    info!(
        descriptors = limit.rlim_cur,
        tunnels = budget,
        "descriptor limit"
    );
    usize::try_from(budget).unwrap_or(usize::MAX)
}
