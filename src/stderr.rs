//! init's own writes to standard error, which must never stop it.
//!
//! fd 2 is shared with the main command, so its open file description
//! cannot be made non-blocking without making the main command's stderr
//! non-blocking too. Yet a blocking write would freeze PID 1 — no reaping,
//! no forwarding, `docker stop` sitting out its grace — whenever nobody
//! drains the pipe (a log driver that blocks, a stalled reader). So where
//! fd 2 is a pipe or a terminal, init opens it again through
//! `/proc/self/fd/2`: a description of its own on the same pipe, which can
//! be non-blocking alone. (A regular file cannot be opened twice like that
//! without a second file offset, and does not block; a socket is written
//! with MSG_DONTWAIT.)
//!
//! When the pipe is full, what does not fit is dropped — every line still
//! reaches the log file — and nothing more is tried until the pipe has
//! room: then a line says how much was left out, and copying resumes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{SFlag, fstat};
use nix::unistd::isatty;

/// How init's writes reach standard error.
const BLOCKING: i32 = 0;
const OWN_FD: i32 = 1;
const SOCKET: i32 = 2;

/// One of the three above.
static MODE: AtomicI32 = AtomicI32::new(BLOCKING);
/// The non-blocking description of our own (`OWN_FD`).
static OWN: OnceLock<File> = OnceLock::new();
/// The last write could not finish: skip writes until there is room.
static FULL: AtomicBool = AtomicBool::new(false);
/// The bytes written so far end inside a line.
static MID_LINE: AtomicBool = AtomicBool::new(false);
/// Bytes left out since the pipe filled.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Sets up non-blocking writes where fd 2 could block. Called once, early;
/// until then (a usage error) writes simply block, as anything's do.
pub fn init() {
    let Ok(meta) = fstat(io::stderr()) else {
        return;
    };
    let kind = SFlag::from_bits_truncate(meta.st_mode) & SFlag::S_IFMT;
    // /dev/null is a character device too, and never blocks.
    let tty = kind == SFlag::S_IFCHR && isatty(io::stderr()).unwrap_or(false);
    if kind == SFlag::S_IFIFO || tty {
        reopen();
    } else if kind == SFlag::S_IFSOCK {
        MODE.store(SOCKET, Relaxed);
    }
}

/// A non-blocking description of our own on what fd 2 is.
fn reopen() {
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open("/proc/self/fd/2");
    // No /proc, or a pipe with no reader left: keep fd 2.
    if let Ok(file) = opened {
        if OWN.set(file).is_ok() {
            MODE.store(OWN_FD, Relaxed);
        }
    }
}

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, or lost to an error no retry would mend (closed, EPIPE).
    Done,
    /// Left out, whole or in part: standard error is full.
    Dropped {
        /// This write found it full; the ones before got through.
        newly: bool,
    },
}

/// Writes `bytes` to standard error without ever blocking on a full pipe.
pub fn write(bytes: &[u8]) -> Outcome {
    let mode = MODE.load(Relaxed);
    if FULL.load(Relaxed) {
        if !has_room(mode) {
            DROPPED.fetch_add(bytes.len() as u64, Relaxed);
            return Outcome::Dropped { newly: false };
        }
        FULL.store(false, Relaxed);
        let lead = if MID_LINE.load(Relaxed) { "\n" } else { "" };
        let note = format!(
            "{lead}cocalc-init: standard error was full: {} bytes of log lines were not copied to it (the log file has them)\n",
            DROPPED.swap(0, Relaxed)
        );
        MID_LINE.store(false, Relaxed);
        if let Outcome::Dropped { .. } = write_some(mode, note.as_bytes()) {
            DROPPED.fetch_add(bytes.len() as u64, Relaxed);
            return Outcome::Dropped { newly: false };
        }
    }
    write_some(mode, bytes)
}

/// One write in `mode`.
fn write_once(mode: i32, bytes: &[u8]) -> io::Result<usize> {
    match (mode, OWN.get()) {
        (SOCKET, _) => {
            send(2, bytes, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
        }
        (OWN_FD, Some(mut file)) => file.write(bytes),
        _ => io::stderr().write(bytes),
    }
}

fn write_some(mode: i32, mut bytes: &[u8]) -> Outcome {
    while !bytes.is_empty() {
        match write_once(mode, bytes) {
            Ok(0) => return Outcome::Done,
            Ok(n) => {
                let (written, rest) = bytes.split_at(n.min(bytes.len()));
                MID_LINE.store(written.last() != Some(&b'\n'), Relaxed);
                bytes = rest;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && mode != BLOCKING => {
                FULL.store(true, Relaxed);
                DROPPED.fetch_add(bytes.len() as u64, Relaxed);
                return Outcome::Dropped { newly: true };
            }
            // Closed, a broken pipe: nothing to do about it here.
            Err(_) => return Outcome::Done,
        }
    }
    Outcome::Done
}

/// Whether a write would not block now.
fn has_room(mode: i32) -> bool {
    let ready = |fd: std::os::fd::BorrowedFd<'_>| {
        let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds
                .first()
                .and_then(PollFd::revents)
                .is_some_and(|r| r.contains(PollFlags::POLLOUT))
    };
    match (mode, OWN.get()) {
        (OWN_FD, Some(file)) => ready(file.as_fd()),
        _ => ready(io::stderr().as_fd()),
    }
}
