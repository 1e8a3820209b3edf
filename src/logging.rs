//! Every log line is a `log` record, written by one simplelog
//! `WriteLogger` into our sink ([`crate::logfile::Sink`]), which owns the
//! file, rotation, failures and the copy to standard error.
//!
//! The line is supervisord's, exactly: `2026-11-27 16:26:02,524 INFO
//! exited: project_init_sh (exit status 0; expected)` — people copy it into
//! `grep`. simplelog's own columns (level in brackets, time, thread,
//! target, location) are all off; the stamp and supervisord's level word
//! are written at the head of the message here, by the one function every
//! line goes through.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};

use crate::config::LogConfig;
use crate::logfile::Sink;
use crate::stamp;
use crate::values::{Level, Stream};

fn to_log(level: Level) -> log::Level {
    match level {
        Level::Debug => log::Level::Debug,
        Level::Info => log::Level::Info,
        Level::Warn => log::Level::Warn,
        Level::Error | Level::Critical => log::Level::Error,
    }
}

/// Opens the log and makes it the logger of the process. A file that
/// cannot be opened now is not fatal: lines go to standard error until it
/// can be. Called once. Returns whether log lines reach standard error.
pub fn init(config: &LogConfig) -> bool {
    // The zone's rules, read once, before the first stamp.
    stamp::zone();
    let filter = match config.level {
        Level::Debug => LevelFilter::Debug,
        Level::Info => LevelFilter::Info,
        Level::Warn => LevelFilter::Warn,
        Level::Error | Level::Critical => LevelFilter::Error,
    };
    let format = ConfigBuilder::new()
        .set_max_level(LevelFilter::Off)
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    let sink = Sink::open(config);
    let on_stderr = sink.copies_to_stderr();
    let shared = sink.shared_warning();
    // Fails only if a logger is already set, which init never does twice.
    let _ = WriteLogger::init(filter, format, sink);
    if let Some(warning) = shared {
        warn(warning);
    }
    on_stderr
}

/// One line of init's own: `STAMP LEVEL message`. The message is written
/// (and the stamp read) only if the level is kept: `log!` checks first.
pub fn line(level: Level, message: impl fmt::Display) {
    let level_of_log = to_log(level);
    if level_of_log <= log::max_level() {
        UNFLUSHED.store(true, Relaxed);
        log::log!(level_of_log, "{} {} {message}", stamp::now(), level.word());
    }
}

pub fn debug(message: impl fmt::Display) {
    line(Level::Debug, message);
}

pub fn info(message: impl fmt::Display) {
    line(Level::Info, message);
}

pub fn warn(message: impl fmt::Display) {
    line(Level::Warn, message);
}

pub fn error(message: impl fmt::Display) {
    line(Level::Error, message);
}

/// A line a program printed: `STAMP INFO NAME stdout: LINE`.
pub fn output(name: &str, stream: Stream, line: &[u8]) {
    UNFLUSHED.store(true, Relaxed);
    log::info!(
        "{} INFO {name} {}: {}",
        stamp::now(),
        stream.word(),
        Lossy(line)
    );
}

/// The same, stamped `at` (the stamp the program's history keeps with it).
pub fn output_at(at: stamp::Stamp, name: &str, stream: Stream, line: &[u8]) {
    UNFLUSHED.store(true, Relaxed);
    log::info!("{at} INFO {name} {}: {}", stream.word(), Lossy(line));
}

/// A line has gone to the sink since the last [`flush`].
static UNFLUSHED: AtomicBool = AtomicBool::new(false);

/// Writes what the sink holds: once a turn of the main loop, before it
/// sleeps, so a burst of lines costs one write. A turn that logged nothing
/// costs no lock.
pub fn flush() {
    if UNFLUSHED.swap(false, Relaxed) {
        log::logger().flush();
    }
}

/// Program output as text: valid UTF-8 as it is (no copy), each invalid
/// sequence as U+FFFD.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nearly every line is valid: one check, then written whole.
        if let Ok(text) = std::str::from_utf8(self.0) {
            return f.write_str(text);
        }
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(Lossy(b"plain").to_string(), "plain");
        assert_eq!(
            Lossy(b"a\xffb\xfe\xfd").to_string(),
            "a\u{fffd}b\u{fffd}\u{fffd}"
        );
        assert_eq!(Lossy(b"\xe2\x82").to_string(), "\u{fffd}");
        assert_eq!(Lossy(b"\x00\r").to_string(), "\x00\r");
    }
}
