//! SHA-256 digests and the canonical key encoding.
//!
//! Keys are built by feeding *tagged, length-prefixed* fields into a [`KeyHasher`], so that no two different
//! sequences of fields can produce the same byte stream (`["ab", "c"]` and `["a", "bc"]` hash differently).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        let out = Sha256::digest(bytes);
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        Digest(d)
    }

    /// Lower-case hexadecimal form (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hexadecimal form.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let bytes = hex::decode(s).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Digest(arr))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Incremental SHA-256 over the canonical encoding of a key's fields.
///
/// Each field is written as a one-byte tag, a little-endian `u64` length and the bytes, so the encoding is
/// unambiguous. Callers start with [`KeyHasher::new`], which writes the key-format name and version first.
#[derive(Clone)]
pub struct KeyHasher {
    inner: Sha256,
}

impl KeyHasher {
    /// Starts a key of the given format (`"c-direct"`, `"c-result"`, …) and format version.
    pub fn new(format: &str, version: u32) -> KeyHasher {
        let mut h = KeyHasher { inner: Sha256::new() };
        h.bytes(b'F', format.as_bytes());
        h.u64(b'V', u64::from(version));
        h
    }

    /// Adds a tagged byte string.
    pub fn bytes(&mut self, tag: u8, bytes: &[u8]) -> &mut Self {
        self.inner.update([tag]);
        self.inner.update((bytes.len() as u64).to_le_bytes());
        self.inner.update(bytes);
        self
    }

    /// Adds a tagged integer.
    pub fn u64(&mut self, tag: u8, value: u64) -> &mut Self {
        self.bytes(tag, &value.to_le_bytes())
    }

    /// Adds a tagged digest.
    pub fn digest(&mut self, tag: u8, digest: &Digest) -> &mut Self {
        self.bytes(tag, &digest.0)
    }

    /// Finishes the key.
    pub fn finish(self) -> Digest {
        let out = self.inner.finalize();
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        Digest(d)
    }
}

/// Streaming SHA-256 of plain content (files), without the key encoding.
#[derive(Clone, Default)]
pub struct ContentHasher {
    inner: Sha256,
}

impl ContentHasher {
    /// A new, empty hasher.
    pub fn new() -> ContentHasher {
        ContentHasher::default()
    }
    /// Adds content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }
    /// Finishes the digest.
    pub fn finish(self) -> Digest {
        let out = self.inner.finalize();
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        Digest(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_is_sha256_of_empty() {
        assert_eq!(Digest::of(b"").to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn hex_round_trips() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }

    #[test]
    fn field_boundaries_change_the_key() {
        let mut a = KeyHasher::new("t", 1);
        a.bytes(b'a', b"ab").bytes(b'a', b"c");
        let mut b = KeyHasher::new("t", 1);
        b.bytes(b'a', b"a").bytes(b'a', b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn format_version_changes_the_key() {
        assert_ne!(KeyHasher::new("t", 1).finish(), KeyHasher::new("t", 2).finish());
    }
}
