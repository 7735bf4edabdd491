//! A stable 64-bit hash over bytes: FNV-1a 64 followed by a MurmurHash3
//! `fmix64` finaliser for avalanche. Its output never changes between Rust
//! releases or builds, so names derived from it are stable across upgrades
//! (unlike `std`'s `DefaultHasher`).

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Plain FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(FNV_OFFSET, bytes)
}

fn fnv1a64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Stable hash of a sequence of byte strings under a domain label. Parts are
/// length-prefixed so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn stable_hash(domain: &str, parts: &[&[u8]]) -> u64 {
    let mut h = fnv1a64_continue(FNV_OFFSET, &(domain.len() as u64).to_le_bytes());
    h = fnv1a64_continue(h, domain.as_bytes());
    for p in parts {
        h = fnv1a64_continue(h, &(p.len() as u64).to_le_bytes());
        h = fnv1a64_continue(h, p);
    }
    fmix64(h)
}

/// Lower-case RFC 4648 base32 alphabet (no padding); safe in interface names.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The low `5 * chars` bits of `h` as `chars` base32 characters
/// (`chars` is capped at 12, i.e. 60 bits).
pub fn base32_chars(h: u64, chars: usize) -> String {
    (0..chars.min(12))
        .map(|i| char::from(BASE32[((h >> (5 * i)) & 31) as usize]))
        .collect()
}

/// `h` as 16 lower-case hex digits.
pub fn hex64(h: u64) -> String {
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_answers() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn stable_hash_is_pinned() {
        // Pinned value: a change here renames every interface on upgrade.
        let h = stable_hash("overlayd-ifname-v1", &[b"b", b"shared-nat"]);
        assert_eq!(hex64(h), "eb89f942cf32ed9a");
        assert_ne!(
            stable_hash("d", &[b"ab", b"c"]),
            stable_hash("d", &[b"a", b"bc"])
        );
        assert_ne!(stable_hash("d1", &[b"x"]), stable_hash("d2", &[b"x"]));
    }

    #[test]
    fn base32_is_lowercase_and_sized() {
        let s = base32_chars(u64::MAX, 12);
        assert_eq!(s, "777777777777");
        assert_eq!(base32_chars(0, 5), "aaaaa");
        assert_eq!(base32_chars(1, 2), "ba");
        assert_eq!(base32_chars(7, 40).len(), 12);
    }
}
