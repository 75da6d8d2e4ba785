//! Toolchain packs: a worker decodes and checks packs uploaded by any client holding an `execute` token.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pack) = rcc_pack::Pack::decode(data) {
        let _ = pack.check();
        // What decodes must encode back to something that decodes to the same pack.
        let again = rcc_pack::Pack::decode(&pack.encode()).expect("a decoded pack re-encodes");
        assert_eq!(again.encode(), pack.encode());
    }
});
