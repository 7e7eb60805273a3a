//! Where log lines go and which: standard error, or `[node] log_file` for
//! those without a journal, at `[node] log_level` unless the command line
//! chose a level. The file is opened again on SIGHUP, so logrotate
//! can rename it and signal (its usual `postrotate` convention) without
//! losing a line or copying the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::{reload, EnvFilter, Registry};

struct OpenLog {
    path: PathBuf,
    file: File,
}

static LOG_FILE: Mutex<Option<OpenLog>> = Mutex::new(None);

/// The subscriber's writer: one per formatted line.
pub fn writer() -> LogWriter {
    LogWriter
}

pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut log = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
        match log.as_mut() {
            // The format (colours included) was fixed when logging started,
            // for a terminal perhaps; a file gets the text without them.
            Some(open) => open.file.write_all(&without_colours(line))?,
            None => io::stderr().write_all(line)?,
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_for_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("log_file {}: cannot open: {e}", path.display()))
}

/// From now on lines go to `path` (appended), or to standard error when
/// None.
pub fn log_to(path: Option<&Path>) -> Result<(), String> {
    let open = match path {
        Some(path) => Some(OpenLog {
            path: path.to_path_buf(),
            file: open_for_append(path)?,
        }),
        None => None,
    };
    *LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = open;
    Ok(())
}

/// The file is opened again by its name: after a rotation that is a new
/// file, and lines stop going to the renamed one.
pub fn reopen() -> Result<(), String> {
    let mut log = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(open) = log.as_mut() {
        open.file = open_for_append(&open.path)?;
    }
    Ok(())
}

/// What changes the running filter: the subscriber's reload handle.
pub type LevelHandle = reload::Handle<EnvFilter, Registry>;

/// The handle, and whether the command line or RUST_LOG fixed the level
/// (then the config's `log_level` is not applied).
static LEVEL: OnceLock<(LevelHandle, bool)> = OnceLock::new();

pub fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::new(format!("toxtun={level}"))
}

pub fn keep_level_handle(handle: LevelHandle, fixed: bool) {
    let _ = LEVEL.set((handle, fixed));
}

/// Applies the config's `log_level` (None: info), unless the command line
/// or the environment chose one; true when the level changed.
pub fn apply_level(level: Option<LogLevel>) -> bool {
    let Some((handle, false)) = LEVEL.get() else {
        return false;
    };
    let wanted = level.unwrap_or(LogLevel::Info);
    let current = handle.with_current(|f| f.to_string()).unwrap_or_default();
    let filter = filter_for(wanted.name());
    if current == filter.to_string() {
        return false;
    }
    handle.reload(filter).is_ok()
}

/// `[node] log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "'{value}' is not a level: error, warn, info, debug or trace"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Removes terminal colour sequences (ESC [ parameters letter).
fn without_colours(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        if byte == 0x1b && bytes.peek() == Some(&b'[') {
            for b in bytes.by_ref() {
                if b.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_taken_out_and_the_text_kept() {
        let line = b"\x1b[2m2026-11-24\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mtoxtun\x1b[0m: ready\n";
        assert_eq!(
            without_colours(line),
            b"2026-11-24  INFO toxtun: ready\n".to_vec()
        );
    }
}
