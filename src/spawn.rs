//! Starting one child, clean: its own session (a program) or process group
//! (the main command), an empty signal mask and default dispositions, and
//! no file descriptor but 0, 1, 2.
//!
//! The command is resolved here, before the child exists, so that a failure
//! can be told in supervisord's words (`can't find command`, `is a
//! directory`, …). The child is made by glibc's `posix_spawn` (through
//! nix's `spawn` module), not by fork: it borrows init's memory until exec
//! instead of copying its page tables, and hands an exec failure back as a
//! return value instead of through a pipe the parent must wait on.
//! Everything the child needs is said through spawn attributes and file
//! actions, so nothing of ours runs in the child.
//!
//! nix wraps the portable attributes; glibc's own extensions — a new
//! session (`POSIX_SPAWN_SETSID`), the terminal's foreground
//! (`addtcsetpgrp_np`), the working directory (`addchdir_np`) and closing
//! every fd from 3 up (`addclosefrom_np`) — are added with libc on the
//! same objects, which nix declares `repr(transparent)` over libc's.
//!
//! A program with `user=` is the one exception: no spawn attribute changes
//! the uid, gid or groups, so it is started by fork and exec (nix), the
//! child doing by hand what the attributes do, and then dropping to the
//! user. Init is one thread, so the forked child is a plain copy; an exec
//! failure comes back through a close-on-exec pipe.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::SigSet;
use nix::unistd::{AccessFlags, ForkResult, Pid, access, isatty, pipe2};

use crate::settings::Settings;
use crate::signals;
use crate::user::Account;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug)]
pub enum SpawnError {
    NotFound(String),
    IsDirectory(String),
    NotExecutable(String),
    NoPermission(String),
    /// The working folder (`directory=`) is not there.
    NoDirectory {
        dir: String,
        error: Errno,
    },
    Os {
        command: String,
        error: Errno,
    },
    /// Its `#!` line ends in a carriage return: the kernel looks for an
    /// interpreter whose name ends in one, and says "not found".
    CrlfShebang(String),
}

impl SpawnError {
    /// The status a shell gives for this failure: 127 not found, 126 else.
    pub fn shell_status(&self) -> u8 {
        match self {
            SpawnError::NotFound(_)
            | SpawnError::CrlfShebang(_)
            | SpawnError::Os {
                error: Errno::ENOENT,
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
            SpawnError::NoDirectory { dir, error } => {
                write!(f, "couldn't chdir to {dir}: {}", io::Error::from(*error))
            }
            SpawnError::Os { command, error } => {
                write!(
                    f,
                    "couldn't run command '{command}': {}",
                    io::Error::from(*error)
                )
            }
            SpawnError::CrlfShebang(c) => write!(
                f,
                "{c} has Windows line endings (CRLF) on its #! line; {CONVERT}"
            ),
        }
    }
}

/// How to mend a file with Windows line endings, in every message about one.
pub const CONVERT: &str = "convert it with dos2unix or sed -i 's/\\r$//'";

/// The first bytes of the file at `path`, as much as a `#!` line needs.
fn head_of(path: &Path) -> Option<Vec<u8>> {
    let mut head = vec![0u8; 256];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    head.truncate(n);
    Some(head)
}

/// Whether the file at `path` starts with a `#!` line that ends in `\r`.
fn crlf_shebang(path: &Path) -> bool {
    head_of(path).is_some_and(|head| {
        head.strip_prefix(b"#!")
            .and_then(|line| line.split(|&b| b == b'\n').next())
            .is_some_and(|line| line.ends_with(b"\r"))
            // A `#!` line with no end in the bytes read says nothing.
            && head.contains(&b'\n')
    })
}

/// Whether the script at `path` has a line ending in `\r\n` (in its first
/// 64 KiB): bash then reads `exit 0\r` and every other line with a
/// carriage return on its last word, and fails in ways that hide why.
pub fn has_crlf_lines(path: &Path) -> bool {
    let mut text = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut text))
        .is_ok()
        && text.windows(2).any(|w| w == b"\r\n")
}

/// A started child.
pub struct Spawned {
    pub pid: Pid,
    /// Non-blocking read ends of the child's stdout and stderr (programs only).
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// How the child is set apart from init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A supervised program: new session, stdin /dev/null, output piped;
    /// with `merge_stderr`, its stderr into the stdout pipe.
    Program { merge_stderr: bool },
    /// The main command: new process group, init's stdio, and the terminal's
    /// foreground when stdin is one.
    Main,
}

/// The name of an environment entry `NAME=VALUE`.
pub fn var_name(entry: &[u8]) -> &[u8] {
    entry.split(|&b| b == b'=').next().unwrap_or(entry)
}

/// The environment a child with these settings gets: init's, then the
/// user's `HOME`, `USER` and `LOGNAME`, then its `environment=`, then
/// `extra` (init's own: `COCALC_INIT_PROGRAM`, `NOTIFY_SOCKET`), each
/// replacing a variable of the same name. None: init's as it is.
pub fn environment_for(
    base: &[&CStr],
    settings: &Settings,
    extra: &[(&str, &str)],
) -> Option<Vec<CString>> {
    if settings.environment.is_empty() && settings.user.is_none() && extra.is_empty() {
        return None;
    }
    let mut set: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(user) = &settings.user {
        let home = user.home.as_os_str().as_bytes().to_vec();
        for (key, value) in [
            ("HOME", home),
            ("USER", user.name.clone().into_bytes()),
            ("LOGNAME", user.name.clone().into_bytes()),
        ] {
            set.push((key.as_bytes().to_vec(), value));
        }
    }
    let own = settings
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied());
    for (key, value) in own {
        set.retain(|(k, _)| k.as_slice() != key.as_bytes());
        set.push((key.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    let mut env: Vec<CString> = base
        .iter()
        .filter(|e| {
            let name = var_name(e.to_bytes());
            !set.iter().any(|(k, _)| k.as_slice() == name)
        })
        .map(|e| CString::from(*e))
        .collect();
    for (key, value) in set {
        let mut entry = key;
        entry.push(b'=');
        entry.extend(value);
        // Checked at start: no control character, so no NUL.
        if let Ok(entry) = CString::new(entry) {
            env.push(entry);
        }
    }
    Some(env)
}

/// Starts `argv` in `cwd` with `env`, as `user` when that is someone else
/// than init.
pub fn spawn<A: AsRef<CStr>>(
    argv: &[A],
    cwd: Option<&CStr>,
    isolation: Isolation,
    env: &[&CStr],
    user: Option<&Account>,
) -> Result<Spawned, SpawnError> {
    let Some(arg0) = argv.first().map(AsRef::as_ref) else {
        return Err(SpawnError::NotFound(String::new()));
    };
    let cwd_path = cwd.map(|c| Path::new(OsStr::from_bytes(c.to_bytes())));
    if let Some(dir) = cwd_path {
        folder(dir)?;
    }
    let path = resolve(OsStr::from_bytes(arg0.to_bytes()), cwd_path)?;
    // The command's name is only written out when something failed.
    let fail = |error: Errno| {
        let command = String::from_utf8_lossy(arg0.to_bytes()).into_owned();
        if error == Errno::ENOENT && crlf_shebang(&path) {
            return SpawnError::CrlfShebang(command);
        }
        SpawnError::Os { command, error }
    };

    let mut actions = PosixSpawnFileActions::init().map_err(fail)?;
    let mut attr = PosixSpawnAttr::init().map_err(fail)?;
    attr.set_sigmask(&SigSet::empty()).map_err(fail)?;
    attr.set_sigdefault(&signals::every_signal())
        .map_err(fail)?;
    attr.set_pgroup(Pid::from_raw(0)).map_err(fail)?;
    let mut flags =
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF;
    // Kept open until the child has them as 0, 1 and 2.
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    let mut read_ends: Vec<File> = Vec::new();
    let mut take_terminal = false;
    match isolation {
        Isolation::Program { merge_stderr } => {
            flags |= PosixSpawnFlags::from_bits_retain(libc::c_int::from(libc::POSIX_SPAWN_SETSID));
            program_stdio(&mut actions, merge_stderr, &mut child_ends, &mut read_ends)
                .map_err(fail)?;
        }
        Isolation::Main => {
            flags |= PosixSpawnFlags::POSIX_SPAWN_SETPGROUP;
            // Take the terminal for the new group so that Ctrl-C and job
            // control reach it. (On anything but a terminal this action
            // would fail the spawn, so it is only asked for on one.)
            take_terminal = isatty(std::io::stdin()).unwrap_or(false);
        }
    }
    let pid = match user.filter(|u| u.is_other_than_init()) {
        Some(account) => {
            let child = Child {
                path: CString::new(path.as_os_str().as_bytes()).map_err(|_| fail(Errno::EINVAL))?,
                argv: argv.iter().map(AsRef::as_ref).collect(),
                env,
                cwd,
                isolation,
                take_terminal,
                stdio: &child_ends,
                account,
            };
            fork_exec(&child).map_err(|(step, error)| match (step, cwd_path) {
                (Step::Chdir, Some(dir)) => SpawnError::NoDirectory {
                    dir: dir.display().to_string(),
                    error,
                },
                _ => fail(error),
            })?
        }
        None => {
            glibc_actions(&mut actions, take_terminal, cwd).map_err(fail)?;
            attr.set_flags(flags).map_err(fail)?;
            posix_spawn(path.as_os_str(), &actions, &attr, argv, env).map_err(fail)?
        }
    };
    drop(child_ends);
    let mut read_ends = read_ends.into_iter();
    Ok(Spawned {
        pid,
        stdout: read_ends.next(),
        stderr: read_ends.next(),
    })
}

/// A program's stdin (empty) and its stdout and stderr pipes (one, with
/// `merge_stderr`), as the child's 0, 1 and 2; the read ends for init.
fn program_stdio(
    actions: &mut PosixSpawnFileActions,
    merge_stderr: bool,
    child_ends: &mut Vec<OwnedFd>,
    read_ends: &mut Vec<File>,
) -> Result<(), Errno> {
    let input = empty_input()?;
    actions.add_dup2(input.as_raw_fd(), 0)?;
    child_ends.push(input);
    for target in [1, 2] {
        if target == 2 && merge_stderr {
            let stdout = child_ends.last().ok_or(Errno::EBADF)?;
            let write = nix::unistd::dup(stdout)?;
            actions.add_dup2(write.as_raw_fd(), target)?;
            child_ends.push(write);
            continue;
        }
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        // Without O_NONBLOCK one quiet program could stall the loop.
        let flags = OFlag::from_bits_retain(fcntl(&read, FcntlArg::F_GETFL)?);
        fcntl(&read, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        actions.add_dup2(write.as_raw_fd(), target)?;
        child_ends.push(write);
        read_ends.push(File::from(read));
    }
    Ok(())
}

/// What a forked child needs, all made before the fork.
struct Child<'a> {
    path: CString,
    argv: Vec<&'a CStr>,
    env: &'a [&'a CStr],
    cwd: Option<&'a CStr>,
    isolation: Isolation,
    take_terminal: bool,
    /// A program's stdin, stdout and stderr, to become 0, 1 and 2.
    stdio: &'a [OwnedFd],
    account: &'a Account,
}

/// Where a forked child failed: entering its folder, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Chdir = 1,
    Other = 2,
}

/// fork, set the child up as the spawn attributes would and as `account`,
/// exec. The child's failure (its step and errno) comes back through a
/// close-on-exec pipe: end of file means the exec happened.
fn fork_exec(child: &Child) -> Result<Pid, (Step, Errno)> {
    let other = |e| (Step::Other, e);
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).map_err(other)?;
    // SAFETY: init is single-threaded, so the child is a whole copy of a
    // consistent process: nothing another thread held is left locked.
    match unsafe { nix::unistd::fork() }.map_err(other)? {
        ForkResult::Child => {
            let (step, error) = match become_child(child) {
                Err(failure) => failure,
                Ok(never) => match never {},
            };
            let mut report = [0u8; 5];
            report[0] = step as u8;
            if let Some(rest) = report.get_mut(1..) {
                rest.copy_from_slice(&(error as i32).to_ne_bytes());
            }
            let _ = nix::unistd::write(&report_write, &report);
            // SAFETY: ends the child at once, running nothing of the
            // parent's copy (no atexit handler, no buffer flushed twice).
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child: pid } => {
            drop(report_write);
            let mut report = [0u8; 5];
            let mut got = 0;
            loop {
                match nix::unistd::read(&report_read, report.get_mut(got..).unwrap_or(&mut [])) {
                    Ok(0) => break,
                    Ok(n) => {
                        got += n;
                        if got >= report.len() {
                            break;
                        }
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => {
                        // Not knowing whether it will exec, it must not run
                        // beside the copy the next start makes.
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        let _ = nix::sys::wait::waitpid(pid, None);
                        return Err(other(e));
                    }
                }
            }
            if got == 0 {
                return Ok(pid);
            }
            // It did not exec: reap it here, it is no program's.
            let _ = nix::sys::wait::waitpid(pid, None);
            let mut errno = [0u8; 4];
            errno.copy_from_slice(report.get(1..5).unwrap_or(&[0; 4]));
            let step = if report[0] == Step::Chdir as u8 {
                Step::Chdir
            } else {
                Step::Other
            };
            Err((step, Errno::from_raw(i32::from_ne_bytes(errno))))
        }
    }
}

/// In the forked child: only returns, with the step that failed. The
/// folder is entered as the user, so that one it may not enter is an
/// error, as it would be for the user by hand.
fn become_child(child: &Child) -> Result<std::convert::Infallible, (Step, Errno)> {
    use nix::unistd::{
        chdir, dup2_stderr, dup2_stdin, dup2_stdout, execve, setgid, setgroups, setpgid, setsid,
        setuid, tcsetpgrp,
    };
    let other = |e| (Step::Other, e);
    match child.isolation {
        Isolation::Program { .. } => {
            setsid().map_err(other)?;
        }
        Isolation::Main => {
            setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(other)?;
            if child.take_terminal {
                // Still with every signal blocked: SIGTTOU cannot stop us.
                tcsetpgrp(std::io::stdin(), nix::unistd::getpid()).map_err(other)?;
            }
        }
    }
    let mut stdio = child.stdio.iter();
    if let (Some(input), Some(output), Some(errors)) = (stdio.next(), stdio.next(), stdio.next()) {
        dup2_stdin(input).map_err(other)?;
        dup2_stdout(output).map_err(other)?;
        dup2_stderr(errors).map_err(other)?;
    }
    let account = child.account;
    setgroups(&account.groups).map_err(other)?;
    setgid(account.gid).map_err(other)?;
    setuid(account.uid).map_err(other)?;
    if let Some(dir) = child.cwd {
        chdir(dir).map_err(|e| (Step::Chdir, e))?;
    }
    signals::reset_for_exec().map_err(other)?;
    signals::close_from(3).map_err(other)?;
    match execve(&child.path, &child.argv, child.env) {
        Ok(never) => match never {},
        Err(e) => Err(other(e)),
    }
}

/// Why `dir`, a working folder, cannot be entered.
fn folder(dir: &Path) -> Result<(), SpawnError> {
    let missing = |error| SpawnError::NoDirectory {
        dir: dir.display().to_string(),
        error,
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(missing(Errno::ENOTDIR)),
        Err(e) => Err(missing(Errno::from_raw(e.raw_os_error().unwrap_or(0)))),
    }
}

/// For `--check`: what a start in `dir` would find wrong with it.
pub fn check_folder(dir: &Path) -> Result<(), SpawnError> {
    folder(dir)
}

/// glibc's file actions that nix does not wrap, added after the dup2s:
/// close every fd from 3 up (whatever init inherited or opened, close-on-
/// exec or not), take the terminal, change folder.
fn glibc_actions(
    actions: &mut PosixSpawnFileActions,
    take_terminal: bool,
    cwd: Option<&CStr>,
) -> Result<(), Errno> {
    let raw = (actions as *mut PosixSpawnFileActions).cast::<libc::posix_spawn_file_actions_t>();
    // SAFETY: nix's PosixSpawnFileActions is repr(transparent) over an
    // initialised posix_spawn_file_actions_t, which these calls extend;
    // glibc copies the path.
    let rc = unsafe {
        let mut rc = libc::posix_spawn_file_actions_addclosefrom_np(raw, 3);
        if rc == 0 && take_terminal {
            rc = libc::posix_spawn_file_actions_addtcsetpgrp_np(raw, 0);
        }
        if let (0, Some(dir)) = (rc, cwd) {
            rc = libc::posix_spawn_file_actions_addchdir_np(raw, dir.as_ptr());
        }
        rc
    };
    match rc {
        0 => Ok(()),
        e => Err(Errno::from_raw(e)),
    }
}

/// Standard input for a program: /dev/null, or where there is none (a
/// bare root with no /dev) a pipe with no writer, which reads the same:
/// end of file at once.
fn empty_input() -> Result<OwnedFd, Errno> {
    if let Ok(null) = File::open("/dev/null") {
        return Ok(OwnedFd::from(null));
    }
    let (read, _write) = pipe2(OFlag::O_CLOEXEC)?;
    Ok(read)
}

/// Finds what `command` names, as execvp would, but telling *why* it cannot
/// be run. A name with a `/` is a path (relative to `cwd`); a bare name is
/// looked up in `$PATH`, where the first executable file wins and, failing
/// that, the first file that exists is reported.
pub fn resolve(command: &OsStr, cwd: Option<&Path>) -> Result<PathBuf, SpawnError> {
    let text = || command.to_string_lossy().into_owned();
    if command.is_empty() {
        return Err(SpawnError::NotFound(text()));
    }
    if command.as_bytes().contains(&b'/') {
        let path = match cwd {
            Some(dir) => dir.join(command),
            None => PathBuf::from(command),
        };
        return check(&path, text).map(|()| path);
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    let mut first_existing: Option<PathBuf> = None;
    for dir in std::env::split_paths(&search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(command);
        if std::fs::metadata(&candidate).is_err() {
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

/// For `--check`: why `command` (a program's or the main command's first
/// word) would not start, found as a start would find it, and for a file
/// the kernel would refuse — a `#!` line naming a missing interpreter, or
/// neither `#!` nor a binary — the error the start would then give.
pub fn preflight(command: &OsStr, cwd: Option<&Path>) -> Result<(), SpawnError> {
    let path = resolve(command, cwd)?;
    let refused = |error| SpawnError::Os {
        command: command.to_string_lossy().into_owned(),
        error,
    };
    // Unreadable (execute-only) files are the kernel's business.
    let Some(head) = head_of(&path) else {
        return Ok(());
    };
    if head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    if crlf_shebang(&path) {
        return Err(SpawnError::CrlfShebang(
            command.to_string_lossy().into_owned(),
        ));
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return Err(refused(Errno::ENOEXEC));
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Some(interpreter) = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
    else {
        return Err(refused(Errno::ENOEXEC));
    };
    // The kernel runs the interpreter by its path, with no PATH search.
    let interpreter = Path::new(OsStr::from_bytes(interpreter));
    match std::fs::metadata(interpreter) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(refused(Errno::EACCES)),
        Err(_) => Err(refused(Errno::ENOENT)),
    }
}

/// Why `path` cannot be run, named by `text()` (made only on failure).
fn check(path: &Path, text: impl Fn() -> String) -> Result<(), SpawnError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(SpawnError::NoPermission(text()));
        }
        Err(_) => return Err(SpawnError::NotFound(text())),
    };
    if meta.is_dir() {
        return Err(SpawnError::IsDirectory(text()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(SpawnError::NotExecutable(text()));
    }
    if access(path, AccessFlags::X_OK).is_err() {
        return Err(SpawnError::NoPermission(text()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_str(command: &str, cwd: Option<&str>) -> Result<PathBuf, SpawnError> {
        resolve(OsStr::new(command), cwd.map(Path::new))
    }

    #[test]
    fn resolves_bare_names_in_path() {
        let path = resolve_str("sh", None).unwrap();
        assert!(path.is_absolute() && path.ends_with("sh"));
    }

    #[test]
    fn explains_why_a_command_cannot_run() {
        let e = resolve_str("no-such-command-here", None).unwrap_err();
        assert_eq!(e.to_string(), "can't find command 'no-such-command-here'");
        assert_eq!(e.shell_status(), 127);
        let e = resolve_str("/tmp", None).unwrap_err();
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
        let e = resolve_str("./nope", Some("/")).unwrap_err();
        assert_eq!(e.to_string(), "can't find command './nope'");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        assert_eq!(
            resolve_str("bin/sh", Some("/usr")).unwrap(),
            Path::new("/usr/bin/sh")
        );
    }

    #[test]
    fn preflight_finds_what_the_kernel_would_refuse() {
        let dir = std::env::temp_dir().join(format!("cocalc-init-pre-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let fine = script("fine", "#!/bin/sh\necho hi\n");
        let spaced = script("spaced", "#! /bin/sh -e\n");
        let missing = script("missing", "#!/no/such/shell\n");
        let plain = script("plain", "echo hi\n");
        assert!(preflight(fine.as_os_str(), None).is_ok());
        assert!(preflight(spaced.as_os_str(), None).is_ok());
        assert!(preflight(OsStr::new("sh"), None).is_ok());
        let e = preflight(missing.as_os_str(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("No such file or directory"), "{e}");
        let e = preflight(plain.as_os_str(), None).unwrap_err().to_string();
        assert!(e.contains("Exec format error"), "{e}");
        let e = preflight(OsStr::new("sshdd"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "can't find command 'sshdd'");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn os_errors_read_as_std_words_them() {
        let e = SpawnError::Os {
            command: "x".into(),
            error: Errno::E2BIG,
        };
        assert_eq!(
            e.to_string(),
            "couldn't run command 'x': Argument list too long (os error 7)"
        );
    }
}
