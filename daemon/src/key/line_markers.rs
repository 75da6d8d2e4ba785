//! The files a preprocessed unit entered, from its line markers (`# 12 "inc/a.h" 1 3`): how a depfile that
//! leaves out system headers (`-MMD`) is completed into the full list of files the preprocessor read.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Every file the preprocessor entered (markers carrying flag 1), in order of first entry, as spelled in
/// the markers; pseudo-files such as `<built-in>` and `<command-line>` are left out.
pub fn entered_files(preprocessed: &[u8]) -> Vec<OsString> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in preprocessed.split(|&b| b == b'\n') {
        let Some((name, flags)) = marker(line) else { continue };
        let entered = flags.split(|&b| b == b' ').any(|f| f == b"1");
        let pseudo = name.first() == Some(&b'<') && name.last() == Some(&b'>');
        if entered && !pseudo && seen.insert(name.clone()) {
            out.push(OsString::from_vec(name));
        }
    }
    out
}

/// A line marker's file name (unescaped) and the flags after it; `None` for any other line.
fn marker(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let rest = line.strip_prefix(b"# ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest.get(digits..)?.strip_prefix(b" \"").filter(|_| digits > 0)?;
    let mut name = Vec::new();
    let mut bytes = rest.iter().enumerate();
    while let Some((at, &b)) = bytes.next() {
        match b {
            b'\\' => name.push(*bytes.next()?.1),
            b'"' => return Some((name, rest[at + 1..].trim_ascii())),
            _ => name.push(b),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entered_files_come_from_flag_one_markers() {
        let text =
            b"# 0 \"a.c\"\n# 0 \"<built-in>\"\n# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n# 0 \"<command-line>\" 2\n\
# 1 \"a.c\"\n# 1 \"inc/my \\\"q\\\".h\" 1\nint x;\n# 2 \"a.c\" 2\n# 1 \"sys/s.h\" 1 3\n# 1 \"inc/my \\\"q\\\".h\" 1\n\
#line 7 \"renamed.c\"\n";
        let files: Vec<String> = entered_files(text).into_iter().map(|f| f.into_string().unwrap()).collect();
        assert_eq!(files, ["/usr/include/stdc-predef.h", "inc/my \"q\".h", "sys/s.h"]);
    }

    #[test]
    fn other_lines_are_not_markers() {
        assert!(marker(b"#pragma once").is_none());
        assert!(marker(b"# \"x.h\" 1").is_none());
        assert!(marker(b"# 3 \"unterminated").is_none());
        assert_eq!(marker(b"# 3 \"x.h\" 1 3 4").unwrap(), (b"x.h".to_vec(), &b"1 3 4"[..]));
    }
}
