//! WireGuard key helpers: base64 (wg(8) and protocol form), hex (UAPI form),
//! key generation and public-key derivation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::{Result, WgError};

/// Length of every WireGuard key (private, public, preshared).
pub const KEY_LEN: usize = 32;

/// A 32-byte WireGuard key.
pub type KeyBytes = [u8; KEY_LEN];

/// Parses a public key from standard (padded) base64, as printed by `wg pubkey`.
pub fn parse_public_key(s: &str) -> Result<KeyBytes> {
    parse_base64(s, "public")
}

/// Parses a private key from standard (padded) base64, as printed by `wg genkey`.
pub fn parse_private_key(s: &str) -> Result<KeyBytes> {
    parse_base64(s, "private")
}

/// Formats a key as standard base64 (44 characters, padded).
pub fn format_key(key: &KeyBytes) -> String {
    STANDARD.encode(key)
}

/// Derives the public key belonging to `private_key` (X25519 base-point multiplication).
pub fn public_key(private_key: &KeyBytes) -> KeyBytes {
    let secret = x25519_dalek::StaticSecret::from(*private_key);
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

/// Generates a fresh clamped private key from the OS random source.
pub fn generate_private_key() -> Result<KeyBytes> {
    let mut key = [0u8; KEY_LEN];
    let mut filled = 0;
    while filled < KEY_LEN {
        // SAFETY: the pointer/length pair describes the unfilled tail of `key`.
        let n = unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), KEY_LEN - filled, 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(WgError::io("getrandom", err));
        }
        filled += n as usize;
    }
    key[0] &= 248;
    key[31] &= 127;
    key[31] |= 64;
    Ok(key)
}

fn parse_base64(s: &str, what: &'static str) -> Result<KeyBytes> {
    let s = s.trim();
    let bytes = STANDARD
        .decode(s)
        .map_err(|_| WgError::InvalidKey { what })?;
    bytes.try_into().map_err(|_| WgError::InvalidKey { what })
}

/// Formats a key as lowercase hex, the UAPI wire form.
pub(crate) fn to_hex(key: &KeyBytes) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(KEY_LEN * 2);
    for b in key {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Parses a 64-digit hex key (UAPI wire form).
pub(crate) fn from_hex(s: &str, what: &'static str) -> Result<KeyBytes> {
    let s = s.as_bytes();
    if s.len() != KEY_LEN * 2 {
        return Err(WgError::InvalidKey { what });
    }
    let nibble = |c: u8| -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(WgError::InvalidKey { what }),
        }
    };
    let mut key = [0u8; KEY_LEN];
    for (i, out) in key.iter_mut().enumerate() {
        *out = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base64_round_trip_and_errors() {
        let key = [7u8; 32];
        let s = format_key(&key);
        assert_eq!(s.len(), 44);
        assert_eq!(parse_public_key(&s).unwrap(), key);
        assert_eq!(parse_public_key(&format!("  {s}\n")).unwrap(), key);
        let err = parse_public_key("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "public key must be 32 bytes of standard base64"
        );
        // 31 bytes of valid base64.
        let short = STANDARD.encode([1u8; 31]);
        assert!(parse_private_key(&short)
            .unwrap_err()
            .to_string()
            .starts_with("private key"));
        // URL-safe alphabet is rejected.
        let url = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
        assert!(parse_public_key(&url).is_err());
    }

    #[test]
    fn known_public_key_vector() {
        // RFC 7748 section 6.1 (Alice).
        let private = from_hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            "private",
        )
        .unwrap();
        assert_eq!(
            to_hex(&public_key(&private)),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = generate_private_key().unwrap();
        let b = generate_private_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a[0] & 7, 0);
        assert_eq!(a[31] & 0xc0, 0x40);
    }

    proptest! {
        #[test]
        fn hex_and_base64_round_trip(key in proptest::array::uniform32(any::<u8>())) {
            prop_assert_eq!(from_hex(&to_hex(&key), "public").unwrap(), key);
            prop_assert_eq!(parse_public_key(&format_key(&key)).unwrap(), key);
        }
    }
}
