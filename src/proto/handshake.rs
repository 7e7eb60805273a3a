//! The friend handshake: Noise_IKpsk2 (WireGuard's pattern) whose first
//! message carries the initiator's identity key, the certificate binding it
//! to the Noise static key, a TAI64N timestamp, the nospam it knows for us,
//! and its instance number (which changes on every start).

use blake2::digest::consts::U16;
use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, StatelessTransportState};

use super::identity::{verify_certificate, Identity};
use super::wire::{
    INIT_PAYLOAD_LEN, MAC_LEN, NOISE_MSG1_LEN, NOISE_MSG2_LEN, RESPONSE_PAYLOAD_LEN,
};
use crate::id::PublicKey;

const NOISE_PARAMS: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"toxtun friend handshake v1";
const MAC1_LABEL: &[u8] = b"mac1----";

/// mac1 is keyed by the responder's Noise public key, so junk is dropped
/// with one hash instead of a Diffie-Hellman.
pub fn mac1_key(noise_public: &[u8; 32]) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(MAC1_LABEL)
        .chain_update(noise_public)
        .finalize()
        .into()
}

pub fn mac1(key: &[u8; 32], covered: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("32-byte key");
    mac.update(covered);
    mac.finalize().into_bytes().into()
}

pub fn mac1_valid(key: &[u8; 32], covered: &[u8], received: &[u8; MAC_LEN]) -> bool {
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("32-byte key");
    mac.update(covered);
    mac.verify_slice(received).is_ok()
}

/// TAI64N: big-endian seconds since 1970 plus 2^62, then nanoseconds.
/// Byte order makes later timestamps compare greater.
pub fn tai64n(unix: std::time::Duration) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&(unix.as_secs() + (1u64 << 62)).to_be_bytes());
    out[8..].copy_from_slice(&unix.subsec_nanos().to_be_bytes());
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPayload {
    pub identity: PublicKey,
    pub certificate: [u8; 64],
    pub timestamp: [u8; 12],
    pub nospam: [u8; 4],
    pub instance: u64,
    /// The sender holds no tunnels with us: whatever we hold must go.
    pub fresh: bool,
}

impl InitPayload {
    fn encode(&self) -> [u8; INIT_PAYLOAD_LEN] {
        let mut out = [0u8; INIT_PAYLOAD_LEN];
        out[..32].copy_from_slice(&self.identity.0);
        out[32..96].copy_from_slice(&self.certificate);
        out[96..108].copy_from_slice(&self.timestamp);
        out[108..112].copy_from_slice(&self.nospam);
        out[112..120].copy_from_slice(&self.instance.to_le_bytes());
        out[120] = self.fresh as u8;
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != INIT_PAYLOAD_LEN {
            return None;
        }
        Some(InitPayload {
            identity: PublicKey(bytes[..32].try_into().ok()?),
            certificate: bytes[32..96].try_into().ok()?,
            timestamp: bytes[96..108].try_into().ok()?,
            nospam: bytes[108..112].try_into().ok()?,
            instance: u64::from_le_bytes(bytes[112..120].try_into().ok()?),
            fresh: match bytes[120] {
                0 => false,
                1 => true,
                _ => return None,
            },
        })
    }
}

/// snow's primitives (ring's where it has them, as `Builder::new` would
/// pick), with the randomness drawn from a seed the core supplies: a core
/// run twice with the same seed sends the same handshakes.
struct SeededResolver {
    seed: [u8; 32],
}

struct SeededRandom(StdRng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(StdRng::from_seed(self.seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        RingResolver
            .resolve_hash(choice)
            .or_else(|| DefaultResolver.resolve_hash(choice))
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

fn builder<'a>(local: &'a [u8; 32], psk: &'a [u8; 32], seed: [u8; 32]) -> snow::Builder<'a> {
    let params = NOISE_PARAMS.parse().expect("valid noise params");
    snow::Builder::with_resolver(params, Box::new(SeededResolver { seed }))
        .local_private_key(local)
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.psk(2, psk))
        .expect("static noise configuration")
}

/// Starts a handshake towards `remote_noise`; returns the state and message
/// 1. `seed` is the randomness of its ephemeral key.
pub fn initiate(
    local: &Identity,
    remote_noise: &[u8; 32],
    psk: &[u8; 32],
    payload: &InitPayload,
    seed: [u8; 32],
) -> Option<(HandshakeState, Vec<u8>)> {
    let secret = local.noise_secret_bytes();
    let mut state = builder(&secret, psk, seed)
        .remote_public_key(remote_noise)
        .ok()?
        .build_initiator()
        .ok()?;
    let mut message = vec![0u8; NOISE_MSG1_LEN];
    let written = state.write_message(&payload.encode(), &mut message).ok()?;
    (written == NOISE_MSG1_LEN).then_some((state, message))
}

/// What message 2 tells the initiator about the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderInfo {
    pub instance: u64,
    pub fresh: bool,
}

/// Reads message 2; returns transport keys and what the responder said.
pub fn finish_initiation(
    mut state: HandshakeState,
    message: &[u8],
) -> Option<(StatelessTransportState, ResponderInfo)> {
    let mut payload = [0u8; NOISE_MSG2_LEN];
    let read = state.read_message(message, &mut payload).ok()?;
    if read != RESPONSE_PAYLOAD_LEN || payload[8] > 1 {
        return None;
    }
    let info = ResponderInfo {
        instance: u64::from_le_bytes(payload[..8].try_into().ok()?),
        fresh: payload[8] == 1,
    };
    Some((state.into_stateless_transport_mode().ok()?, info))
}

pub struct Responding {
    pub state: HandshakeState,
    pub remote_noise: [u8; 32],
    pub payload: InitPayload,
}

/// Reads message 1 and checks that the certificate binds the identity key
/// in the payload to the Noise static key that actually did the handshake.
/// `seed` is the randomness of the ephemeral key of our answer.
pub fn read_initiation(
    local: &Identity,
    psk: &[u8; 32],
    message: &[u8],
    seed: [u8; 32],
) -> Option<Responding> {
    let secret = local.noise_secret_bytes();
    let mut state = builder(&secret, psk, seed).build_responder().ok()?;
    let mut payload = [0u8; NOISE_MSG1_LEN];
    let read = state.read_message(message, &mut payload).ok()?;
    let payload = InitPayload::decode(&payload[..read])?;
    let remote_noise: [u8; 32] = state.get_remote_static()?.try_into().ok()?;
    if !verify_certificate(&payload.identity, &remote_noise, &payload.certificate) {
        return None;
    }
    Some(Responding {
        state,
        remote_noise,
        payload,
    })
}

/// Writes message 2; returns transport keys and the message.
pub fn write_response(
    mut state: HandshakeState,
    info: ResponderInfo,
) -> Option<(StatelessTransportState, Vec<u8>)> {
    let mut message = vec![0u8; NOISE_MSG2_LEN];
    let mut payload = [0u8; RESPONSE_PAYLOAD_LEN];
    payload[..8].copy_from_slice(&info.instance.to_le_bytes());
    payload[8] = info.fresh as u8;
    let written = state.write_message(&payload, &mut message).ok()?;
    if written != NOISE_MSG2_LEN {
        return None;
    }
    Some((state.into_stateless_transport_mode().ok()?, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_of(identity: &Identity, instance: u64) -> InitPayload {
        InitPayload {
            identity: identity.public_key(),
            certificate: identity.certificate,
            timestamp: tai64n(std::time::Duration::from_secs(1_800_000_000)),
            nospam: [1, 2, 3, 4],
            instance,
            fresh: true,
        }
    }

    #[test]
    fn both_sides_derive_working_keys() {
        let a = Identity::generate();
        let b = Identity::generate();
        let psk = [7u8; 32];
        let (init_state, msg1) =
            initiate(&a, &b.noise_public, &psk, &payload_of(&a, 11), [1; 32]).unwrap();
        let responding = read_initiation(&b, &psk, &msg1, [2; 32]).unwrap();
        assert_eq!(responding.payload, payload_of(&a, 11));
        assert_eq!(responding.remote_noise, a.noise_public);
        let info = ResponderInfo {
            instance: 22,
            fresh: false,
        };
        let (b_transport, msg2) = write_response(responding.state, info).unwrap();
        let (a_transport, got) = finish_initiation(init_state, &msg2).unwrap();
        assert_eq!(got, info);
        let mut sealed = [0u8; 64];
        let n = a_transport.write_message(9, b"ping", &mut sealed).unwrap();
        let mut opened = [0u8; 64];
        let m = b_transport
            .read_message(9, &sealed[..n], &mut opened)
            .unwrap();
        assert_eq!(&opened[..m], b"ping");
    }

    #[test]
    fn wrong_psk_fails_at_message_two() {
        // psk2 is mixed in after message 2's tokens, so only the initiator
        // can notice; it then never installs keys.
        let a = Identity::generate();
        let b = Identity::generate();
        let (state, msg1) =
            initiate(&a, &b.noise_public, &[1; 32], &payload_of(&a, 1), [1; 32]).unwrap();
        let responding = read_initiation(&b, &[2; 32], &msg1, [2; 32]).unwrap();
        let info = ResponderInfo {
            instance: 5,
            fresh: true,
        };
        let (_, msg2) = write_response(responding.state, info).unwrap();
        assert!(finish_initiation(state, &msg2).is_none());
    }

    #[test]
    fn certificate_of_another_identity_is_refused() {
        let a = Identity::generate();
        let b = Identity::generate();
        let mallory = Identity::generate();
        let mut payload = payload_of(&a, 1);
        payload.identity = mallory.public_key();
        let (_, msg1) = initiate(&a, &b.noise_public, &[0; 32], &payload, [1; 32]).unwrap();
        assert!(read_initiation(&b, &[0; 32], &msg1, [2; 32]).is_none());
    }

    #[test]
    fn timestamps_order_as_bytes() {
        let early = tai64n(std::time::Duration::new(100, 999_999_999));
        let late = tai64n(std::time::Duration::new(101, 0));
        assert!(late > early);
    }
}
