//! The log: one line an event, `YYYY-MM-DD HH:MM:SS,mmm LEVEL message`,
//! appended to a file and copied to standard error.
//!
//! Written by hand rather than through simplelog: the line format must be
//! exactly supervisord's (bare level, comma before the milliseconds, local
//! time), a failed write must be noticed instead of dropped, rotation must
//! lose no line, and program output is logged at a rate where per-line
//! formatting machinery shows.
//!
//! Invariants:
//! - Lines are gathered in `pending` and written by [`Logger::flush`], once
//!   per turn of the main loop, so a burst of output costs one `write`.
//! - No file grows past `max_bytes` (unless one line alone is longer: it
//!   goes whole into a fresh file).
//! - A line that could not reach the file goes to standard error, even with
//!   `--quiet`; the failure is said once, and the file is tried again at
//!   every later flush (reopened, its folder made again).

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;

use crate::config::{LogConfig, LogTarget};
use crate::localtime::{self, Zone};
use crate::messages;
use crate::path;
use crate::stderr;
use crate::sys::{self, Fd};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl Level {
    /// supervisord's four-letter level words.
    fn word(self) -> &'static str {
        match self {
            Level::Debug => "DEBG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERRO",
            Level::Critical => "CRIT",
        }
    }
}

/// Which pipe a program line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn word(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The file side of the log.
struct FileSink {
    /// Absolute.
    path: Vec<u8>,
    /// The same, for system calls.
    c_path: CString,
    file: Option<Fd>,
    /// Device and inode of the open file, to notice when the path stops
    /// naming it.
    id: (u64, u64),
    /// Opened since the last write: the path was just checked.
    fresh: bool,
    /// Bytes in the current file, as far as we know.
    size: u64,
    /// The failure has been told on stderr and not yet cleared.
    failing: bool,
}

pub struct Logger {
    file: Option<FileSink>,
    max_bytes: u64,
    backups: u32,
    to_stderr: bool,
    verbose: bool,
    /// Formatted lines not yet written.
    pending: Vec<u8>,
    clock: Clock,
}

impl Logger {
    /// Opens the log. A file that cannot be opened now is not fatal: lines
    /// go to stderr until it can be.
    pub fn open(config: &LogConfig) -> Logger {
        let (file, to_stderr) = match &config.target {
            LogTarget::Stderr => (None, true),
            LogTarget::File(path) => (
                Some(FileSink {
                    path: path.clone(),
                    // From argv or getcwd, so without a NUL byte; were one
                    // there, the empty path would fail to open, and say so.
                    c_path: sys::cstring(path).unwrap_or_default(),
                    file: None,
                    id: (0, 0),
                    fresh: false,
                    size: 0,
                    failing: false,
                }),
                !config.quiet,
            ),
        };
        let mut logger = Logger {
            file,
            max_bytes: config.max_bytes,
            backups: config.backups,
            to_stderr,
            verbose: config.verbose,
            // Grows to what a flood needs and keeps it (cleared, not freed).
            pending: Vec::with_capacity(4096),
            clock: Clock::new(Zone::local()),
        };
        if let Some(sink) = logger.file.as_mut() {
            if let Err(e) = sink.reopen() {
                sink.fail(&e);
            }
        }
        logger
    }

    /// Whether log lines already reach stderr.
    pub fn copies_to_stderr(&self) -> bool {
        self.to_stderr
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn debug(&mut self, message: &str) {
        if self.verbose {
            self.line(Level::Debug, message);
        }
    }

    pub fn info(&mut self, message: &str) {
        self.line(Level::Info, message);
    }

    pub fn warn(&mut self, message: &str) {
        self.line(Level::Warn, message);
    }

    pub fn line(&mut self, level: Level, message: &str) {
        self.push_parts(level, &[message.as_bytes()], true);
    }

    /// A line a program printed: `INFO NAME stdout: LINE`.
    pub fn output(&mut self, name: &str, stream: Stream, line: &[u8]) {
        self.push_parts(
            Level::Info,
            &[name.as_bytes(), b" ", stream.word().as_bytes(), b": ", line],
            false,
        );
    }

    /// Reads the clock for the program lines that follow: the lines of one
    /// read from a pipe arrived together and share a stamp, which saves a
    /// clock read per line in a flood.
    pub fn tick(&mut self) {
        self.clock.now();
    }

    /// `fresh`: read the clock for this line (events) or use the last
    /// reading (program output, after `tick`).
    fn push_parts(&mut self, level: Level, parts: &[&[u8]], fresh: bool) {
        let len = STAMP_LEN
            + 1
            + level.word().len()
            + 1
            + parts.iter().map(|p| p.len()).sum::<usize>()
            + 1;
        self.make_room(len);
        let stamp = if fresh {
            self.clock.now()
        } else {
            self.clock.last()
        };
        self.pending.extend_from_slice(stamp);
        self.pending.push(b' ');
        self.pending.extend_from_slice(level.word().as_bytes());
        self.pending.push(b' ');
        for part in parts {
            self.pending.extend_from_slice(part);
        }
        self.pending.push(b'\n');
    }

    /// Rotates before a line that would push the file past `max_bytes`.
    fn make_room(&mut self, line_len: usize) {
        let Some(sink) = self.file.as_ref() else {
            return;
        };
        if self.max_bytes == 0 {
            return;
        }
        let used = sink.size.saturating_add(self.pending.len() as u64);
        if used > 0 && used.saturating_add(line_len as u64) > self.max_bytes {
            self.flush();
            if let Some(sink) = self.file.as_mut() {
                if !sink.failing {
                    let result = sink.rotate(self.backups);
                    if let Err(e) = result {
                        sink.fail(&e);
                    }
                }
            }
        }
    }

    /// Writes what is pending: to the file, and to stderr unless quiet.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut to_stderr = self.to_stderr;
        if let Some(sink) = self.file.as_mut() {
            if let Err(e) = sink.write(&self.pending) {
                sink.fail(&e);
                to_stderr = true;
            }
        }
        let mut newly_full = false;
        if to_stderr {
            newly_full = stderr::write(&self.pending) == stderr::Outcome::Dropped { newly: true };
        }
        self.pending.clear();
        if newly_full && self.file.as_ref().is_some_and(|f| !f.failing) {
            // Said in the file, which has every line; stderr has no room.
            self.line(Level::Warn, messages::STDERR_FULL);
        }
    }
}

impl FileSink {
    fn reopen(&mut self) -> sys::Result<()> {
        self.file = None;
        let c_path = &self.c_path;
        // Never write through a link someone planted at the log's place.
        let flags =
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let file = match sys::open(c_path, flags, 0o640) {
            // The folder is missing (never made, or deleted): make it.
            Err(sys::Error::Os(libc::ENOENT)) => {
                if let Some(parent) = path::parent(&self.path).filter(|p| !p.is_empty()) {
                    sys::create_dir_all(parent, 0o750)?;
                }
                sys::open(c_path, flags, 0o640)?
            }
            other => other?,
        };
        let meta = sys::fstat(file.raw())?;
        if !meta.is_file() {
            return Err(sys::Error::Other("not a regular file"));
        }
        self.size = meta.size;
        self.id = meta.id;
        self.fresh = true;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> sys::Result<()> {
        // The path may no longer name the open file: deleted (every line
        // would be lost) or renamed away by an outside logrotate (they would
        // go on into the old file). Either way, open the path anew. lstat,
        // as the file is opened with O_NOFOLLOW.
        let moved = self.file.is_none()
            || (!self.fresh && sys::lstat(&self.c_path).map_or(true, |m| m.id != self.id));
        self.fresh = false;
        if moved {
            self.reopen()?;
        }
        let Some(file) = self.file.as_ref() else {
            return Err(sys::Error::Other("not open"));
        };
        sys::write_all(file.raw(), bytes)?;
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.failing {
            self.failing = false;
            stderr::write(messages::log_writable_again(&self.path).as_bytes());
        }
        Ok(())
    }

    /// FILE.K-1 → FILE.K, …, FILE → FILE.1, then a fresh FILE. With no
    /// backups the file just starts over.
    fn rotate(&mut self, backups: u32) -> sys::Result<()> {
        if backups == 0 {
            if let Some(file) = self.file.as_ref() {
                sys::truncate_to_zero(file.raw())?;
            }
            self.size = 0;
            return Ok(());
        }
        for k in (1..backups).rev() {
            let from = numbered(&self.path, k)?;
            if sys::exists(&from) {
                sys::rename(&from, &numbered(&self.path, k + 1)?)?;
            }
        }
        sys::rename(&self.c_path, &numbered(&self.path, 1)?)?;
        self.reopen()
    }

    fn fail(&mut self, error: &sys::Error) {
        self.file = None;
        if !self.failing {
            self.failing = true;
            stderr::write(messages::log_unwritable(&self.path, error).as_bytes());
        }
    }
}

fn numbered(path: &[u8], k: u32) -> sys::Result<CString> {
    let mut name = path.to_vec();
    name.extend_from_slice(format!(".{k}").as_bytes());
    sys::cstring(&name)
}

const STAMP_LEN: usize = 23;

/// The local-time stamp, with the date and time formatted once a second.
struct Clock {
    zone: Zone,
    second: i64,
    /// `YYYY-MM-DD HH:MM:SS,mmm`
    text: [u8; STAMP_LEN],
}

impl Clock {
    fn new(zone: Zone) -> Clock {
        Clock {
            zone,
            second: 0,
            text: [0; STAMP_LEN],
        }
    }

    /// The last reading, or a fresh one if there was none.
    fn last(&mut self) -> &[u8] {
        if self.text[0] == 0 {
            return self.now();
        }
        &self.text
    }

    fn now(&mut self) -> &[u8] {
        let (sec, nsec) = realtime();
        if sec != self.second || self.text[0] == 0 {
            self.second = sec;
            let (year, month, day, hour, minute, second) =
                localtime::civil(self.zone.to_local(sec));
            let fields = [
                (year, 4, b'-'),
                (i64::from(month), 2, b'-'),
                (i64::from(day), 2, b' '),
                (i64::from(hour), 2, b':'),
                (i64::from(minute), 2, b':'),
                (i64::from(second), 2, b','),
            ];
            // By hand rather than format!: this runs once a second in a
            // flood and on every start, where core::fmt costs thousands of
            // instructions.
            let mut at = 0;
            for (value, width, separator) in fields {
                // Right to left; a year past 9999 keeps its last 4 digits.
                let mut rest = value.rem_euclid(10_000);
                for i in (0..width).rev() {
                    if let Some(slot) = self.text.get_mut(at + i) {
                        *slot = b'0' + (rest % 10) as u8;
                    }
                    rest /= 10;
                }
                at += width;
                if let Some(slot) = self.text.get_mut(at) {
                    *slot = separator;
                }
                at += 1;
            }
        }
        let ms = (nsec / 1_000_000).clamp(0, 999);
        if let Some(tail) = self.text.get_mut(20..23) {
            tail.copy_from_slice(&[
                b'0' + (ms / 100) as u8,
                b'0' + (ms / 10 % 10) as u8,
                b'0' + (ms % 10) as u8,
            ]);
        }
        &self.text
    }
}

fn realtime() -> (i64, i64) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    fn config(path: &Path, max: u64, backups: u32) -> LogConfig {
        LogConfig {
            target: LogTarget::File(path.as_os_str().as_bytes().to_vec()),
            max_bytes: max,
            backups,
            quiet: true,
            verbose: false,
        }
    }

    fn numbered(path: &Path, k: u32) -> PathBuf {
        PathBuf::from(format!("{}.{k}", path.display()))
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cocalc-init-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn line_format_is_supervisords() {
        let dir = tempdir("format");
        let path = dir.join("sub/log");
        let mut log = Logger::open(&config(&path, 0, 0));
        log.info("exited: x (exit status 0; expected)");
        log.output("x", Stream::Stderr, b"boom");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let (stamp, rest) = lines[0].split_at(23);
        assert_eq!(rest, " INFO exited: x (exit status 0; expected)");
        let b = stamp.as_bytes();
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19]),
            (b'-', b'-', b' ', b':', b':', b',')
        );
        assert!(stamp.starts_with("20"));
        assert!(lines[1].ends_with(" INFO x stderr: boom"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_every_line_and_bounds_each_file() {
        let dir = tempdir("rotate");
        let path = dir.join("log");
        let mut log = Logger::open(&config(&path, 300, 2));
        for i in 0..20 {
            log.info(&format!("line {i:02}"));
            if i % 3 == 0 {
                log.flush();
            }
        }
        log.flush();
        let mut all = String::new();
        for p in [numbered(&path, 2), numbered(&path, 1), path.clone()] {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.len() <= 300, "{} has {}", p.display(), text.len());
            all.push_str(&text);
        }
        assert!(!numbered(&path, 3).exists());
        let nums: Vec<&str> = all.lines().map(|l| &l[l.len() - 2..]).collect();
        // The newest lines are all kept, in order, with nothing in between lost.
        let last: Vec<String> = (20 - nums.len()..20).map(|i| format!("{i:02}")).collect();
        assert_eq!(nums, last);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_whole_into_a_fresh_file() {
        let dir = tempdir("long");
        let path = dir.join("log");
        let mut log = Logger::open(&config(&path, 100, 1));
        log.info("short");
        log.info(&"x".repeat(500));
        log.flush();
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains(&"x".repeat(500)));
        assert!(
            std::fs::read_to_string(numbered(&path, 1))
                .unwrap()
                .contains("short")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_backups_means_the_file_starts_over() {
        let dir = tempdir("nobackup");
        let path = dir.join("log");
        let mut log = Logger::open(&config(&path, 100, 0));
        for i in 0..10 {
            log.info(&format!("n{i}"));
        }
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= 100 && text.contains("n9"));
        assert!(!numbered(&path, 1).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deleted_log_file_is_made_again() {
        let dir = tempdir("deleted");
        let path = dir.join("log");
        let mut log = Logger::open(&config(&path, 0, 0));
        log.info("before");
        log.flush();
        std::fs::remove_dir_all(&dir).unwrap();
        log.info("after");
        log.flush();
        assert!(std::fs::read_to_string(&path).unwrap().contains("after"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_and_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("modes");
        let path = dir.join("a/log");
        let mut log = Logger::open(&config(&path, 0, 0));
        log.info("x");
        log.flush();
        let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let dir_mode = std::fs::metadata(dir.join("a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(file_mode & !0o640, 0, "{file_mode:o}");
        assert_eq!(dir_mode & !0o750, 0, "{dir_mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempdir("symlink");
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target");
        std::fs::write(&target, "").unwrap();
        let path = dir.join("log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut log = Logger::open(&config(&path, 0, 0));
        log.info("secret");
        log.flush();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
