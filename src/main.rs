use std::process::ExitCode;

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
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("toxtun={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(toxtun::log_sink::writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match toxtun::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("toxtun: {message}");
            ExitCode::FAILURE
        }
    }
}
