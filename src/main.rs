use std::process::ExitCode;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = toxtun::cli::parse();
    // `connect` shares its standard error with the program it serves (ssh
    // shows it to the user): only what went wrong, unless asked.
    let quiet = cli.quiet || matches!(cli.command, toxtun::cli::Command::Connect { .. });
    let level = match cli.verbose {
        0 if quiet => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // RUST_LOG, then -v or -q, say the level for the whole run; without
    // either the config's log_level may set it, and a reload change it.
    let from_environment = EnvFilter::try_from_default_env().ok();
    let fixed = from_environment.is_some() || cli.verbose > 0 || quiet;
    let filter = from_environment.unwrap_or_else(|| toxtun::log_sink::filter_for(level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(toxtun::log_sink::writer)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    toxtun::log_sink::keep_level_handle(handle, fixed);
    match toxtun::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("toxtun: {message}");
            ExitCode::FAILURE
        }
    }
}
