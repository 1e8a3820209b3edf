//! Starting one child, clean: its own session (a program) or process group
//! (the main command), an empty signal mask and default dispositions, and
//! no file descriptor but 0, 1, 2 — every fd init holds is close-on-exec
//! (see `keep_inherited_fds_from_children`).
//!
//! The command is resolved here, before the child exists, so that a failure
//! can be told in supervisord's words (`can't find command`, `is a
//! directory`, …). The child is made by glibc's `posix_spawn`, not by fork:
//! it borrows init's memory until exec (clone with CLONE_VM|CLONE_VFORK)
//! instead of copying its page tables, and hands an exec failure back as a
//! return value instead of through a pipe the parent must wait on. That
//! made `init -- /bin/true` ~100 µs faster. Everything the child needs is
//! said through spawn attributes: setsid or setpgid, the terminal's
//! foreground (`addtcsetpgrp_np`), the working directory (`addchdir_np`),
//! an empty signal mask and the default disposition for every signal.
//! Nothing of ours runs in the child.

use alloc::ffi::CString;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{CStr, c_int};
use core::fmt;

use crate::path;
use crate::signals;
use crate::sys::{self, Fd, Pid};

const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub enum SpawnError {
    NotFound(String),
    IsDirectory(String),
    NotExecutable(String),
    NoPermission(String),
    Os { command: String, error: sys::Error },
}

impl SpawnError {
    /// The status a shell gives for this failure: 127 not found, 126 else.
    pub fn shell_status(&self) -> u8 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::Os {
                error: sys::Error::Os(libc::ENOENT),
                ..
            } => 127,
            _ => 126,
        }
    }
}

impl fmt::Display for SpawnError {
    /// supervisord's wording, after `spawnerr: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::NotFound(c) => write!(f, "can't find command '{c}'"),
            SpawnError::IsDirectory(c) => write!(f, "command at '{c}' is a directory"),
            SpawnError::NotExecutable(c) => write!(f, "command at '{c}' is not executable"),
            SpawnError::NoPermission(c) => write!(f, "no permission to run command '{c}'"),
            SpawnError::Os { command, error } => {
                write!(f, "couldn't run command '{command}': {error}")
            }
        }
    }
}

/// A started child.
pub struct Spawned {
    pub pid: Pid,
    /// Non-blocking read ends of the child's stdout and stderr (programs only).
    pub stdout: Option<Fd>,
    pub stderr: Option<Fd>,
}

/// How the child is set apart from init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A supervised program: new session, stdin /dev/null, output piped.
    Program,
    /// The main command: new process group, init's stdio, and the terminal's
    /// foreground when stdin is one.
    Main,
}

pub fn spawn<A: AsRef<CStr>>(
    argv: &[A],
    cwd: Option<&CStr>,
    isolation: Isolation,
) -> Result<Spawned, SpawnError> {
    let Some(arg0) = argv.first().map(AsRef::as_ref) else {
        return Err(SpawnError::NotFound(String::new()));
    };
    let path = resolve(arg0.to_bytes(), cwd.map(CStr::to_bytes))?;
    // The command's name is only written out when something failed.
    let fail = |error: sys::Error| SpawnError::Os {
        command: path::display(arg0.to_bytes()).into_owned(),
        error,
    };
    let mut arg_ptrs: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|a| a.as_ref().as_ptr().cast_mut())
        .collect();
    arg_ptrs.push(core::ptr::null_mut());

    let mut actions = FileActions::new().map_err(fail)?;
    let mut attr = Attributes::new().map_err(fail)?;
    // Kept open until the child has them as 0, 1 and 2.
    let mut child_ends: Vec<Fd> = Vec::new();
    let mut read_ends: Vec<Fd> = Vec::new();
    let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
    match isolation {
        Isolation::Program => {
            flags |= c_int::from(libc::POSIX_SPAWN_SETSID);
            let input = empty_input().map_err(fail)?;
            actions.dup2(&input, 0).map_err(fail)?;
            child_ends.push(input);
            for target in [1, 2] {
                let (read, write) = sys::pipe().map_err(fail)?;
                actions.dup2(&write, target).map_err(fail)?;
                child_ends.push(write);
                read_ends.push(read);
            }
        }
        Isolation::Main => {
            flags |= libc::POSIX_SPAWN_SETPGROUP;
            // Take the terminal for the new group so that Ctrl-C and job
            // control reach it. (On anything but a terminal this action
            // would fail the spawn, so it is only asked for on one.)
            // SAFETY: isatty only inspects fd 0.
            if unsafe { libc::isatty(0) } == 1 {
                actions.tcsetpgrp(0).map_err(fail)?;
            }
        }
    }
    if let Some(dir) = cwd {
        actions.chdir(dir).map_err(fail)?;
    }
    attr.set(flags).map_err(fail)?;

    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer is valid for the call: the path and argv are
    // NUL-terminated and outlive it, argv ends with a null pointer, the
    // actions and attributes are initialised, and `environ` is init's own
    // environment, which nothing changes.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            actions.as_ptr(),
            attr.as_ptr(),
            arg_ptrs.as_ptr(),
            environ,
        )
    };
    drop(child_ends);
    if rc != 0 {
        return Err(fail(sys::Error::Os(rc)));
    }
    for fd in &read_ends {
        // Without O_NONBLOCK one quiet program could stall the loop.
        let _ = sys::set_nonblocking(fd.raw());
    }
    let mut read_ends = read_ends.into_iter();
    Ok(Spawned {
        pid: Pid::from_raw(pid),
        stdout: read_ends.next(),
        stderr: read_ends.next(),
    })
}

unsafe extern "C" {
    static environ: *const *mut libc::c_char;
}

fn check_rc(rc: c_int) -> sys::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(sys::Error::Os(e)),
    }
}

/// What the child does with its fds before exec, destroyed on drop.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> sys::Result<FileActions> {
        // SAFETY: the struct is plain data; init fills it in.
        let mut actions = FileActions(unsafe { core::mem::zeroed() });
        // SAFETY: a valid pointer to our own struct.
        check_rc(unsafe { libc::posix_spawn_file_actions_init(&mut actions.0) })?;
        Ok(actions)
    }

    fn dup2(&mut self, fd: &Fd, target: c_int) -> sys::Result<()> {
        // SAFETY: initialised actions; dup2 clears close-on-exec on target.
        check_rc(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, fd.raw(), target) })
    }

    fn tcsetpgrp(&mut self, fd: c_int) -> sys::Result<()> {
        // SAFETY: initialised actions.
        check_rc(unsafe { libc::posix_spawn_file_actions_addtcsetpgrp_np(&mut self.0, fd) })
    }

    fn chdir(&mut self, dir: &CStr) -> sys::Result<()> {
        // SAFETY: initialised actions; glibc copies the path.
        check_rc(unsafe { libc::posix_spawn_file_actions_addchdir_np(&mut self.0, dir.as_ptr()) })
    }

    fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        &self.0
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// Session, group, mask and dispositions of the child, destroyed on drop.
struct Attributes(libc::posix_spawnattr_t);

impl Attributes {
    fn new() -> sys::Result<Attributes> {
        // SAFETY: the struct is plain data; init fills it in.
        let mut attr = Attributes(unsafe { core::mem::zeroed() });
        // SAFETY: a valid pointer to our own struct.
        check_rc(unsafe { libc::posix_spawnattr_init(&mut attr.0) })?;
        Ok(attr)
    }

    /// `flags`, an empty mask, process group 0 (the child's own pid, used
    /// with SETPGROUP), and the default disposition for every signal.
    fn set(&mut self, flags: c_int) -> sys::Result<()> {
        // SAFETY: a plain sigset operation on a local, then setters on an
        // initialised attribute object, which copies what it is given.
        unsafe {
            let mut empty: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut empty);
            check_rc(libc::posix_spawnattr_setsigmask(&mut self.0, &empty))?;
            check_rc(libc::posix_spawnattr_setsigdefault(
                &mut self.0,
                &signals::every_signal(),
            ))?;
            check_rc(libc::posix_spawnattr_setpgroup(&mut self.0, 0))?;
            let flags = libc::c_short::try_from(flags).map_err(|_| sys::Error::Os(libc::EINVAL))?;
            check_rc(libc::posix_spawnattr_setflags(&mut self.0, flags))
        }
    }

    fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        &self.0
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Standard input for a program: /dev/null, or where there is none (a
/// bare root with no /dev) a pipe with no writer, which reads the same:
/// end of file at once.
fn empty_input() -> sys::Result<Fd> {
    if let Ok(null) = sys::open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC, 0) {
        return Ok(null);
    }
    let (read, _write) = sys::pipe()?;
    Ok(read)
}

/// Marks every fd init inherited above 2 close-on-exec, so that none
/// reaches a child. (Closing them could break a parent's expectations of
/// init; keeping them from children is what matters.)
pub fn keep_inherited_fds_from_children() {
    // SAFETY: close_range only changes flags of fds we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: walk the table.
    let Ok(names) = sys::list_dir(c"/proc/self/fd") else {
        return;
    };
    let fds: Vec<c_int> = names
        .iter()
        .filter_map(|n| core::str::from_utf8(n).ok()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on an fd number; a stale one fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Finds what `command` names, as execvp would, but telling *why* it cannot
/// be run. A name with a `/` is a path (relative to `cwd`); a bare name is
/// looked up in `$PATH`, where the first executable file wins and, failing
/// that, the first file that exists is reported.
pub fn resolve(command: &[u8], cwd: Option<&[u8]>) -> Result<CString, SpawnError> {
    let text = || path::display(command).into_owned();
    if command.is_empty() {
        return Err(SpawnError::NotFound(text()));
    }
    if command.contains(&b'/') {
        let path = match cwd {
            Some(dir) => sys::cstring(&path::join(dir, command)),
            None => sys::cstring(command),
        };
        let path = path.map_err(|_| SpawnError::NotFound(text()))?;
        return check(&path, text).map(|()| path);
    }
    let search = sys::getenv(c"PATH").unwrap_or(DEFAULT_PATH);
    let mut first_existing: Option<CString> = None;
    for dir in search.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let Ok(candidate) = sys::cstring(&path::join(dir, command)) else {
            continue;
        };
        if !sys::exists(&candidate) {
            continue;
        }
        if check(&candidate, text).is_ok() {
            return Ok(candidate);
        }
        first_existing.get_or_insert(candidate);
    }
    match first_existing {
        Some(path) => check(&path, text).map(|()| path),
        None => Err(SpawnError::NotFound(text())),
    }
}

/// Why `path` cannot be run, named by `text()` (made only on failure).
fn check(path: &CStr, text: impl Fn() -> String) -> Result<(), SpawnError> {
    let meta = match sys::stat(path) {
        Ok(meta) => meta,
        Err(sys::Error::Os(libc::EACCES)) => {
            return Err(SpawnError::NoPermission(text()));
        }
        Err(_) => return Err(SpawnError::NotFound(text())),
    };
    if meta.is_dir() {
        return Err(SpawnError::IsDirectory(text()));
    }
    if meta.mode & 0o111 == 0 {
        return Err(SpawnError::NotExecutable(text()));
    }
    if !sys::access(path, libc::X_OK) {
        return Err(SpawnError::NoPermission(text()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_bare_names_in_path() {
        let path = resolve(b"sh", None).unwrap();
        assert!(path.to_bytes().starts_with(b"/") && path.to_bytes().ends_with(b"/sh"));
    }

    #[test]
    fn explains_why_a_command_cannot_run() {
        let e = resolve(b"no-such-command-here", None).unwrap_err();
        assert_eq!(e.to_string(), "can't find command 'no-such-command-here'");
        assert_eq!(e.shell_status(), 127);
        let e = resolve(b"/tmp", None).unwrap_err();
        assert_eq!(e.to_string(), "command at '/tmp' is a directory");
        assert_eq!(e.shell_status(), 126);
        let file = std::env::temp_dir().join(format!("cocalc-init-noexec-{}", std::process::id()));
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let e = resolve(file.to_str().unwrap().as_bytes(), None).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            e.to_string(),
            format!("command at '{}' is not executable", file.display())
        );
        let e = resolve(b"./nope", Some(b"/")).unwrap_err();
        assert_eq!(e.to_string(), "can't find command './nope'");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        assert_eq!(
            resolve(b"bin/sh", Some(b"/usr")).unwrap().as_c_str(),
            c"/usr/bin/sh"
        );
    }
}
