//! The local control socket: `toxtun status` asks the running node through
//! a Unix socket beside the key file that only its user can open (0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::command::Command;

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
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("{}: cannot create control socket: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: cannot restrict control socket: {e}", path.display()))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, commands: mpsc::Sender<Command>) {
    while let Ok((stream, _)) = listener.accept().await {
        let commands = commands.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, commands).await {
                debug!(error = %e, "status request failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, commands: mpsc::Sender<Command>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut request = String::new();
    BufReader::new(read).read_line(&mut request).await?;
    let (reply, answer) = oneshot::channel();
    if commands.send(Command::Status { reply }).await.is_err() {
        return Ok(());
    }
    let Ok(status) = answer.await else {
        return Ok(());
    };
    let text = if request.trim() == "json" {
        serde_json::to_string_pretty(&status).unwrap_or_default() + "\n"
    } else {
        status.render_text()
    };
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// The `toxtun status` side.
pub async fn query(path: &Path, json: bool) -> Result<String, String> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|e| format!("no running node answers on {}: {e}", path.display()))?;
    let request = if json { "json\n" } else { "text\n" };
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}
