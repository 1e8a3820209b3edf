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

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};

use alloc::format;

use crate::sys;

/// How init's writes reach standard error.
const BLOCKING: i32 = 0;
const OWN_FD: i32 = 1;
const SOCKET: i32 = 2;

/// One of the three above.
static MODE: AtomicI32 = AtomicI32::new(BLOCKING);
/// The non-blocking description of our own (`OWN_FD`), or 2.
static FD: AtomicI32 = AtomicI32::new(2);
/// The last write could not finish: skip writes until there is room.
static FULL: AtomicBool = AtomicBool::new(false);
/// The bytes written so far end inside a line.
static MID_LINE: AtomicBool = AtomicBool::new(false);
/// Bytes left out since the pipe filled.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Sets up non-blocking writes where fd 2 could block. Called once, early;
/// until then (a usage error) writes simply block, as anything's do.
pub fn init() {
    let Ok(meta) = sys::fstat(2) else {
        return;
    };
    let kind = meta.mode & libc::S_IFMT;
    // SAFETY: isatty only inspects fd 2. (/dev/null is a character device
    // too, and never blocks.)
    let tty = kind == libc::S_IFCHR && unsafe { libc::isatty(2) } == 1;
    match kind {
        libc::S_IFIFO => reopen(),
        libc::S_IFCHR if tty => reopen(),
        libc::S_IFSOCK => MODE.store(SOCKET, Relaxed),
        _ => {}
    }
}

/// A non-blocking description of our own on what fd 2 is.
fn reopen() {
    let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // No /proc, or a pipe with no reader left: keep fd 2.
    if let Ok(fd) = sys::open(c"/proc/self/fd/2", flags, 0) {
        FD.store(fd.raw(), Relaxed);
        MODE.store(OWN_FD, Relaxed);
        // Held until init exits.
        core::mem::forget(fd);
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
    let fd = FD.load(Relaxed);
    if FULL.load(Relaxed) {
        if !has_room(fd) {
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
        if let Outcome::Dropped { .. } = write_some(mode, fd, note.as_bytes()) {
            DROPPED.fetch_add(bytes.len() as u64, Relaxed);
            return Outcome::Dropped { newly: false };
        }
    }
    write_some(mode, fd, bytes)
}

fn write_some(mode: i32, fd: i32, mut bytes: &[u8]) -> Outcome {
    while !bytes.is_empty() {
        // SAFETY: writing a valid buffer to an fd.
        let n = unsafe {
            match mode {
                SOCKET => libc::send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                ),
                _ => libc::write(fd, bytes.as_ptr().cast(), bytes.len()),
            }
        };
        match usize::try_from(n) {
            Ok(0) => return Outcome::Done,
            Ok(n) => {
                let (written, rest) = bytes.split_at(n.min(bytes.len()));
                MID_LINE.store(written.last() != Some(&b'\n'), Relaxed);
                bytes = rest;
            }
            Err(_) => match sys::Error::last() {
                sys::Error::Os(libc::EINTR) => continue,
                sys::Error::Os(libc::EAGAIN) if mode != BLOCKING => {
                    FULL.store(true, Relaxed);
                    DROPPED.fetch_add(bytes.len() as u64, Relaxed);
                    return Outcome::Dropped { newly: true };
                }
                // Closed, a broken pipe: nothing to do about it here.
                _ => return Outcome::Done,
            },
        }
    }
    Outcome::Done
}

/// Whether a write to `fd` would not block now.
fn has_room(fd: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLOUT != 0
}
