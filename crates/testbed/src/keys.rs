//! Throwaway Ed25519 key pairs.

use std::fmt;

use base64::Engine as _;
use russh::keys::{Algorithm, PrivateKey, PublicKey, ssh_key::LineEnding};

/// An Ed25519 key pair made for one test.
#[derive(Clone)]
pub struct KeyPair {
    private: PrivateKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.public_openssh())
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> Self {
        let private = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap_or_else(|e| panic!("test bed: ed25519 key generation failed: {e}"));
        Self { private }
    }

    /// The private key.
    pub fn private(&self) -> &PrivateKey {
        &self.private
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        self.private.public_key()
    }

    /// The public key as one OpenSSH line without comment (`ssh-ed25519 AAAA…`).
    pub fn public_openssh(&self) -> String {
        self.public()
            .to_openssh()
            .unwrap_or_else(|e| panic!("test bed: encoding a public key: {e}"))
    }

    /// The private key in OpenSSH's PEM-like format.
    pub fn private_openssh(&self) -> String {
        self.private
            .to_openssh(LineEnding::LF)
            .unwrap_or_else(|e| panic!("test bed: encoding a private key: {e}"))
            .to_string()
    }

    /// Base64 of [`Self::private_openssh`], as the sshd test image takes its host key.
    pub fn private_openssh_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.private_openssh())
    }

    /// `SHA256:…` fingerprint of the public key.
    pub fn fingerprint(&self) -> String {
        self.public()
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string()
    }
}
