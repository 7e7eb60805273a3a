//! A tunnelled connection as the driver holds it, and the one owner of its
//! backpressure on this side: the reader's credits, the writer's bounded
//! queue, and what the queue had no room for. The core pauses and resumes
//! the channel when this says so; nothing else decides it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc::error::TrySendError;

use super::local_stream::LocalStream;
use super::tcp::{ConnTasks, WriterMsg};

pub struct Conn {
    /// Client side: the local stream, until the server accepts.
    pending: Option<LocalStream>,
    /// The tunnel line whose listener accepted it, if one did.
    pub tunnel: Option<usize>,
    /// The local program's address, when a listener accepted it.
    pub source: Option<std::net::SocketAddr>,
    tasks: Option<ConnTasks>,
    /// Messages the writer queue had no room for, in order.
    overflow: VecDeque<WriterMsg>,
    /// Closed cleanly: drop it once the writer has everything.
    closing: bool,
}

/// What a message handed to the writer means for the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    Taken,
    /// The writer is full: pause the channel until it drains.
    Held,
}

/// What the writer making room means.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Still full.
    Waiting,
    /// Everything handed over: resume the channel.
    Resume,
    /// Everything handed over and the connection had closed cleanly: drop
    /// it now.
    Done,
}

impl Conn {
    pub fn new(pending: Option<LocalStream>) -> Self {
        Conn {
            pending,
            tunnel: None,
            source: None,
            tasks: None,
            overflow: VecDeque::new(),
            closing: false,
        }
    }

    pub fn take_pending(&mut self) -> Option<LocalStream> {
        self.pending.take()
    }

    pub fn start(&mut self, tasks: ConnTasks) {
        self.tasks = Some(tasks);
    }

    /// The core has room for this many more chunks from the reader.
    pub fn add_credits(&self, chunks: u32) {
        if let Some(tasks) = &self.tasks {
            tasks.credits.add_permits(chunks as usize);
        }
    }

    /// Hands a message to the writer, or holds it behind the ones already
    /// held.
    pub fn deliver(&mut self, message: WriterMsg) -> Delivered {
        let Some(tasks) = self.tasks.as_ref() else {
            return Delivered::Taken;
        };
        if !self.overflow.is_empty() {
            self.overflow.push_back(message);
            return Delivered::Taken;
        }
        match hand_over(tasks, message) {
            Err(TrySendError::Full(message)) => {
                self.overflow.push_back(message);
                Delivered::Held
            }
            _ => Delivered::Taken,
        }
    }

    /// The writer made room: hand over what was held.
    pub fn drain(&mut self) -> Drained {
        let Some(tasks) = self.tasks.as_ref() else {
            return Drained::Waiting;
        };
        while let Some(message) = self.overflow.pop_front() {
            match hand_over(tasks, message) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => {
                    self.overflow.clear();
                    break;
                }
                Err(TrySendError::Full(message)) => {
                    self.overflow.push_front(message);
                    return Drained::Waiting;
                }
            }
        }
        if self.closing {
            Drained::Done
        } else {
            Drained::Resume
        }
    }

    /// The core closed the connection. A clean close lets the writer
    /// finish what it holds (false: keep the connection until `drain` says
    /// `Done`); any other close tears it down at once. True: drop it now.
    pub fn close(&mut self, clean: bool) -> bool {
        if clean && !self.overflow.is_empty() {
            self.closing = true;
            return false;
        }
        if let Some(tasks) = self.tasks.take() {
            if clean {
                // The reader already ended; the writer ends once its queue
                // is empty and this sender is gone.
                drop(tasks.writer);
            } else {
                tasks.abort();
            }
        }
        true
    }
}

/// Queues `message` for the writer. When the queue is full the writer is
/// asked to report once it has made room, and the queue is tried again: the
/// writer may have emptied it after the first try and before the flag was
/// up, and would then never report. Full on the second try means it still
/// holds messages, and it looks at the flag after each one.
fn hand_over(tasks: &ConnTasks, message: WriterMsg) -> Result<(), TrySendError<WriterMsg>> {
    match tasks.writer.try_send(message) {
        Err(TrySendError::Full(message)) => {
            tasks.want_ready.store(true, Ordering::Release);
            tasks.writer.try_send(message)
        }
        other => other,
    }
}
