//! Digesting a file's content as it streams, without holding it whole.

use rcc_proto::digest::ContentHasher;
use rcc_proto::Digest;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The content digest of the file at `path`, read in 1 MiB pieces (for large inputs such as compilers;
/// callers that see the same file often keep their own memo).
pub fn digest_file(path: &Path) -> io::Result<Digest> {
    let mut file = fs::File::open(path)?;
    digest_reader(&mut file)
}

/// The content digest of everything `reader` yields.
pub fn digest_reader(reader: &mut impl Read) -> io::Result<Digest> {
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_digest_is_the_digest_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        assert_eq!(digest_file(&path).unwrap(), Digest::of(&bytes));
    }
}
