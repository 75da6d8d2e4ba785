//! Make-style depfiles the compiler writes (and a hostile source tree can shape): the daemon reads the
//! inputs from them and rewrites their target on a hit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rccd::key::depfile::{dependencies, retarget};

fuzz_target!(|data: &[u8]| {
    let _ = dependencies(data);
    if let Some(text) = retarget(data, b"a.o", b"some/other dir/b.o") {
        let _ = dependencies(&text);
    }
});
