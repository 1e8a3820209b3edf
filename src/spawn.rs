//! Starting one child, clean: its own session (a program) or process group
//! (the main command), an empty signal mask and default dispositions, and
//! no file descriptor but 0, 1, 2 — every fd init holds is close-on-exec
//! (see `main::keep_inherited_fds_from_children`).
//!
//! The command is resolved here, before fork, so that a failure can be told
//! in supervisord's words (`can't find command`, `is a directory`, …).
//! std's `Command` does the fork/exec; its `Child` is used only for the pid
//! and the pipes, never waited on: the reaper owns `waitpid`.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::unistd::Pid;

use crate::signals;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub enum SpawnError {
    NotFound(String),
    IsDirectory(String),
    NotExecutable(String),
    NoPermission(String),
    Os {
        command: String,
        error: std::io::Error,
    },
}

impl SpawnError {
    /// The status a shell gives for this failure: 127 not found, 126 else.
    pub fn shell_status(&self) -> u8 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::Os { error, .. } if error.raw_os_error() == Some(libc::ENOENT) => 127,
            _ => 126,
        }
    }
}

impl std::fmt::Display for SpawnError {
    /// supervisord's wording, after `spawnerr: `.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
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

pub fn spawn(
    argv: &[OsString],
    cwd: Option<&Path>,
    isolation: Isolation,
) -> Result<Spawned, SpawnError> {
    let Some((arg0, args)) = argv.split_first() else {
        return Err(SpawnError::NotFound(String::new()));
    };
    let path = resolve(arg0, cwd)?;
    let mut command = Command::new(&path);
    command.arg0(arg0).args(args);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    match isolation {
        Isolation::Program => {
            command
                .stdin(empty_input())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // SAFETY: the closure makes only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    signals::reset_in_child()
                });
            }
        }
        Isolation::Main => {
            // SAFETY: the closure makes only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    if libc::setpgid(0, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // Take the terminal for the new group so that Ctrl-C and
                    // job control reach it. SIGTTOU is still ignored here (as
                    // in init), so a background group may do this.
                    if libc::isatty(0) == 1 {
                        libc::tcsetpgrp(0, libc::getpid());
                    }
                    signals::reset_in_child()
                });
            }
        }
    }
    let command_text = arg0.to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|error| SpawnError::Os {
        command: command_text,
        error,
    })?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    for fd in stdout.iter().chain(stderr.iter()) {
        // Without O_NONBLOCK one quiet program could stall the loop.
        let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    }
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Standard input for a program: /dev/null, or where there is none (a
/// bare root with no /dev) a pipe with no writer, which reads the same:
/// end of file at once.
fn empty_input() -> Stdio {
    if let Ok(null) = std::fs::File::open("/dev/null") {
        return Stdio::from(null);
    }
    match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok((read, _write)) => Stdio::from(read),
        Err(_) => Stdio::null(),
    }
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
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
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
pub fn resolve(command: &OsStr, cwd: Option<&Path>) -> Result<PathBuf, SpawnError> {
    let text = command.to_string_lossy().into_owned();
    if command.is_empty() {
        return Err(SpawnError::NotFound(text));
    }
    if command.as_bytes().contains(&b'/') {
        let path = match cwd {
            Some(dir) => dir.join(command),
            None => PathBuf::from(command),
        };
        return check(&path, &text).map(|()| path);
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut first_existing: Option<PathBuf> = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(command);
        if candidate.metadata().is_err() {
            continue;
        }
        if check(&candidate, &text).is_ok() {
            return Ok(candidate);
        }
        first_existing.get_or_insert(candidate);
    }
    match first_existing {
        Some(path) => check(&path, &text).map(|()| path),
        None => Err(SpawnError::NotFound(text)),
    }
}

fn check(path: &Path, text: &str) -> Result<(), SpawnError> {
    let meta = match path.metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(SpawnError::NoPermission(text.to_string()));
        }
        Err(_) => return Err(SpawnError::NotFound(text.to_string())),
    };
    if meta.is_dir() {
        return Err(SpawnError::IsDirectory(text.to_string()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(SpawnError::NotExecutable(text.to_string()));
    }
    if nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(SpawnError::NoPermission(text.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_bare_names_in_path() {
        let path = resolve(OsStr::new("sh"), None).unwrap();
        assert!(path.is_absolute() && path.ends_with("sh"));
    }

    #[test]
    fn explains_why_a_command_cannot_run() {
        let e = resolve(OsStr::new("no-such-command-here"), None).unwrap_err();
        assert_eq!(e.to_string(), "can't find command 'no-such-command-here'");
        assert_eq!(e.shell_status(), 127);
        let e = resolve(OsStr::new("/tmp"), None).unwrap_err();
        assert_eq!(e.to_string(), "command at '/tmp' is a directory");
        assert_eq!(e.shell_status(), 126);
        let file = std::env::temp_dir().join(format!("cocalc-init-noexec-{}", std::process::id()));
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve(file.as_os_str(), None).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            e.to_string(),
            format!("command at '{}' is not executable", file.display())
        );
        let e = resolve(OsStr::new("./nope"), Some(Path::new("/"))).unwrap_err();
        assert_eq!(e.to_string(), "can't find command './nope'");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        assert_eq!(
            resolve(OsStr::new("bin/sh"), Some(Path::new("/usr"))).unwrap(),
            Path::new("/usr/bin/sh")
        );
    }
}
