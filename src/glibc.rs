//! glibc's own symbols that neither nix nor the libc crate wrap, each
//! behind a safe function: init's environment list, and the switch that
//! pins user and group lookups to `/etc/passwd` and `/etc/group`. A leaf:
//! it imports nothing of ours.

use std::ffi::{CStr, c_char, c_int};

unsafe extern "C" {
    /// The C library's environment list: init's own, which it never changes.
    static environ: *const *const c_char;
    /// glibc's own (declared in <nss.h>), in both the shared and the static
    /// library; the libc crate does not declare it.
    fn __nss_configure_lookup(database: *const c_char, services: *const c_char) -> c_int;
}

/// Pins glibc's `database` (passwd, group…) to the `files` module, as if
/// nsswitch.conf said so; see `user.rs` for why. It fails only for a
/// database glibc does not know or out of memory: lookups then read what
/// nsswitch.conf says, as without it.
pub fn nss_files_only(database: &CStr) {
    // SAFETY: both arguments are NUL-terminated strings that outlive the
    // call; glibc copies what it keeps.
    let _ = unsafe { __nss_configure_lookup(database.as_ptr(), c"files".as_ptr()) };
}

/// init's environment as the child gets it, each entry borrowed from the
/// C library's list (std's `vars_os` would copy every name and value).
pub fn environment() -> Vec<&'static CStr> {
    let mut entries = Vec::new();
    // SAFETY: `environ` is a null-terminated array of NUL-terminated
    // strings that live as long as the process, since nothing in init sets
    // or unsets a variable (std's `set_var` is never called).
    unsafe {
        let mut at = environ;
        while !at.is_null() && !(*at).is_null() {
            entries.push(CStr::from_ptr(*at));
            at = at.add(1);
        }
    }
    entries
}
