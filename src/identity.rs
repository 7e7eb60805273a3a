//! The node's identity: an ed25519 key (named by the ID), a separate x25519
//! key for Noise, and the certificate that binds the second to the first.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use x25519_dalek::StaticSecret;

use crate::id::{PublicKey, ToxId, NOSPAM_LEN};

const CERT_DOMAIN: &[u8] = b"toxtun noise static key v1";
const KEY_FILE_HEADER: &str = "# toxtun identity: keep this file secret (mode 0600)";

pub struct Identity {
    signing: SigningKey,
    noise_secret: StaticSecret,
    pub noise_public: [u8; 32],
    pub nospam: [u8; NOSPAM_LEN],
    pub certificate: [u8; 64],
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

fn bad(path: &Path, reason: impl Into<String>) -> IdentityError {
    IdentityError::Bad {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Identity {
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let signing = SigningKey::generate(&mut rng);
        let noise_secret = StaticSecret::random_from_rng(rng);
        let mut nospam = [0u8; NOSPAM_LEN];
        rng.fill_bytes(&mut nospam);
        Self::from_parts(signing, noise_secret, nospam)
    }

    fn from_parts(signing: SigningKey, noise_secret: StaticSecret, nospam: [u8; 4]) -> Self {
        let noise_public = *x25519_dalek::PublicKey::from(&noise_secret).as_bytes();
        let certificate = signing.sign(&cert_message(&noise_public)).to_bytes();
        Identity {
            signing,
            noise_secret,
            noise_public,
            nospam,
            certificate,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    pub fn id(&self) -> ToxId {
        ToxId::new(self.public_key(), self.nospam)
    }

    pub fn noise_secret_bytes(&self) -> [u8; 32] {
        self.noise_secret.to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Loads the key file, or creates it (mode 0600, parent 0700) when absent.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityError> {
        match fs::metadata(path) {
            Ok(_) => Self::load(path).map(|id| (id, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.save_new(path)?;
                Ok((identity, true))
            }
            Err(e) => Err(bad(path, format!("cannot read key file: {e}"))),
        }
    }

    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let meta =
            fs::metadata(path).map_err(|e| bad(path, format!("cannot read key file: {e}")))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(
                path,
                format!(
                    "key file is readable by group or others (mode {mode:04o}); run `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
        let text = fs::read_to_string(path)
            .map_err(|e| bad(path, format!("cannot read key file: {e}")))?;
        Self::parse(&text).map_err(|reason| bad(path, reason))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut signing = None;
        let mut noise = None;
        let mut nospam = None;
        let mut certificate = None;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected NAME = HEX", number + 1))?;
            let value = hex::decode(value.trim())
                .map_err(|e| format!("line {}: {}: {e}", number + 1, name.trim()))?;
            let slot = match name.trim() {
                "ed25519_secret" => &mut signing,
                "x25519_secret" => &mut noise,
                "nospam" => &mut nospam,
                "certificate" => &mut certificate,
                other => return Err(format!("line {}: unknown entry '{other}'", number + 1)),
            };
            *slot = Some(value);
        }
        let fixed = |value: Option<Vec<u8>>, name: &str, len: usize| -> Result<Vec<u8>, String> {
            let value = value.ok_or_else(|| format!("missing '{name}'"))?;
            if value.len() != len {
                return Err(format!(
                    "'{name}' must be {len} bytes, found {}",
                    value.len()
                ));
            }
            Ok(value)
        };
        let signing_bytes: [u8; 32] = fixed(signing, "ed25519_secret", 32)?.try_into().unwrap();
        let noise_bytes: [u8; 32] = fixed(noise, "x25519_secret", 32)?.try_into().unwrap();
        let nospam: [u8; 4] = fixed(nospam, "nospam", 4)?.try_into().unwrap();
        let stored_cert = fixed(certificate, "certificate", 64)?;
        let identity = Self::from_parts(
            SigningKey::from_bytes(&signing_bytes),
            StaticSecret::from(noise_bytes),
            nospam,
        );
        if identity.certificate[..] != stored_cert[..] {
            return Err("certificate does not match the keys: the file is damaged".into());
        }
        Ok(identity)
    }

    fn render(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\ned25519_secret = {}\nx25519_secret = {}\nnospam = {}\ncertificate = {}\n",
            hex::encode(self.signing.to_bytes()),
            hex::encode(self.noise_secret.to_bytes()),
            hex::encode(self.nospam),
            hex::encode(self.certificate),
        )
    }

    fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| bad(path, format!("cannot create directory: {e}")))?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| bad(path, format!("cannot create key file: {e}")))?;
        file.write_all(self.render().as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| bad(path, format!("cannot write key file: {e}")))
    }
}

fn cert_message(noise_public: &[u8; 32]) -> Vec<u8> {
    [CERT_DOMAIN, noise_public.as_slice()].concat()
}

/// Checks that `identity_key` signed `noise_public` as its Noise static key.
pub fn verify_certificate(
    identity_key: &PublicKey,
    noise_public: &[u8; 32],
    certificate: &[u8; 64],
) -> bool {
    verify_signature(identity_key, &cert_message(noise_public), certificate)
}

pub fn verify_signature(identity_key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&identity_key.0) else {
        return false;
    };
    key.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/toxtun.key");
        let (first, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.id(), second.id());
        assert_eq!(first.noise_public, second.noise_public);
    }

    #[test]
    fn readable_key_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toxtun.key");
        Identity::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load(&path).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("0644"), "{err}");
    }

    #[test]
    fn certificate_binds_noise_key() {
        let identity = Identity::generate();
        assert!(verify_certificate(
            &identity.public_key(),
            &identity.noise_public,
            &identity.certificate
        ));
        let other = Identity::generate();
        assert!(!verify_certificate(
            &other.public_key(),
            &identity.noise_public,
            &identity.certificate
        ));
    }
}
