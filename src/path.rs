//! Paths as bytes, the way the kernel takes them: the few operations init
//! needs (is it absolute, its folder, its last part, join, show it).

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

pub fn is_absolute(path: &[u8]) -> bool {
    path.first() == Some(&b'/')
}

/// `base/rest`, or `rest` alone when it is absolute.
pub fn join(base: &[u8], rest: &[u8]) -> Vec<u8> {
    if is_absolute(rest) || base.is_empty() {
        return rest.to_vec();
    }
    let mut out = Vec::with_capacity(base.len() + 1 + rest.len());
    out.extend_from_slice(base);
    if !base.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rest);
    out
}

/// Trailing slashes do not count (`/a/b/` is `/a/b`), but the root stays.
fn trimmed(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 1 && path.get(end - 1) == Some(&b'/') {
        end -= 1;
    }
    path.get(..end).unwrap_or(path)
}

/// The folder holding `path`: `/a/b` → `/a`, `/a` → `/`, `b` → ``,
/// `/` → none.
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    let path = trimmed(path);
    if path == b"/" || path.is_empty() {
        return None;
    }
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => Some(b"/"),
        Some(at) => path.get(..at),
        None => Some(b""),
    }
}

/// The last part: `/a/b.sh` → `b.sh`; none for `/` or a path ending in `..`.
pub fn file_name(path: &[u8]) -> Option<&[u8]> {
    let path = trimmed(path);
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(at) => path.get(at + 1..)?,
        None => path,
    };
    match name {
        b"" | b"." | b".." => None,
        name => Some(name),
    }
}

/// For messages: the bytes as text, any that are not UTF-8 replaced.
pub fn display(path: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_names_and_joins() {
        assert_eq!(parent(b"/a/b"), Some(&b"/a"[..]));
        assert_eq!(parent(b"/a/b/"), Some(&b"/a"[..]));
        assert_eq!(parent(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent(b"b"), Some(&b""[..]));
        assert_eq!(parent(b"/"), None);
        assert_eq!(
            file_name(b"/h/project_init.sh"),
            Some(&b"project_init.sh"[..])
        );
        assert_eq!(file_name(b"/h/x/"), Some(&b"x"[..]));
        assert_eq!(file_name(b"/"), None);
        assert_eq!(file_name(b"/a/.."), None);
        assert_eq!(join(b"/work", b"s.sh"), b"/work/s.sh");
        assert_eq!(join(b"/", b"s.sh"), b"/s.sh");
        assert_eq!(join(b"/work", b"/t/u.sh"), b"/t/u.sh");
        assert!(is_absolute(b"/x") && !is_absolute(b"x"));
        assert_eq!(display(b"a\xffb"), "a\u{fffd}b");
    }
}
