//! Named services: a server's `[services] NAME = HOST:PORT` lets friends
//! ask for a target by name (`web` rather than `127.0.0.1:8080`), and
//! naming a service allows it, whatever `allow` says.

/// Longest service name: it travels in OPEN as the target does.
const MAX_NAME: usize = 64;

/// A service name: letters, digits, `-`, `_` and `.`, starting with a
/// letter, so it can never be read as an address.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.len() <= MAX_NAME && starts_with_letter && name.chars().all(allowed) {
        return Ok(());
    }
    Err(format!(
        "'{name}' is not a service name (a letter, then letters, digits, '-', '_' or '.'; at most {MAX_NAME})"
    ))
}
