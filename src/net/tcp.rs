//! Per-connection tasks: a reader that turns TCP bytes into commands (only
//! as fast as the event loop hands out credits) and a writer that drains a
//! bounded queue into TCP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::command::Command;
use super::local_stream::{LocalRead, LocalStream, LocalWrite};
use crate::proto::ConnId;

/// Bytes a reader takes from TCP per command.
pub const READ_CHUNK: usize = 16 * 1024;
/// Chunks a reader may have in flight before the loop says KCP has room.
pub const INITIAL_CREDITS: usize = 8;
/// Messages queued for a writer before the loop pauses that channel.
pub const WRITER_QUEUE: usize = 16;

pub enum WriterMsg {
    Data(Vec<u8>),
    /// The far side finished: half-close our write side.
    Eof,
}

/// What the event loop keeps for one live connection.
pub struct ConnTasks {
    pub writer: mpsc::Sender<WriterMsg>,
    pub credits: Arc<Semaphore>,
    /// Set by the loop when the writer queue was full; the writer then
    /// reports when it has made room.
    pub want_ready: Arc<AtomicBool>,
    pub reader_task: JoinHandle<()>,
    pub writer_task: JoinHandle<()>,
}

impl ConnTasks {
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        conn: ConnId,
        stream: LocalStream,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        let first = stream.opened_answer();
        let credits = Arc::new(Semaphore::new(INITIAL_CREDITS));
        let want_ready = Arc::new(AtomicBool::new(false));
        let (writer, queue) = mpsc::channel(WRITER_QUEUE);
        let reader_task = runtime.spawn(read_loop(
            conn,
            stream.read,
            credits.clone(),
            commands.clone(),
        ));
        let writer_task = runtime.spawn(write_loop(
            conn,
            stream.write,
            first,
            queue,
            want_ready.clone(),
            commands,
        ));
        ConnTasks {
            writer,
            credits,
            want_ready,
            reader_task,
            writer_task,
        }
    }

    /// Tears the connection down now (a reset): the socket closes at once.
    pub fn abort(self) {
        self.reader_task.abort();
        self.writer_task.abort();
    }
}

async fn read_loop(
    conn: ConnId,
    socket: LocalRead,
    credits: Arc<Semaphore>,
    commands: mpsc::Sender<Command>,
) {
    loop {
        match credits.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
        let command = match read_chunk(&socket).await {
            Ok(bytes) if bytes.is_empty() => Command::LocalEof { conn },
            Ok(bytes) => Command::LocalData { conn, bytes },
            Err(e) => Command::LocalFailed {
                conn,
                reason: format!("local read failed: {e}"),
            },
        };
        let last = !matches!(command, Command::LocalData { .. });
        if commands.send(command).await.is_err() || last {
            return;
        }
    }
}

/// The next bytes from the socket (none at its end), in a buffer taken
/// only once they are there: a reader kept its own, and a thousand idle
/// connections held 16 MiB that way.
async fn read_chunk(socket: &LocalRead) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    loop {
        socket.readable().await?;
        bytes.reserve_exact(READ_CHUNK);
        match socket.try_read_buf(&mut bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(bytes),
        }
    }
}

async fn write_loop(
    conn: ConnId,
    mut socket: LocalWrite,
    first: &'static [u8],
    mut queue: mpsc::Receiver<WriterMsg>,
    want_ready: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
) {
    if !first.is_empty() {
        if let Err(e) = socket.write_all(first).await {
            let reason = format!("local write failed: {e}");
            let _ = commands.send(Command::LocalFailed { conn, reason }).await;
            return;
        }
    }
    while let Some(message) = queue.recv().await {
        let result = match message {
            WriterMsg::Data(bytes) => socket.write_all(&bytes).await,
            WriterMsg::Eof => socket.shutdown().await,
        };
        if let Err(e) = result {
            let reason = format!("local write failed: {e}");
            let _ = commands.send(Command::LocalFailed { conn, reason }).await;
            return;
        }
        if want_ready.swap(false, Ordering::AcqRel)
            && commands.send(Command::WriterReady { conn }).await.is_err()
        {
            return;
        }
    }
}
