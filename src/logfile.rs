//! The log sink: where simplelog writes every line. It appends to the log
//! file, rotates it, copies lines to standard error, and survives every
//! failure.
//!
//! simplelog writes a record in several pieces and drops the writer's
//! errors, so the sink gathers the pieces up to the one that ends the
//! record with its newline, never returns an error (it handles failures itself, and says so once on stderr), and
//! never logs (the logger's lock is held while it runs).
//!
//! Invariants:
//! - Lines are gathered in `pending` and written at [`Write::flush`], once
//!   per turn of the main loop, so a burst of output costs one `write`.
//! - No file grows past `max_bytes` (unless one line alone is longer: it
//!   goes whole into a fresh file).
//! - A line that could not reach the file goes to standard error, even with
//!   `--quiet`; the failure is said once, and the file is tried again at
//!   every later flush (reopened, its folder made again).

use std::io::{self, Write};

use crate::config::{LogConfig, LogTarget};
use crate::messages;
use crate::rotating::{PRIVATE, RotatingFile};
use crate::stamp;
use crate::stdio::{self, STDERR, STDOUT, StdStream};
use crate::values::Level;

/// The file side of the log.
struct FileSink {
    file: RotatingFile,
    /// The failure has been told on stderr and not yet cleared.
    failing: bool,
}

pub struct Sink {
    file: Option<FileSink>,
    max_bytes: u64,
    backups: u32,
    /// Where lines are copied besides the file: standard error unless
    /// quiet, or the whole log with `-l -` or `-l /dev/stdout`.
    copy: Option<&'static StdStream>,
    /// Lines not yet written, and the start of one still being written.
    pending: Vec<u8>,
    /// Where in `pending` the line being written starts.
    line_start: usize,
}

impl Sink {
    pub fn open(config: &LogConfig) -> Sink {
        let (file, copy) = match &config.target {
            LogTarget::Stderr => {
                STDERR.set_unbacked();
                (None, Some(&STDERR))
            }
            LogTarget::Stdout => {
                STDOUT.set_unbacked();
                (None, Some(STDOUT.open()))
            }
            LogTarget::File(path) => (
                Some(FileSink {
                    file: RotatingFile::new(path.clone(), PRIVATE),
                    failing: false,
                }),
                (!config.quiet).then_some(&STDERR),
            ),
        };
        let mut sink = Sink {
            file,
            max_bytes: config.max_bytes,
            backups: config.backups,
            copy,
            // Grows to what a flood needs and keeps it (cleared, not freed).
            pending: Vec::with_capacity(4096),
            line_start: 0,
        };
        if let Some(file) = sink.file.as_mut() {
            match file.file.open() {
                // The log is the device (/dev/null, a terminal): lines go
                // there, not also to stderr.
                Ok(()) if file.file.is_device() => sink.copy = None,
                Ok(()) => {}
                Err(e) => file.fail(&e),
            }
        }
        sink
    }

    /// What to say if another writer held the log file when it was
    /// opened (another init on the same file).
    pub fn shared_warning(&self) -> Option<String> {
        let file = &self.file.as_ref()?.file;
        let holder = file.shared_with()?;
        Some(messages::log_shared(file.path(), holder).to_string())
    }

    /// Whether log lines reach standard error.
    pub fn copies_to_stderr(&self) -> bool {
        self.copy
            .is_some_and(|stream| std::ptr::eq(stream, &STDERR))
    }

    /// A line is complete in `pending`: rotate first if it would push the
    /// file past `max_bytes`.
    fn end_line(&mut self) {
        let line_len = self.pending.len() - self.line_start;
        let over = match self.file.as_ref() {
            Some(file) if !file.failing => {
                file.file
                    .would_overflow(self.line_start as u64, line_len as u64, self.max_bytes)
            }
            _ => false,
        };
        if over {
            let line = self.pending.split_off(self.line_start);
            self.write_out();
            if let Some(file) = self.file.as_mut() {
                if !file.failing {
                    if let Err(e) = file.file.rotate(self.backups) {
                        file.fail(&e);
                    }
                }
            }
            self.pending.extend_from_slice(&line);
        }
        self.line_start = self.pending.len();
    }

    /// Writes the complete lines: to the file, and to stderr unless quiet.
    fn write_out(&mut self) {
        let done = self.line_start.min(self.pending.len());
        let Some(lines) = self.pending.get(..done).filter(|l| !l.is_empty()) else {
            return;
        };
        let mut copy = self.copy;
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.write(lines) {
                file.fail(&e);
                copy = Some(&STDERR);
            }
        }
        let mut newly_full = false;
        if let Some(stream) = copy {
            newly_full = stream.write(lines) == stdio::Outcome::Dropped { newly: true };
        }
        self.pending.drain(..done);
        self.line_start = 0;
        if newly_full && self.file.as_ref().is_some_and(|f| !f.failing) {
            // Said in the file, which has every line; stderr has no room.
            // Written with the next lines.
            let note = format!(
                "{} {} {}\n",
                stamp::now(),
                Level::Warn.word(),
                messages::STDERR_FULL
            );
            self.pending.splice(0..0, note.bytes());
            self.line_start = note.len();
        }
    }
}

impl Write for Sink {
    /// simplelog writes a record in pieces, the last one ending with its
    /// newline: that piece ends the line. (A newline inside a message
    /// keeps the record whole, in one file.)
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        if bytes.last() == Some(&b'\n') {
            self.end_line();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out();
        Ok(())
    }
}

impl FileSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write(bytes)?;
        if self.failing {
            self.failing = false;
            stdio::write(messages::log_writable_again(self.file.path()).as_bytes());
        }
        Ok(())
    }

    fn fail(&mut self, error: &io::Error) {
        self.file.close();
        if !self.failing {
            self.failing = true;
            stdio::write(messages::log_unwritable(self.file.path(), error).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotating::numbered;
    use std::path::{Path, PathBuf};

    fn config(path: &Path, max: u64, backups: u32) -> LogConfig {
        LogConfig {
            target: LogTarget::File(path.to_path_buf()),
            max_bytes: max,
            backups,
            quiet: true,
            level: crate::values::Level::Info,
        }
    }

    /// Writes one line as simplelog would: in pieces.
    fn info(sink: &mut Sink, message: &str) {
        write!(sink, "{} INFO ", stamp::now()).unwrap();
        writeln!(sink, "{message}").unwrap();
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
        let mut log = Sink::open(&config(&path, 0, 0));
        info(&mut log, "exited: x (exit status 0; expected)");
        write!(log, "{} INFO x stderr: ", stamp::now()).unwrap();
        log.write_all(b"bo").unwrap();
        log.write_all(b"om\n").unwrap();
        log.flush().unwrap();
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
        let mut log = Sink::open(&config(&path, 300, 2));
        for i in 0..20 {
            info(&mut log, &format!("line {i:02}"));
            if i % 3 == 0 {
                log.flush().unwrap();
            }
        }
        log.flush().unwrap();
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
        let mut log = Sink::open(&config(&path, 100, 1));
        info(&mut log, "short");
        info(&mut log, &"x".repeat(500));
        log.flush().unwrap();
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
        let mut log = Sink::open(&config(&path, 100, 0));
        for i in 0..10 {
            info(&mut log, &format!("n{i}"));
        }
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= 100 && text.contains("n9"));
        assert!(!numbered(&path, 1).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deleted_log_file_is_made_again() {
        let dir = tempdir("deleted");
        let path = dir.join("log");
        let mut log = Sink::open(&config(&path, 0, 0));
        info(&mut log, "before");
        log.flush().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        info(&mut log, "after");
        log.flush().unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("after"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_and_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("modes");
        let path = dir.join("a/log");
        let mut log = Sink::open(&config(&path, 0, 0));
        info(&mut log, "x");
        log.flush().unwrap();
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
    fn a_character_device_is_written_without_rotation() {
        let mut log = Sink::open(&config(Path::new("/dev/null"), 10, 2));
        for i in 0..5 {
            info(&mut log, &format!("line {i}"));
        }
        log.flush().unwrap();
        let file = log.file.as_ref().unwrap();
        assert!(file.file.is_device() && !file.failing && file.file.is_open());
        assert!(!Path::new("/dev/null.1").exists());
    }

    #[test]
    fn a_folder_or_a_fifo_is_refused() {
        let dir = tempdir("kinds");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let log = Sink::open(&config(&dir.join("sub"), 0, 0));
        assert!(log.file.as_ref().unwrap().failing);
        nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let log = Sink::open(&config(&dir.join("fifo"), 0, 0));
        assert!(log.file.as_ref().unwrap().failing);
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
        let mut log = Sink::open(&config(&path, 0, 0));
        info(&mut log, "secret");
        log.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
