//! init's own writes to its standard error and standard output, which must
//! never stop it.
//!
//! fds 1 and 2 are shared with the main command, so their open file
//! descriptions cannot be made non-blocking without making the main
//! command's non-blocking too. Yet a blocking write would freeze PID 1 — no
//! reaping, no forwarding, `docker stop` sitting out its grace — whenever
//! nobody drains the pipe (a log driver that blocks, a stalled reader). So
//! where the fd is a pipe or a terminal, init opens it again through
//! `/proc/self/fd/N`: a description of its own on the same pipe, which can
//! be non-blocking alone. (A regular file cannot be opened twice like that
//! without a second file offset, and does not block; a socket is written
//! with MSG_DONTWAIT.)
//!
//! [`StdStream::write`] drops what does not fit when the pipe is full —
//! every line still reaches the log file — and tries nothing more until
//! the pipe has room: then a line says how much was left out, and copying
//! resumes. [`StdStream::write_raw`] is one non-blocking write for the
//! stream's one raw writer (a program's `stdout_logfile=/dev/stdout`),
//! which keeps what did not fit; the two never cut into each other's
//! lines.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};
use std::sync::{Once, OnceLock};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{SFlag, fstat};
use nix::unistd::isatty;

/// How init's writes reach the fd.
const BLOCKING: i32 = 0;
const OWN_FD: i32 = 1;
const SOCKET: i32 = 2;

/// fd 1 or fd 2, as init writes to it.
pub struct StdStream {
    fd: i32,
    /// What people call it, for the line that says what was dropped.
    name: &'static str,
    /// One of the three above.
    mode: AtomicI32,
    /// The non-blocking description of our own (`OWN_FD`).
    own: OnceLock<File>,
    /// The last write could not finish: skip writes until there is room.
    full: AtomicBool,
    /// The bytes written so far end inside a line.
    mid_line: AtomicBool,
    /// Bytes left out since the pipe filled.
    dropped: AtomicU64,
    /// [`StdStream::open`] has run.
    opened: Once,
    /// The raw writer has written part of a line and owes the rest.
    owed: AtomicBool,
    /// The log file has every line copied here.
    backed: AtomicBool,
}

pub static STDERR: StdStream = StdStream::new(2, "standard error");
pub static STDOUT: StdStream = StdStream::new(1, "standard output");

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, or lost to an error no retry would mend (closed, EPIPE).
    Done,
    /// Left out, whole or in part: the stream is full.
    Dropped {
        /// This write found it full; the ones before got through.
        newly: bool,
    },
}

/// Sets up non-blocking writes where fd 2 could block. Called once,
/// early; until then (a usage error) writes simply block, as anything's
/// do. fd 1 is set up by [`StdStream::open`] where init writes to it.
pub fn init() {
    STDERR.open();
}

/// Writes `bytes` to standard error without ever blocking on a full pipe.
pub fn write(bytes: &[u8]) -> Outcome {
    STDERR.write(bytes)
}

impl StdStream {
    const fn new(fd: i32, name: &'static str) -> StdStream {
        StdStream {
            fd,
            name,
            mode: AtomicI32::new(BLOCKING),
            own: OnceLock::new(),
            full: AtomicBool::new(false),
            mid_line: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            opened: Once::new(),
            owed: AtomicBool::new(false),
            backed: AtomicBool::new(true),
        }
    }

    /// What people call it: "standard output" or "standard error".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The fd itself; init keeps 0-2 open for its whole life.
    fn with_std<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
        if self.fd == 1 {
            f(io::stdout().as_fd())
        } else {
            f(io::stderr().as_fd())
        }
    }

    /// Sets up non-blocking writes, once: where init writes to it at all.
    pub fn open(&'static self) -> &'static StdStream {
        self.opened.call_once(|| self.set_up());
        self
    }

    fn set_up(&self) {
        let Ok(meta) = self.with_std(|fd| fstat(fd)) else {
            return;
        };
        let kind = SFlag::from_bits_truncate(meta.st_mode) & SFlag::S_IFMT;
        // /dev/null is a character device too, and never blocks.
        let tty = kind == SFlag::S_IFCHR && self.with_std(|fd| isatty(fd)).unwrap_or(false);
        if kind == SFlag::S_IFIFO || tty {
            self.reopen();
        } else if kind == SFlag::S_IFSOCK {
            // A second fd on the same socket, to poll for room.
            if let Ok(fd) = self.with_std(|fd| nix::unistd::dup(fd)) {
                let _ = self.own.set(File::from(fd));
            }
            self.mode.store(SOCKET, Relaxed);
        }
    }

    /// A non-blocking description of our own on what the fd is.
    fn reopen(&self) {
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(format!("/proc/self/fd/{}", self.fd));
        // No /proc, or a pipe with no reader left: keep the fd.
        if let Ok(file) = opened {
            if self.own.set(file).is_ok() {
                self.mode.store(OWN_FD, Relaxed);
            }
        }
    }

    /// Writes `bytes` (whole log lines) without ever blocking on a full
    /// pipe: what does not fit is dropped, and said when there is room
    /// again. While the raw writer owes the rest of a line, nothing is
    /// written in between: the lines are dropped as if the pipe were full.
    pub fn write(&self, bytes: &[u8]) -> Outcome {
        if self.owed.load(Relaxed) {
            let newly = !self.full.swap(true, Relaxed);
            self.dropped.fetch_add(bytes.len() as u64, Relaxed);
            return Outcome::Dropped { newly };
        }
        if !self.recover() {
            self.dropped.fetch_add(bytes.len() as u64, Relaxed);
            return Outcome::Dropped { newly: false };
        }
        self.write_some(bytes)
    }

    /// After lines were dropped: once there is room, the line that says
    /// so (ending a line cut short first). False while still full.
    fn recover(&self) -> bool {
        if !self.full.load(Relaxed) {
            return true;
        }
        if !self.has_room() {
            return false;
        }
        self.full.store(false, Relaxed);
        let lead = if self.mid_line.load(Relaxed) {
            "\n"
        } else {
            ""
        };
        let kept = if self.backed.load(Relaxed) {
            " (the log file has them)"
        } else {
            ""
        };
        let note = format!(
            "{lead}cocalc-init: {} was full: {} bytes of log lines were not copied to it{kept}\n",
            self.name,
            self.dropped.swap(0, Relaxed)
        );
        self.mid_line.store(false, Relaxed);
        self.write_some(note.as_bytes()) == Outcome::Done && !self.mid_line.load(Relaxed)
    }

    /// The log has no file behind this stream (`-l -`, `-l /dev/stdout`):
    /// what is dropped here is lost, and the note says nothing else.
    pub fn set_unbacked(&self) {
        self.backed.store(false, Relaxed);
    }

    /// One write of whole lines for the one raw writer of this stream (a
    /// program's `stdout_logfile=/dev/stdout`), which keeps what did not
    /// go. The log's own copy is let finish first, and is kept out while
    /// a line written in part is owed: lines never cut into each other.
    pub fn write_raw(&self, bytes: &[u8]) -> io::Result<usize> {
        if !self.owed.load(Relaxed) && !self.recover() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.write_once(bytes)?;
        let whole = n == 0 || bytes.get(n - 1) == Some(&b'\n');
        self.owed.store(!whole, Relaxed);
        Ok(n)
    }

    /// Whether the raw writer has written part of a line.
    pub fn owes(&self) -> bool {
        self.owed.load(Relaxed)
    }

    /// The raw writer gave up a line written in part (at the end, or on a
    /// stream that is gone): the log's copy may write again.
    pub fn forgive(&self) {
        self.owed.store(false, Relaxed);
    }

    /// One write that never blocks where the fd could (a pipe, a
    /// terminal, a socket): how much went.
    fn write_once(&self, bytes: &[u8]) -> io::Result<usize> {
        let mode = self.mode.load(Relaxed);
        match (mode, self.own.get()) {
            (SOCKET, _) => send(
                self.fd,
                bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            )
            .map_err(io::Error::from),
            (OWN_FD, Some(file)) => nix::unistd::write(file, bytes).map_err(io::Error::from),
            _ => self
                .with_std(|fd| nix::unistd::write(fd, bytes))
                .map_err(io::Error::from),
        }
    }

    fn write_some(&self, mut bytes: &[u8]) -> Outcome {
        let blocking = self.mode.load(Relaxed) == BLOCKING;
        while !bytes.is_empty() {
            match self.write_once(bytes) {
                Ok(0) => return Outcome::Done,
                Ok(n) => {
                    let (written, rest) = bytes.split_at(n.min(bytes.len()));
                    self.mid_line.store(written.last() != Some(&b'\n'), Relaxed);
                    bytes = rest;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !blocking => {
                    self.full.store(true, Relaxed);
                    self.dropped.fetch_add(bytes.len() as u64, Relaxed);
                    return Outcome::Dropped { newly: true };
                }
                // Closed, a broken pipe: nothing to do about it here.
                Err(_) => return Outcome::Done,
            }
        }
        Outcome::Done
    }

    /// The fd to poll for room, where a write can find none: the one of
    /// init's own on a pipe, a terminal or a socket.
    pub fn poll_fd(&'static self) -> Option<BorrowedFd<'static>> {
        self.own.get().map(AsFd::as_fd)
    }

    /// Calls `f` with the fd init writes through.
    fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
        match self.own.get() {
            Some(file) => f(file.as_fd()),
            None => self.with_std(f),
        }
    }

    /// Whether a write would not block now.
    fn has_room(&self) -> bool {
        self.wait_room(PollTimeout::ZERO)
    }

    /// Waits up to `timeout` for room; whether there is.
    pub fn wait_room(&self, timeout: PollTimeout) -> bool {
        self.with_fd(|fd| {
            let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
            matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
                && fds
                    .first()
                    .and_then(PollFd::revents)
                    .is_some_and(|r| r.contains(PollFlags::POLLOUT))
        })
    }
}
