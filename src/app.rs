//! From the parsed command line to a running node.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::cli::{Cli, Command};
use crate::config::{Settings, DEFAULT_KEY_FILE};
use crate::friends_file;
use crate::id::PeerRef;
use crate::listeners::listen_all;
use crate::node::{start_node, Mode};
use crate::proto::tunnel::control::Transport;
use crate::reload::Running;
use crate::signals::{Asked, Signals};

/// `$XDG_CONFIG_HOME/toxtun`, or `~/.config/toxtun`.
fn config_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("toxtun")
}

/// Without a config the key lives in the user's config directory.
pub fn default_key_file() -> PathBuf {
    config_dir().join(DEFAULT_KEY_FILE)
}

/// The config read when `-c` names none, if it exists.
pub fn default_config_file() -> PathBuf {
    config_dir().join("toxtun.ini")
}

pub fn load_settings(cli: &Cli) -> Result<Settings, String> {
    let default = default_config_file();
    let mut settings = match &cli.config {
        Some(path) => Settings::load(path).map_err(|e| e.to_string())?,
        None if default.exists() => Settings::load(&default).map_err(|e| e.to_string())?,
        None => Settings::defaults(default_key_file()),
    };
    for warning in &settings.warnings {
        warn!("{warning}");
    }
    for peer in &cli.peers {
        settings.add_peer_flag(peer)?;
    }
    for entry in &cli.bootstrap {
        settings.add_bootstrap_flag(entry)?;
    }
    if let Some(proxy) = &cli.proxy {
        settings.set_proxy_flag(proxy)?;
    }
    if let Command::Client {
        forwards,
        udp_forwards,
        socks,
        server,
    } = &cli.command
    {
        let none = forwards.is_empty() && udp_forwards.is_empty() && socks.is_empty();
        match server {
            Some(server) if none => {
                return Err(format!("'{server}': a server ID goes with -L, -U or -D"))
            }
            Some(server) => {
                for forward in forwards {
                    settings.add_forward_flag(forward, server, Transport::Tcp)?;
                }
                for forward in udp_forwards {
                    settings.add_forward_flag(forward, server, Transport::Udp)?;
                }
                for flag in socks {
                    settings.add_socks_flag(flag, server)?;
                }
            }
            None if !none => {
                return Err("-L, -U and -D need the server's ID after the flags".into())
            }
            None => {}
        }
    }
    Ok(settings)
}

/// A client with nothing to open would run and do nothing: a config
/// whose `[client]` section is misspelled, or a forgotten `-L`.
fn check_has_tunnels(settings: &Settings) -> Result<(), String> {
    if !settings.client.is_empty() || !settings.socks.is_empty() {
        return Ok(());
    }
    let file = match &settings.source {
        Some(path) => format!("under [client] in {}", path.display()),
        None => "under [client] in a config file (-c FILE)".to_string(),
    };
    Err(format!(
        "no tunnels to open: add NAME = LISTEN_HOST:LISTEN_PORT:TARGET_HOST:TARGET_PORT:SERVER_ID \
         lines {file}, or give -L, -U or -D and the server's ID"
    ))
}

pub fn run(cli: Cli) -> Result<(), String> {
    // Neither reads a config: they describe the program, not a node.
    match cli.command {
        Command::Completions { shell } => {
            crate::manual::print_completions(shell);
            return Ok(());
        }
        Command::Man => {
            print!("{}", crate::manual::render_man_page()?);
            return Ok(());
        }
        _ => {}
    }
    let settings = load_settings(&cli)?;
    match cli.command {
        Command::Id => {
            let (identity, _) = crate::key_file::load_or_create(&settings.node.key_file)
                .map_err(|e| e.to_string())?;
            println!("{}", identity.id());
            Ok(())
        }
        Command::Connect { id, target } => crate::connect::run(settings, &id, &target),
        Command::Server => serve(settings, Mode::Server, cli.once, &|| load_settings(&cli)),
        Command::Client { .. } => {
            check_has_tunnels(&settings)?;
            serve(settings, Mode::Client, cli.once, &|| load_settings(&cli))
        }
        Command::Bootstrap => crate::bootstrap_node::run(settings),
        Command::Status { json } => {
            let path = crate::net::control::socket_path(&settings.node.key_file);
            print!(
                "{}",
                small_runtime()?.block_on(crate::net::control::query(&path, json))?
            );
            Ok(())
        }
        Command::Forget { friend } => forget(&settings, &friend),
        Command::Friends { json } => list_friends(&settings, json),
        Command::Nospam { new } => {
            let path = &settings.node.key_file;
            let identity = match new {
                true => crate::key_file::renew_nospam(path),
                false => crate::key_file::load(path),
            }
            .map_err(|e| e.to_string())?;
            println!("{}", identity.id());
            let socket = crate::net::control::socket_path(path);
            if new && crate::attach::node_runs(&socket) {
                warn!("the node running on this key still takes the old ID until it restarts");
            }
            Ok(())
        }
        Command::Check => {
            print!("{}", crate::check::render(&settings));
            Ok(())
        }
        Command::Completions { .. } | Command::Man => unreachable!("answered before the config"),
    }
}

fn small_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))
}

/// `toxtun forget`: through the running node when there is one, else in
/// the friends file directly.
fn forget(settings: &Settings, friend: &str) -> Result<(), String> {
    let key = friend
        .parse::<PeerRef>()
        .map_err(|e| format!("forget: '{friend}': {e}"))?
        .key();
    let path = crate::net::control::socket_path(&settings.node.key_file);
    match small_runtime()?.block_on(crate::net::control::forget(&path, &key))? {
        Some(done) => println!("{done}"),
        None => {
            let file = friends_file::path_for(&settings.node.key_file);
            if !friends_file::remove(&file, &key)? {
                return Err(format!(
                    "{key} is not in {} (and no node is running)",
                    file.display()
                ));
            }
            println!("removed {key} from {} (no node is running)", file.display());
        }
    }
    let configured = settings.server.friends.iter().any(|p| p.key() == key)
        || settings.peers.iter().any(|p| p.peer.key() == key);
    if configured {
        eprintln!("warning: {key} is also in the config ([server] friends or [peers]): it comes back when the node restarts unless removed there");
    }
    Ok(())
}

/// `toxtun friends`: the files and config, with what a running node
/// knows now.
fn list_friends(settings: &Settings, json: bool) -> Result<(), String> {
    let path = crate::net::control::socket_path(&settings.node.key_file);
    let running = match crate::attach::node_runs(&path) {
        true => {
            let text = small_runtime()?.block_on(crate::net::control::query(&path, true))?;
            Some(serde_json::from_str(&text).map_err(|e| format!("the node's status: {e}"))?)
        }
        false => None,
    };
    let friends = crate::friends_list::collect(settings, running.as_ref())?;
    match json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&friends).map_err(|e| e.to_string())?
        ),
        false => print!(
            "{}",
            crate::friends_list::render_text(&friends, running.is_some())
        ),
    }
    Ok(())
}

async fn save_last_seen(
    path: &std::path::Path,
    commands: &tokio::sync::mpsc::Sender<crate::net::command::Command>,
) {
    if let Err(e) = crate::seen_file::save_from_node(path, commands).await {
        warn!("last seen times not saved: {e}");
    }
}

/// Runs a node until it is asked to stop; `load` reads the config again
/// (SIGHUP), as at start.
fn serve(
    settings: Settings,
    mode: Mode,
    once: bool,
    load: &dyn Fn() -> Result<Settings, String>,
) -> Result<(), String> {
    crate::log_sink::log_to(settings.node.log_file.as_deref())?;
    crate::log_sink::apply_level(settings.node.log_level);
    let control_path = crate::net::control::socket_path(&settings.node.key_file);
    // A client on a key whose node runs hands its connections to that node
    // instead of starting a second one on the same identity.
    let attach = mode == Mode::Client && crate::attach::node_runs(&control_path);
    let (identity, created) =
        crate::key_file::load_or_create(&settings.node.key_file).map_err(|e| e.to_string())?;
    if created {
        info!(key_file = %settings.node.key_file.display(), "created a new identity");
    }
    let identity_id = identity.id();
    let runtime = new_runtime()?;
    // Whoever reads the ID line may signal the node at once: a SIGHUP
    // then must reload, not kill it.
    let mut signals = {
        let _inside = runtime.enter();
        Signals::install()?
    };
    println!("{identity_id}");
    if attach {
        return crate::attach::run(settings, &control_path, once, runtime, signals);
    }
    let mut node = start_node(
        &settings,
        mode,
        Arc::new(identity),
        runtime.handle().clone(),
        once,
    )?;
    let seen_path = crate::seen_file::path_for(&settings.node.key_file);
    let served_one = node.served_one.take();
    let commands = node.commands.clone();
    let result = runtime.block_on(async {
        let control = crate::net::control::bind(&control_path).await?;
        debug!(path = %control_path.display(), "control socket listening");
        tokio::spawn(crate::net::control::serve(control, commands.clone()));
        // `server` with [client] lines in its config plays both roles.
        let listeners = listen_all(&settings.client, 0, &commands).await?;
        crate::socks_listen::listen(&settings.socks, commands.clone()).await?;
        crate::sd_notify::ready(&format!("serving as {identity_id}"));
        let mut running = Running {
            settings,
            listeners,
            serving: mode == Mode::Server,
        };
        let mut served = std::pin::pin!(async {
            match served_one {
                Some(served) => {
                    let _ = served.await;
                    info!("one connection served (--once)");
                }
                None => std::future::pending().await,
            }
        });
        let mut save_seen = tokio::time::interval(crate::seen_file::SAVE_EVERY);
        loop {
            tokio::select! {
                asked = signals.next() => match asked {
                    Asked::Stop => break,
                    Asked::Reload => running.reload(load, &commands).await,
                },
                _ = save_seen.tick() => save_last_seen(&seen_path, &commands).await,
                _ = &mut served => break,
            }
        }
        save_last_seen(&seen_path, &commands).await;
        Ok::<(), String>(())
    });
    info!("shutting down");
    crate::sd_notify::stopping();
    let _ = std::fs::remove_file(&control_path);
    // Outside the runtime now, so waiting for room in a full queue is
    // allowed; the loop says goodbye to every friend before it ends.
    let _ = node
        .commands
        .blocking_send(crate::net::command::Command::Shutdown);
    node.join();
    result
}

/// One worker for every TCP reader and writer: with the event loop that
/// makes two busy threads a process, and on small machines more threads
/// only added context switches (measured with the compare bench).
fn new_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))
}
