//! A node's keys: an ed25519 identity key (named by the ID), a separate
//! x25519 key for Noise, and the certificate that binds the second to the
//! first. Where they are kept is not the core's business (`key_file.rs`).

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rand::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;

use crate::id::{PublicKey, ToxId, NOSPAM_LEN};

const CERT_DOMAIN: &[u8] = b"toxtun noise static key v1";

pub struct Identity {
    signing: SigningKey,
    noise_secret: StaticSecret,
    pub noise_public: [u8; 32],
    pub nospam: [u8; NOSPAM_LEN],
    pub certificate: [u8; 64],
}

/// The secret parts, as a key file stores them.
pub struct IdentitySecrets {
    pub ed25519: [u8; 32],
    pub x25519: [u8; 32],
    pub nospam: [u8; NOSPAM_LEN],
}

impl Identity {
    /// New keys from the operating system's entropy.
    pub fn generate() -> Self {
        Self::generate_from(&mut rand::rngs::OsRng)
    }

    /// New keys from `rng`: seeded in tests, so a run can be replayed.
    pub fn generate_from<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let signing = SigningKey::generate(rng);
        let noise_secret = StaticSecret::random_from_rng(&mut *rng);
        let mut nospam = [0u8; NOSPAM_LEN];
        rng.fill_bytes(&mut nospam);
        Self::build(signing, noise_secret, nospam)
    }

    pub fn from_secrets(secrets: &IdentitySecrets) -> Self {
        Self::build(
            SigningKey::from_bytes(&secrets.ed25519),
            StaticSecret::from(secrets.x25519),
            secrets.nospam,
        )
    }

    fn build(signing: SigningKey, noise_secret: StaticSecret, nospam: [u8; NOSPAM_LEN]) -> Self {
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

    pub fn secrets(&self) -> IdentitySecrets {
        IdentitySecrets {
            ed25519: self.signing.to_bytes(),
            x25519: self.noise_secret.to_bytes(),
            nospam: self.nospam,
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
    use rand::SeedableRng;

    use super::*;

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

    #[test]
    fn the_same_seed_gives_the_same_keys() {
        let mut a = rand::rngs::StdRng::seed_from_u64(3);
        let mut b = rand::rngs::StdRng::seed_from_u64(3);
        assert_eq!(
            Identity::generate_from(&mut a).id(),
            Identity::generate_from(&mut b).id()
        );
        let restored = Identity::from_secrets(&Identity::generate_from(&mut a).secrets());
        assert_eq!(
            restored.id(),
            Identity::generate_from(&mut b).id(),
            "secrets round trip"
        );
    }
}
