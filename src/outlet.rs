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
use std::time::Instant;

use nix::poll::PollTimeout;

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
    Std(StdOut),
}

/// The raw writer of init's stdout or stderr.
struct StdOut {
    stream: &'static StdStream,
    /// Whole lines not yet written (the first may be partly written).
    held: Vec<u8>,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// It cannot be written at all (closed, no reader): said once, and
    /// what is sent there from then on is dropped without a word.
    gone: bool,
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
                    if let Err((written, e)) = write_rotating(file, *max_bytes, *backups, &lines) {
                        file.close();
                        if !*failing {
                            *failing = true;
                            logging::warn(messages::output_file_unwritable(file.path(), &e));
                        }
                        // What did not reach the file, and only that.
                        let rest = lines.get(written..).unwrap_or(&[]);
                        for line in rest.split_inclusive(|&b| b == b'\n') {
                            let line = line.strip_suffix(b"\n").unwrap_or(line);
                            logging::output(name, stream, line);
                        }
                    } else if *failing {
                        *failing = false;
                        logging::info(messages::output_file_writable_again(file.path()));
                    }
                }
                Target::Std(out) => out.send(&lines),
            }
        }
        // Kept, empty, for its capacity.
        self.lines = lines;
        self.lines.clear();
    }

    /// The outlets that hold lines back, with the fd to wait on for room.
    pub fn blocked(&self, mut each: impl FnMut(OutletId, BorrowedFd<'static>)) {
        for (at, outlet) in self.list.iter().enumerate() {
            if let Target::Std(out) = &outlet.target {
                if let Some(fd) = out.stream.poll_fd().filter(|_| !out.held.is_empty()) {
                    each(OutletId(at), fd);
                }
            }
        }
    }

    /// The fd of `id` has room: writes what it can of what is held.
    pub fn on_room(&mut self, id: OutletId) {
        if let Some(Target::Std(out)) = self.list.get_mut(id.0).map(|o| &mut o.target) {
            out.write();
        }
    }

    /// At the end: what is held gets until `deadline` to go out (a reader
    /// a moment late still has every line); the rest is counted.
    pub fn finish(&mut self, deadline: Instant) {
        for outlet in &mut self.list {
            if let Target::Std(out) = &mut outlet.target {
                out.finish(deadline);
            }
        }
    }
}

fn std_target(stream: &'static StdStream) -> Target {
    Target::Std(StdOut {
        stream,
        held: Vec::new(),
        dropped_lines: 0,
        dropped_bytes: 0,
        gone: false,
    })
}

impl StdOut {
    fn send(&mut self, lines: &[u8]) {
        if self.gone {
            self.count_dropped(lines);
            return;
        }
        // Lines already held wait for the poll to say there is room: no
        // write that would only find it full. (Where there is no fd to
        // poll, every send tries.)
        let waiting = !self.held.is_empty() && self.stream.poll_fd().is_some();
        hold(
            &mut self.held,
            lines,
            &mut self.dropped_lines,
            &mut self.dropped_bytes,
        );
        if !waiting {
            self.write();
        }
    }

    /// Writes what is held until the fd is full; once all is out, says
    /// what was dropped meanwhile.
    fn write(&mut self) {
        while !self.held.is_empty() {
            match self.stream.write_raw(&self.held) {
                Ok(0) => break,
                Ok(n) => {
                    self.held.drain(..n.min(self.held.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Closed, no reader: nothing will ever go; said once.
                Err(e) => {
                    self.gone = true;
                    self.stream.forgive();
                    self.drop_held();
                    logging::warn(messages::output_gone(self.stream.name(), &e));
                    return;
                }
            }
        }
        self.say_dropped();
    }

    fn finish(&mut self, deadline: Instant) {
        while !self.held.is_empty() && !self.gone {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = PollTimeout::try_from(left.as_millis()).unwrap_or(PollTimeout::MAX);
            if left.is_zero() || !self.stream.wait_room(wait) {
                break;
            }
            self.write();
        }
        if !self.held.is_empty() && !self.gone {
            // A line written in part is ended, so that what follows on the
            // stream (the log's last lines) starts a line of its own.
            if self.stream.owes() {
                let _ = self.stream.write_raw(b"\n");
            }
            self.stream.forgive();
            self.drop_held();
        }
        self.say_dropped();
    }

    fn drop_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.count_dropped(&held);
        // Kept, empty, for its capacity.
        self.held = held;
        self.held.clear();
    }

    fn count_dropped(&mut self, bytes: &[u8]) {
        self.dropped_lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        self.dropped_bytes += bytes.len() as u64;
    }

    /// One line for what was dropped since the last, if anything was.
    fn say_dropped(&mut self) {
        if self.dropped_bytes > 0 && !self.gone {
            logging::warn(messages::output_dropped(
                self.stream.name(),
                self.dropped_lines,
                self.dropped_bytes,
            ));
            self.dropped_lines = 0;
            self.dropped_bytes = 0;
        }
    }
}

/// `lines` into a file, rotating between lines: no file grows past
/// `max_bytes` unless one line alone is longer (it goes whole into a fresh
/// file). A failure says where in `lines` the block that failed began:
/// what came before it is in the file (a block that failed part-way is
/// counted as not written).
fn write_rotating(
    file: &mut RotatingFile,
    max_bytes: u64,
    backups: u32,
    lines: &[u8],
) -> Result<(), (usize, io::Error)> {
    if file.fits(lines.len() as u64, max_bytes) {
        return file.write(lines).map_err(|e| (0, e));
    }
    let mut start = 0;
    let mut end = 0;
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let len = line.len() as u64;
        if file.would_overflow((end - start) as u64, len, max_bytes) {
            let block = lines.get(start..end).unwrap_or(&[]);
            file.write(block).map_err(|e| (start, e))?;
            file.rotate(backups).map_err(|e| (end, e))?;
            start = end;
        }
        end += line.len();
    }
    let block = lines.get(start..end).unwrap_or(&[]);
    file.write(block).map_err(|e| (start, e))
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
