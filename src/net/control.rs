//! The local control socket: `toxtun status`, `forget` and `connect` reach
//! the running node through a Unix socket beside the key file that only
//! its user can open (0600).

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::accept::AcceptFailures;
use super::command::Command;
use super::local_stream::{LocalStream, NOT_OPENED, OPENED};
use crate::id::{PeerRef, PublicKey, ToxId};

/// How long `toxtun status` waits for the node: a node that cannot accept
/// (out of descriptors) or whose loop is stuck gets a clear error, not a hang.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn socket_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

/// Binds the socket, refusing to take over one a running node still answers.
pub async fn bind(path: &Path) -> Result<UnixListener, String> {
    if UnixStream::connect(path).await.is_ok() {
        return Err(format!(
            "{}: another node with this key is running",
            path.display()
        ));
    }
    let _ = std::fs::remove_file(path);
    // Created 0600 from the start: a socket bound first and restricted
    // after could be opened by another local user in between. The umask is
    // the process's, so for this instant other files created would only
    // come out stricter, never looser.
    // SAFETY: umask only swaps an integer in the process's state.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, putting the previous value back.
    unsafe { libc::umask(previous) };
    let listener =
        bound.map_err(|e| format!("{}: cannot create control socket: {e}", path.display()))?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .map_err(|e| format!("{}: cannot check control socket: {e}", path.display()))?;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: control socket came out with mode {mode:04o}",
            path.display()
        ));
    }
    Ok(listener)
}

/// Answers requests for as long as the node runs.
pub async fn serve(listener: UnixListener, commands: mpsc::Sender<Command>) {
    serve_each(listener, move |stream| answer(stream, commands.clone())).await
}

/// Runs `answer` on each connection to the socket, each in a task of its
/// own; a failed accept (out of descriptors) pauses it, never ends it.
pub async fn serve_each<F, A>(listener: UnixListener, answer: F)
where
    F: Fn(UnixStream) -> A,
    A: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let answered = answer(stream);
                tokio::spawn(async move {
                    if let Err(e) = answered.await {
                        debug!(error = %e, "control request failed");
                    }
                });
            }
            Err(e) => {
                let until = failures.failed("control socket", &e);
                tokio::time::sleep_until(until.into()).await;
            }
        }
    }
}

/// A request is one line: `text` or `json` (status), `forget KEY`, or
/// `connect ID TARGET` (the stream then carries a tunnel; see
/// `local_stream`). The answer to `forget` is one line, starting `error: `
/// when it failed.
async fn answer(mut stream: UnixStream, commands: mpsc::Sender<Command>) -> std::io::Result<()> {
    let request = read_line(&mut stream).await?;
    let request = request.trim();
    if let Some(words) = request.strip_prefix("connect ") {
        return hand_over(stream, words, &commands).await;
    }
    let text = match request.strip_prefix("forget ") {
        Some(key) => forget_answer(key, &commands).await,
        None => status_answer(request == "json", &commands).await,
    };
    let Some(text) = text else {
        return Ok(());
    };
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await
}

/// The longest request line: `connect`, an ID and a target fit many times.
const MAX_REQUEST: usize = 1024;

/// One line, read a byte at a time: what follows it is a tunnel's and
/// must stay in the stream.
pub(crate) async fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_REQUEST {
        if stream.read(&mut byte).await? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn hand_over(
    mut stream: UnixStream,
    words: &str,
    commands: &mpsc::Sender<Command>,
) -> std::io::Result<()> {
    let parsed = words
        .split_once(' ')
        .ok_or_else(|| "expected an ID and a target".to_string())
        .and_then(|(id, target)| {
            let server = id.parse::<ToxId>().map_err(|e| format!("'{id}': {e}"))?;
            Ok((server, target.trim().to_string()))
        });
    match parsed {
        Ok((server, target)) => {
            let command = Command::OpenOn {
                server,
                target,
                stream: LocalStream::handed_over(stream),
            };
            let _ = commands.send(command).await;
            Ok(())
        }
        Err(e) => {
            let line = format!("{NOT_OPENED}{e}\n");
            stream.write_all(line.as_bytes()).await?;
            stream.shutdown().await
        }
    }
}

async fn status_answer(json: bool, commands: &mpsc::Sender<Command>) -> Option<String> {
    let (reply, answer) = oneshot::channel();
    commands.send(Command::Status { reply }).await.ok()?;
    let status = answer.await.ok()?;
    Some(if json {
        serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
    } else {
        status.render_text()
    })
}

async fn forget_answer(key: &str, commands: &mpsc::Sender<Command>) -> Option<String> {
    let friend = match key.parse::<PeerRef>() {
        Ok(peer) => peer.key(),
        Err(e) => return Some(format!("{FORGET_FAILED}'{key}': {e}\n")),
    };
    let (reply, answer) = oneshot::channel();
    commands
        .send(Command::Forget { friend, reply })
        .await
        .ok()?;
    Some(match answer.await.ok()? {
        Ok(text) => text + "\n",
        Err(text) => format!("{FORGET_FAILED}{text}\n"),
    })
}

const FORGET_FAILED: &str = "error: ";

/// The `toxtun forget` side: what the running node did, or why it
/// failed; None when no node runs on this key.
pub async fn forget(path: &Path, friend: &PublicKey) -> Result<Option<String>, String> {
    let Some(answer) = request(path, &format!("forget {friend}\n")).await? else {
        return Ok(None);
    };
    let line = answer.trim_end().to_string();
    match line.strip_prefix(FORGET_FAILED) {
        Some(error) => Err(error.to_string()),
        None => Ok(Some(line)),
    }
}

/// The `toxtun status` side.
pub async fn query(path: &Path, json: bool) -> Result<String, String> {
    request(path, if json { "json\n" } else { "text\n" })
        .await?
        .ok_or_else(|| format!("no running node answers on {}", path.display()))
}

/// None when no node listens on `path`.
async fn request(path: &Path, line: &str) -> Result<Option<String>, String> {
    tokio::time::timeout(QUERY_TIMEOUT, ask(path, line))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the node on {} did not answer within {QUERY_TIMEOUT:?}",
                path.display()
            ))
        })
}

async fn ask(path: &Path, line: &str) -> Result<Option<String>, String> {
    let Some(mut stream) = open(path).await? else {
        return Ok(None);
    };
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(out))
}

/// None when no node listens on `path`.
async fn open(path: &Path) -> Result<Option<UnixStream>, String> {
    match UnixStream::connect(path).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            Ok(None)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The `toxtun connect` side: the stream once the running node has opened
/// a tunnel to `target` at `server` on it, or why it did not; None when
/// no node runs on this key. The node's open timeout bounds the wait.
pub async fn connect(
    path: &Path,
    server: &ToxId,
    target: &str,
) -> Result<Option<UnixStream>, String> {
    let Some(mut stream) = open(path).await? else {
        return Ok(None);
    };
    let request = format!("connect {server} {target}\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let reply = read_line(&mut stream)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if reply.as_bytes() == OPENED.trim_ascii_end() {
        return Ok(Some(stream));
    }
    Err(match reply.strip_prefix(NOT_OPENED) {
        Some(why) => why.to_string(),
        None if reply.is_empty() => "the running node closed the request without an answer".into(),
        None => format!("unexpected answer from the running node: {reply}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_and_the_umask_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key.sock");
        // SAFETY: reading the umask means setting it; it is put back below.
        let before = unsafe { libc::umask(0o022) };
        let _listener = bind(&path).await.unwrap();
        // SAFETY: as above.
        let after = unsafe { libc::umask(before) };
        assert_eq!(after, 0o022, "bind left the umask changed");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind(&path).await.unwrap_err();
        assert!(err.contains("another node"), "{err}");
    }
}
