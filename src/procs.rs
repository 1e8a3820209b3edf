//! Reading the process table from `/proc`: for shutdown, which processes
//! are init's children (adopted ones included), and, as PID 1, which are
//! left in the container; at the start, who holds the log's lock.

use std::io;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: Pid,
    pub ppid: Pid,
    /// Dead and waiting to be reaped: no signal can reach it.
    pub zombie: bool,
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid …`. The command name
/// may hold spaces and parentheses (and any bytes), so the fields are read
/// after the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<Proc> {
    let open = text.windows(2).position(|w| w == b" (")?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let pid: i32 = std::str::from_utf8(text.get(..open)?)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut rest = rest.split_whitespace();
    let state = rest.next()?;
    let ppid: i32 = rest.next()?.parse().ok()?;
    Some(Proc {
        pid: Pid::from_raw(pid),
        ppid: Pid::from_raw(ppid),
        zombie: state == "Z" || state == "X",
    })
}

/// Every process in this PID namespace that `/proc` shows.
pub fn list() -> io::Result<Vec<Proc>> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if name.is_empty() || !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // The process may be gone by now: skip it.
        let Ok(text) = std::fs::read(entry.path().join("stat")) else {
            continue;
        };
        if let Some(p) = parse_stat(&text) {
            procs.push(p);
        }
    }
    Ok(procs)
}

/// Living children of this process, adopted ones included, from the
/// kernel's own lists (one per thread; init has one thread): their cost is
/// the number of children, not of processes on the machine, which matters
/// when init is not PID 1. Falls back to a scan where there are no lists.
pub fn children() -> io::Result<Vec<Pid>> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return children_of(Pid::this());
    };
    let mut found = Vec::new();
    for task in tasks {
        let task = task?;
        match std::fs::read(task.path().join("children")) {
            Ok(text) => found.extend(
                std::str::from_utf8(&text)
                    .unwrap_or("")
                    .split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .map(Pid::from_raw),
            ),
            Err(_) => return children_of(Pid::this()),
        }
    }
    Ok(found)
}

/// Whether this process has any child at all, living or dead, from one
/// system call: reading `/proc` for children can then be skipped, which is
/// most of what a short-lived `init -- CMD` would spend on shutdown.
pub fn has_children() -> bool {
    loop {
        // WNOWAIT: look, do not reap — the main loop reaps and logs.
        match waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return false,
            // A child (even one nix cannot describe: EINVAL for a death by
            // a real-time signal), or an error: assume some.
            _ => return true,
        }
    }
}

/// Living children of `parent`, from a scan of every process.
pub fn children_of(parent: Pid) -> io::Result<Vec<Pid>> {
    Ok(list()?
        .into_iter()
        .filter(|p| p.ppid == parent && !p.zombie)
        .map(|p| p.pid)
        .collect())
}

/// Living processes other than `me`.
pub fn others(me: Pid) -> io::Result<Vec<Pid>> {
    Ok(list()?
        .into_iter()
        .filter(|p| p.pid != me && !p.zombie)
        .map(|p| p.pid)
        .collect())
}

/// The pid that holds a `flock` on the file (device `dev`, inode `ino`),
/// as `/proc/locks` shows it (`1: FLOCK ADVISORY WRITE 42 00:2a:1234 0
/// EOF`); None where it is not there, or outside our PID namespace.
pub fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let file = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    holder_in(&locks, &file)
}

/// The pid of the lock on `file` (`MAJOR:MINOR:INODE`) in `/proc/locks`.
fn holder_in(locks: &str, file: &str) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed as `1: -> FLOCK …`: one field more.
        let at = fields.iter().position(|f| *f == file)?;
        let pid: u32 = fields.get(at.checked_sub(1)?)?.parse().ok()?;
        (fields.get(1) != Some(&"->") && pid != 0).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let p = parse_stat(b"123 (a) b (c)) S 45 123 123 0 -1").unwrap();
        assert_eq!(
            (p.pid.as_raw(), p.ppid.as_raw(), p.zombie),
            (123, 45, false)
        );
        let z = parse_stat(b"9 (sh) Z 1 9 9").unwrap();
        assert!(z.zombie);
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn the_kernel_list_has_our_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let from_kernel = children().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(from_kernel.contains(&pid));
    }

    #[test]
    fn has_children_sees_a_child_until_it_is_reaped() {
        // Other tests in this process start children too: only the
        // answer with ours alive is certain.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(has_children());
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn finds_our_own_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = Pid::this();
        let kids = children_of(me).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&Pid::from_raw(child.id() as i32)));
    }

    #[test]
    fn the_holder_of_a_lock_is_read_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 7 00:2a:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234 0 EOF\n";
        assert_eq!(holder_in(locks, "fd:01:1234"), Some(4242));
        assert_eq!(holder_in(locks, "00:2a:99"), Some(7));
        assert_eq!(holder_in(locks, "fd:01:1"), None);
    }
}
