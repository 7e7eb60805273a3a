//! One set of transport keys with a friend: counters out, replay window in.

use std::time::Instant;

use snow::StatelessTransportState;

use super::replay::ReplayWindow;
use super::wire::{data_header, DATA_HEADER_LEN, TAG_LEN};

/// Counters beyond this start a new handshake; far below the nonce space.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;

pub struct Session {
    pub local_index: u32,
    pub remote_index: u32,
    transport: StatelessTransportState,
    send_counter: u64,
    replay: ReplayWindow,
    pub created: Instant,
    pub initiator: bool,
}

impl Session {
    pub fn new(
        local_index: u32,
        remote_index: u32,
        transport: StatelessTransportState,
        created: Instant,
        initiator: bool,
    ) -> Self {
        Session {
            local_index,
            remote_index,
            transport,
            send_counter: 0,
            replay: ReplayWindow::default(),
            created,
            initiator,
        }
    }

    pub fn needs_rekey(&self) -> bool {
        self.send_counter >= REKEY_AFTER_MESSAGES
    }

    /// Encrypts `plaintext` into a whole DATA packet appended to `out`.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> bool {
        let counter = self.send_counter;
        let start = out.len();
        out.resize(start + DATA_HEADER_LEN + plaintext.len() + TAG_LEN, 0);
        data_header(&mut out[start..], self.remote_index, counter);
        match self
            .transport
            .write_message(counter, plaintext, &mut out[start + DATA_HEADER_LEN..])
        {
            Ok(_) => {
                self.send_counter += 1;
                true
            }
            Err(_) => {
                out.truncate(start);
                false
            }
        }
    }

    /// Decrypts into `out`; the replay window moves only if it authenticated.
    pub fn open(&mut self, counter: u64, ciphertext: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.replay.check(counter) || ciphertext.len() < TAG_LEN {
            return false;
        }
        out.resize(ciphertext.len() - TAG_LEN, 0);
        match self.transport.read_message(counter, ciphertext, out) {
            Ok(n) => {
                out.truncate(n);
                self.replay.accept(counter)
            }
            Err(_) => false,
        }
    }
}
