//! Program output that goes raw (as printed: no stamp, no name) to a place
//! of its own: a file, rotated by size, or init's own stdout or stderr.
//! One outlet a place, shared by every stream that names it, so that lines
//! of several programs never cut into each other: each arrives whole, and
//! a write holds whole lines only.
//!
//! A file does not block: it is written at once, and when it cannot be,
//! its lines go to init's log instead (said once) rather than nowhere.
//! Init's stdout or stderr can (a full pipe, a stalled log driver): what
//! does not fit waits in a bounded buffer, written when the fd has room
//! (the loop polls it for that); past the bound, whole lines are dropped
//! and counted, and one WARN line says how many once there is room again.
//! No outlet ever stalls the loop or another program.

use std::io;
use std::os::fd::BorrowedFd;

use crate::destination::{Output, Place};
use crate::logging;
use crate::messages;
use crate::rotating::{Modes, RotatingFile};
use crate::stdio::{STDERR, STDOUT, StdStream};
use crate::values::Stream;

/// What a full stdout or stderr may hold back before lines are dropped.
pub const HELD_MAX: usize = 256 * 1024;

/// A program's output file, as supervisord makes it (under the usual
/// umask): the program's own user, in a container, may read it.
const SHARED: Modes = Modes {
    file: 0o644,
    folder: 0o755,
};

/// An outlet's place in [`Outlets`]; outlets are only added, never
/// removed, so an id stays valid for init's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutletId(usize);

enum Target {
    File {
        file: RotatingFile,
        max_bytes: u64,
        backups: u32,
        /// The failure has been logged and not yet cleared.
        failing: bool,
    },
    Std {
        stream: &'static StdStream,
        /// Whole lines not yet written (the first may be partly written).
        held: Vec<u8>,
        dropped_lines: u64,
        dropped_bytes: u64,
    },
}

struct Outlet {
    place: Place,
    target: Target,
}

#[derive(Default)]
pub struct Outlets {
    list: Vec<Outlet>,
    /// The lines of one read, gathered before they go out in one write.
    lines: Vec<u8>,
}

impl Outlets {
    /// The outlet of `output`'s place, made (and a file opened) the first
    /// time it is named; None for the log and for NONE.
    pub fn id_for(&mut self, output: &Output) -> Option<OutletId> {
        if let Some(at) = self.list.iter().position(|o| o.place == output.place) {
            return Some(OutletId(at));
        }
        let target = match &output.place {
            Place::Log | Place::Discard => return None,
            Place::Stdout => std_target(STDOUT.open()),
            Place::Stderr => std_target(&STDERR),
            Place::File(path) => {
                let mut file = RotatingFile::new(path.clone(), SHARED);
                // Made at the first start, as supervisord does, so that it
                // is there to look at; a failure is said at the first line.
                let _ = file.open();
                Target::File {
                    file,
                    max_bytes: output.max_bytes,
                    backups: output.backups,
                    failing: false,
                }
            }
        };
        self.list.push(Outlet {
            place: output.place.clone(),
            target,
        });
        Some(OutletId(self.list.len() - 1))
    }

    /// Adds whole lines of a read (or a piece of a line too long to wait
    /// for, or the last one at the end), as printed.
    pub fn push(&mut self, bytes: &[u8]) {
        self.lines.extend_from_slice(bytes);
    }

    /// Sends the lines gathered since the last call to `id`, from program
    /// NAME's `stream` (named in the log if they must go there instead).
    pub fn send(&mut self, id: OutletId, name: &str, stream: Stream) {
        if self.lines.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.lines);
        if let Some(outlet) = self.list.get_mut(id.0) {
            match &mut outlet.target {
                Target::File {
                    file,
                    max_bytes,
                    backups,
                    failing,
                } => {
                    if let Err(e) = write_rotating(file, *max_bytes, *backups, &lines) {
                        file.close();
                        if !*failing {
                            *failing = true;
                            logging::warn(messages::output_file_unwritable(file.path(), &e));
                        }
                        for line in lines.split_inclusive(|&b| b == b'\n') {
                            let line = line.strip_suffix(b"\n").unwrap_or(line);
                            logging::output(name, stream, line);
                        }
                    } else if *failing {
                        *failing = false;
                        logging::info(messages::output_file_writable_again(file.path()));
                    }
                }
                Target::Std {
                    stream: std_stream,
                    held,
                    dropped_lines,
                    dropped_bytes,
                } => {
                    // Lines already held wait for the poll to say there is
                    // room: no write that would only find it full.
                    let waiting = !held.is_empty();
                    hold(held, &lines, dropped_lines, dropped_bytes);
                    if !waiting {
                        write_held(std_stream, held, dropped_lines, dropped_bytes);
                    }
                }
            }
        }
        // Kept, empty, for its capacity.
        self.lines = lines;
        self.lines.clear();
    }

    /// The outlets that hold lines back, with the fd to wait on for room.
    pub fn blocked(&self, mut each: impl FnMut(OutletId, BorrowedFd<'static>)) {
        for (at, outlet) in self.list.iter().enumerate() {
            if let Target::Std { stream, held, .. } = &outlet.target {
                if let Some(fd) = stream.poll_fd().filter(|_| !held.is_empty()) {
                    each(OutletId(at), fd);
                }
            }
        }
    }

    /// The fd of `id` has room: writes what it can of what is held.
    pub fn on_room(&mut self, id: OutletId) {
        if let Some(outlet) = self.list.get_mut(id.0) {
            if let Target::Std {
                stream,
                held,
                dropped_lines,
                dropped_bytes,
            } = &mut outlet.target
            {
                write_held(stream, held, dropped_lines, dropped_bytes);
            }
        }
    }

    /// At the end: what could not be written is at least counted.
    pub fn finish(&mut self) {
        for outlet in &mut self.list {
            if let Target::Std {
                stream,
                held,
                dropped_lines,
                dropped_bytes,
            } = &mut outlet.target
            {
                write_held(stream, held, dropped_lines, dropped_bytes);
                if !held.is_empty() {
                    *dropped_lines += held.iter().filter(|&&b| b == b'\n').count() as u64;
                    *dropped_bytes += held.len() as u64;
                    held.clear();
                    logging::warn(messages::output_dropped(
                        stream.name(),
                        *dropped_lines,
                        *dropped_bytes,
                    ));
                }
            }
        }
    }
}

fn std_target(stream: &'static StdStream) -> Target {
    Target::Std {
        stream,
        held: Vec::new(),
        dropped_lines: 0,
        dropped_bytes: 0,
    }
}

/// `lines` into a file, rotating between lines: no file grows past
/// `max_bytes` unless one line alone is longer (it goes whole into a fresh
/// file).
fn write_rotating(
    file: &mut RotatingFile,
    max_bytes: u64,
    backups: u32,
    lines: &[u8],
) -> io::Result<()> {
    if file.fits(lines.len() as u64, max_bytes) {
        return file.write(lines);
    }
    let mut start = 0;
    let mut end = 0;
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let len = line.len() as u64;
        if file.would_overflow((end - start) as u64, len, max_bytes) {
            file.write(lines.get(start..end).unwrap_or(&[]))?;
            file.rotate(backups)?;
            start = end;
        }
        end += line.len();
    }
    file.write(lines.get(start..end).unwrap_or(&[]))
}

/// Appends `lines` to what is held, dropping whole lines past
/// [`HELD_MAX`].
fn hold(held: &mut Vec<u8>, lines: &[u8], dropped_lines: &mut u64, dropped_bytes: &mut u64) {
    if held.len() + lines.len() <= HELD_MAX {
        held.extend_from_slice(lines);
        return;
    }
    for line in lines.split_inclusive(|&b| b == b'\n') {
        if held.len() + line.len() <= HELD_MAX {
            held.extend_from_slice(line);
        } else {
            *dropped_lines += 1;
            *dropped_bytes += line.len() as u64;
        }
    }
}

/// Writes what is held until the fd is full; once all is out, says what
/// was dropped meanwhile.
fn write_held(
    stream: &StdStream,
    held: &mut Vec<u8>,
    dropped_lines: &mut u64,
    dropped_bytes: &mut u64,
) {
    while !held.is_empty() {
        match stream.write_once(held) {
            Ok(0) => break,
            Ok(n) => {
                held.drain(..n.min(held.len()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Closed, a broken pipe: nobody reads it; nothing to keep.
            Err(_) => {
                *dropped_lines += held.iter().filter(|&&b| b == b'\n').count() as u64;
                *dropped_bytes += held.len() as u64;
                held.clear();
            }
        }
    }
    if *dropped_lines > 0 || *dropped_bytes > 0 {
        logging::warn(messages::output_dropped(
            stream.name(),
            *dropped_lines,
            *dropped_bytes,
        ));
        *dropped_lines = 0;
        *dropped_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_drops_whole_lines_past_the_bound() {
        let mut held = vec![b'x'; HELD_MAX - 12];
        let (mut lines, mut bytes) = (0, 0);
        hold(
            &mut held,
            b"12345\n123456789012\n1234\n",
            &mut lines,
            &mut bytes,
        );
        assert_eq!(held.len(), HELD_MAX - 1);
        assert!(held.ends_with(b"12345\n1234\n"));
        assert_eq!((lines, bytes), (1, 13));
    }

    #[test]
    fn files_rotate_between_lines() {
        let dir = std::env::temp_dir().join(format!("cocalc-init-outlet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/out.log");
        let mut file = RotatingFile::new(path.clone(), SHARED);
        let mut all = Vec::new();
        for i in 0..50 {
            // Now and then a block larger than the limit, as a fast
            // program's one read is.
            let n = if i % 7 == 0 { 6 } else { 1 };
            let block = format!("line {i:02} of the test\nsecond {i:02}\n").repeat(n);
            all.extend_from_slice(block.as_bytes());
            write_rotating(&mut file, 100, 2, block.as_bytes()).unwrap();
        }
        let mut kept = Vec::new();
        for p in [
            crate::rotating::numbered(&path, 2),
            crate::rotating::numbered(&path, 1),
            path.clone(),
        ] {
            let bytes = std::fs::read(&p).unwrap();
            assert!(bytes.len() <= 100, "{} has {}", p.display(), bytes.len());
            assert!(bytes.ends_with(b"\n"));
            kept.extend(bytes);
        }
        assert!(!crate::rotating::numbered(&path, 3).exists());
        assert!(all.ends_with(&kept), "the newest lines, whole and in order");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
