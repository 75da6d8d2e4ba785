//! Make-style depfiles as gcc and clang write them: reading the dependency list of the first rule, and
//! rewriting the target for the invocation a cached depfile is restored for.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// The prerequisites of the depfile's first rule, unescaped (`\ ` → space, `\#` → `#`, `$$` → `$`).
/// `None` when the text has no rule.
pub fn dependencies(text: &[u8]) -> Option<Vec<OsString>> {
    // Find the end of the first target list: the first ':' followed by whitespace or end of line.
    let mut i = 0;
    let colon = loop {
        if i >= text.len() {
            return None;
        }
        match text[i] {
            b'\\' => i += 2,
            b':' if text.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()) => break i,
            _ => i += 1,
        }
    };
    let mut deps = Vec::new();
    let mut cur = Vec::new();
    let mut i = colon + 1;
    let flush = |cur: &mut Vec<u8>, deps: &mut Vec<OsString>| {
        if !cur.is_empty() {
            deps.push(OsString::from_vec(std::mem::take(cur)));
        }
    };
    while i < text.len() {
        match text[i] {
            b'\\' if text.get(i + 1) == Some(&b'\n') => i += 2,
            b'\\' if text.get(i + 1) == Some(&b'\r') && text.get(i + 2) == Some(&b'\n') => i += 3,
            b'\\' if matches!(text.get(i + 1), Some(b' ' | b'#' | b'\\' | b'\t')) => {
                cur.push(text[i + 1]);
                i += 2;
            }
            b'$' if text.get(i + 1) == Some(&b'$') => {
                cur.push(b'$');
                i += 2;
            }
            b'\n' => break,
            b' ' | b'\t' | b'\r' => {
                flush(&mut cur, &mut deps);
                i += 1;
            }
            c => {
                cur.push(c);
                i += 1;
            }
        }
    }
    flush(&mut cur, &mut deps);
    Some(deps)
}

/// Replaces the target text at the start of a depfile. `None` when the depfile does not start with
/// `old_target:` (then it cannot be rewritten safely).
pub fn retarget(text: &[u8], old_target: &[u8], new_target: &[u8]) -> Option<Vec<u8>> {
    if old_target == new_target {
        return Some(text.to_vec());
    }
    let rest = text.strip_prefix(old_target)?;
    if rest.first() != Some(&b':') {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + new_target.len());
    out.extend_from_slice(new_target);
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(text: &str) -> Vec<String> {
        dependencies(text.as_bytes()).unwrap().into_iter().map(|d| d.into_string().unwrap()).collect()
    }

    #[test]
    fn gcc_style_with_continuations_and_phony_targets() {
        let text = "obj/a.o: src/a.c /usr/include/stdio.h \\\n  inc/my\\ file.h inc/x$$y.h\n\ninc/x$$y.h:\n";
        assert_eq!(deps(text), ["src/a.c", "/usr/include/stdio.h", "inc/my file.h", "inc/x$y.h"]);
    }

    #[test]
    fn several_targets_and_no_rule() {
        assert_eq!(deps("a.o a.d: a.c\n"), ["a.c"]);
        assert!(dependencies(b"no rule here").is_none());
    }

    #[test]
    fn retarget_replaces_only_the_leading_target() {
        assert_eq!(retarget(b"a.o: a.c\n", b"a.o", b"b.o").unwrap(), b"b.o: a.c\n");
        assert!(retarget(b"c.o: a.c\n", b"a.o", b"b.o").is_none());
        assert!(retarget(b"a.ox: a.c\n", b"a.o", b"b.o").is_none());
    }
}

#[cfg(test)]
mod proptests {
    use super::{dependencies, retarget};
    use proptest::collection::vec;
    use proptest::num::u8::ANY;
    use proptest::prelude::*;

    /// Depfile-ish text: paths, escapes, continuations and colons in any order.
    fn depfile_text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"a.o: ".to_vec()),
            Just(b" \\\n ".to_vec()),
            Just(b"\\ ".to_vec()),
            Just(b"$$".to_vec()),
            Just(b"\\#".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            "[a-z/._-]{1,12}".prop_map(String::into_bytes),
            vec(ANY, 0..8),
        ];
        vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// No text panics the parser or the retargeting (the fuzz target `depfile` runs the same for longer),
        /// and retargeting keeps the dependencies.
        #[test]
        fn depfiles_never_panic_and_retargeting_keeps_the_inputs(text in depfile_text()) {
            let deps = dependencies(&text);
            if let Some(moved) = retarget(&text, b"a.o", b"dir with space/b.o") {
                if deps.is_some() {
                    prop_assert_eq!(dependencies(&moved), deps);
                }
            }
        }
    }
}
