//! WireGuard (x25519) keypairs and the node identity key file (SPEC §3):
//! created once, persisted 0600, reused on every start, changed only by an
//! explicit rotate. Private keys never appear in `Debug` output or logs.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::durable::{self, FILE_MODE};
use crate::error::{Result, StateError};
use crate::paths::DataDir;

/// Length of a WireGuard key in bytes.
pub const KEY_LEN: usize = 32;

/// Decode a standard-base64 WireGuard key (44 characters) into its bytes.
pub fn decode_key(s: &str) -> Result<[u8; KEY_LEN]> {
    let mut raw = STANDARD
        .decode(s.trim())
        .map_err(|e| StateError::InvalidKey {
            reason: format!("not base64 ({e})"),
        })?;
    let out = <[u8; KEY_LEN]>::try_from(raw.as_slice()).map_err(|_| StateError::InvalidKey {
        reason: format!("{} bytes instead of {KEY_LEN}", raw.len()),
    });
    raw.zeroize();
    out
}

/// Encode key bytes as standard base64 (the form `wg` uses).
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(key)
}

/// An x25519 keypair. The private half is wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Private key bytes (clamping is applied by x25519 at use).
    pub private: [u8; KEY_LEN],
    /// Public key bytes derived from `private`.
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A fresh keypair from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        Self::from_secret(&secret)
    }

    /// The keypair of a known private key.
    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        Self::from_secret(&StaticSecret::from(private))
    }

    /// The keypair of a base64 private key.
    pub fn from_private_base64(s: &str) -> Result<Self> {
        let mut bytes = decode_key(s)?;
        let kp = Self::from_private(bytes);
        bytes.zeroize();
        Ok(kp)
    }

    fn from_secret(secret: &StaticSecret) -> Self {
        KeyPair {
            private: secret.to_bytes(),
            public: PublicKey::from(secret).to_bytes(),
        }
    }

    /// The private key as base64. Secret: never log it.
    pub fn private_base64(&self) -> String {
        encode_key(&self.private)
    }

    /// Alias of [`KeyPair::private_base64`] (the form written to key files).
    pub fn to_base64(&self) -> String {
        self.private_base64()
    }

    /// The public key as base64.
    pub fn public_base64(&self) -> String {
        encode_key(&self.public)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("private", &"<redacted>")
            .field("public", &self.public_base64())
            .finish()
    }
}

impl Drop for KeyPair {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

/// The node identity key file `{data_dir}/node.key`: the private key as
/// base64 plus a newline (the format of `wg genkey`).
#[derive(Debug, Clone, Copy)]
pub struct NodeKeyFile;

impl NodeKeyFile {
    /// Path of the key file in `data_dir`.
    pub fn path(data_dir: impl AsRef<Path>) -> PathBuf {
        DataDir::new(data_dir).node_key_path()
    }

    /// Read the node key, creating and persisting one on first use. A key
    /// file readable by others is tightened to 0600; an unreadable one is an
    /// error (the node identity is never silently replaced).
    pub fn load_or_create(data_dir: impl AsRef<Path>) -> Result<KeyPair> {
        let path = Self::path(&data_dir);
        durable::remove_stale_temps(&path)?;
        if let Some(kp) = Self::load(&path)? {
            return Ok(kp);
        }
        let kp = KeyPair::generate();
        Self::store(data_dir.as_ref(), &kp)?;
        tracing::info!(path = %path.display(), public_key = %kp.public_base64(), "created node key");
        Ok(kp)
    }

    /// Replace the node key with a fresh one (durably) and return it.
    pub fn rotate(data_dir: impl AsRef<Path>) -> Result<KeyPair> {
        let kp = KeyPair::generate();
        Self::store(data_dir.as_ref(), &kp)?;
        tracing::warn!(public_key = %kp.public_base64(), "node key rotated; peers must learn the new public key");
        Ok(kp)
    }

    fn load(path: &Path) -> Result<Option<KeyPair>> {
        let Some(mut file) = durable::open_existing(path)? else {
            return Ok(None);
        };
        durable::tighten_mode(&file, path)?;
        let mut text = String::new();
        let read = file.by_ref().take(1024).read_to_string(&mut text);
        let result = match read {
            Ok(_) => KeyPair::from_private_base64(&text).map_err(|e| StateError::CorruptKeyFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) => Err(StateError::io("read", path, e)),
        };
        text.zeroize();
        result.map(Some)
    }

    fn store(data_dir: &Path, kp: &KeyPair) -> Result<()> {
        let dir = DataDir::new(data_dir);
        dir.ensure()?;
        let mut text = kp.private_base64();
        text.push('\n');
        let r = durable::write_file_atomic(&dir.node_key_path(), text.as_bytes(), FILE_MODE);
        text.zeroize();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base64_round_trip_and_debug_redacts() {
        let kp = KeyPair::generate();
        let again = KeyPair::from_private_base64(&kp.private_base64()).unwrap();
        assert_eq!(kp, again);
        assert_eq!(decode_key(&kp.public_base64()).unwrap(), kp.public);
        let dbg = format!("{kp:?}");
        assert!(!dbg.contains(&kp.private_base64()));
        assert!(dbg.contains("redacted"));
        assert!(decode_key("AAAA").is_err());
        assert!(decode_key("not base64!").is_err());
    }

    #[test]
    fn matches_wireguard_test_vector() {
        // RFC 7748 §6.1: Alice's private and public keys.
        let private: [u8; 32] = [
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2,
            0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5,
            0x1d, 0xb9, 0x2c, 0x2a,
        ];
        let kp = KeyPair::from_private(private);
        assert_eq!(
            kp.public[..4],
            [0x85, 0x20, 0xf0, 0x09],
            "public key derivation"
        );
    }

    #[test]
    fn node_key_is_persisted_0600_and_reused_until_rotated() {
        let tmp = tempfile::tempdir().unwrap();
        let a = NodeKeyFile::load_or_create(tmp.path()).unwrap();
        let path = NodeKeyFile::path(tmp.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let b = NodeKeyFile::load_or_create(tmp.path()).unwrap();
        assert_eq!(a, b);
        let c = NodeKeyFile::rotate(tmp.path()).unwrap();
        assert_ne!(a, c);
        assert_eq!(NodeKeyFile::load_or_create(tmp.path()).unwrap(), c);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(NodeKeyFile::load_or_create(tmp.path()).unwrap(), c);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);

        std::fs::write(&path, b"garbage\n").unwrap();
        let e = NodeKeyFile::load_or_create(tmp.path()).unwrap_err();
        assert!(matches!(e, StateError::CorruptKeyFile { .. }), "{e}");
        assert!(!e.to_string().contains("garbage"));
    }
}
