//! The key file: where a node's identity is kept, created on first run
//! with mode 0600 and refused when others can read it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::identity::{Identity, IdentitySecrets};

const KEY_FILE_HEADER: &str = "# toxtun identity: keep this file secret (mode 0600)";

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

/// Loads the key file, or creates it (mode 0600, parent 0700) when absent.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool), IdentityError> {
    match fs::metadata(path) {
        Ok(_) => load(path).map(|id| (id, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::generate();
            save_new(&identity, path)?;
            Ok((identity, true))
        }
        Err(e) => Err(bad(path, format!("cannot read key file: {e}"))),
    }
}

pub fn load(path: &Path) -> Result<Identity, IdentityError> {
    let meta = fs::metadata(path).map_err(|e| bad(path, format!("cannot read key file: {e}")))?;
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
    let text =
        fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read key file: {e}")))?;
    parse(&text).map_err(|reason| bad(path, reason))
}

fn parse(text: &str) -> Result<Identity, String> {
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
    let identity = Identity::from_secrets(&IdentitySecrets {
        ed25519: signing_bytes,
        x25519: noise_bytes,
        nospam,
    });
    if identity.certificate[..] != stored_cert[..] {
        return Err("certificate does not match the keys: the file is damaged".into());
    }
    Ok(identity)
}

fn render(identity: &Identity) -> String {
    let secrets = identity.secrets();
    format!(
        "{KEY_FILE_HEADER}\ned25519_secret = {}\nx25519_secret = {}\nnospam = {}\ncertificate = {}\n",
        hex::encode(secrets.ed25519),
        hex::encode(secrets.x25519),
        hex::encode(secrets.nospam),
        hex::encode(identity.certificate),
    )
}

/// Gives the identity in `path` a new random nospam, and so a new ID; the
/// keys stay, so friends known by key are not affected. The file is
/// replaced whole (written beside it, then renamed over it).
pub fn renew_nospam(path: &Path) -> Result<Identity, IdentityError> {
    let old = load(path)?;
    let mut secrets = old.secrets();
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secrets.nospam);
    let identity = Identity::from_secrets(&secrets);
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    let staged = std::path::PathBuf::from(name);
    let _ = fs::remove_file(&staged);
    save_new(&identity, &staged)?;
    fs::rename(&staged, path).map_err(|e| bad(path, format!("cannot replace key file: {e}")))?;
    Ok(identity)
}

fn save_new(identity: &Identity, path: &Path) -> Result<(), IdentityError> {
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
    file.write_all(render(identity).as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| bad(path, format!("cannot write key file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/toxtun.key");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.id(), second.id());
        assert_eq!(first.noise_public, second.noise_public);
    }

    #[test]
    fn a_new_nospam_keeps_the_keys_and_changes_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toxtun.key");
        let (first, _) = load_or_create(&path).unwrap();
        let renewed = renew_nospam(&path).unwrap();
        assert_ne!(first.id(), renewed.id());
        assert_eq!(first.public_key(), renewed.public_key());
        assert_eq!(load(&path).unwrap().id(), renewed.id());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn readable_key_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toxtun.key");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("0644"), "{err}");
    }
}
