//! Program output → log lines, one way: a pipe's bytes → [`LineBuffer`]
//! → one log record a line ([`logging::output`]). A line longer than
//! [`MAX_LINE`] is cut into pieces of that size, never dropped; a partial
//! last line waits for its end until the program exits or the pipe closes.
//! Bytes that are not UTF-8 are logged as U+FFFD.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::{AsFd, BorrowedFd};

use crate::history::History;
use crate::logging;
use crate::messages;
use crate::outlet::{OutletId, Outlets};
use crate::table::ProgramId;
use crate::values::Stream;

/// The longest line logged in one piece.
pub const MAX_LINE: usize = 8 * 1024;

/// What remains of a line whose end has not arrived yet.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Feeds a chunk read from the pipe; calls `emit` for every line that is
    /// complete (without its newline).
    pub fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8])) {
        while let Some(at) = find_newline(chunk) {
            let (line, rest) = chunk.split_at(at);
            chunk = rest.get(1..).unwrap_or(&[]);
            if self.partial.is_empty() {
                emit_pieces(line, emit);
            } else {
                self.partial.extend_from_slice(line);
                emit_pieces(&self.partial, emit);
                self.partial.clear();
            }
        }
        if chunk.is_empty() {
            return;
        }
        self.hold(chunk, emit);
    }

    /// Keeps `rest`, the start of a line. A line that outgrows the limit
    /// goes out in pieces now, so that a program printing without
    /// newlines costs bounded memory. Only while more than a piece is
    /// held: where the next piece starts must be seen to cut between
    /// characters.
    fn hold(&mut self, rest: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.partial.extend_from_slice(rest);
        while self.partial.len() > MAX_LINE {
            let n = piece_len(&self.partial);
            if let Some(piece) = self.partial.get(..n) {
                emit(piece);
            }
            self.partial.drain(..n);
        }
    }

    /// Emits the partial last line, if any: the program has exited or its
    /// pipe has closed.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit_pieces(&self.partial, emit);
            self.partial.clear();
        }
        self.partial.shrink_to(0);
    }
}

impl LineBuffer {
    /// Feeds a chunk for a raw destination: `emit` gets the bytes as
    /// printed, up to the last newline of the chunk (the partial line held
    /// before it first), so that only whole lines go out; the rest waits
    /// for its newline, or goes out in pieces of [`MAX_LINE`] once it is
    /// longer. Nothing is split per line here: the cost is a chunk's.
    pub fn feed_raw(&mut self, chunk: &[u8], emit: &mut impl FnMut(&[u8])) {
        let rest = match chunk.iter().rposition(|&b| b == b'\n') {
            Some(at) => {
                let (whole, rest) = chunk.split_at(at + 1);
                if !self.partial.is_empty() {
                    emit(&self.partial);
                    self.partial.clear();
                }
                emit(whole);
                rest
            }
            None => chunk,
        };
        self.hold(rest, emit);
    }

    /// The partial last line, as printed (no newline added).
    pub fn finish_raw(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
        self.partial.shrink_to(0);
    }
}

/// The first newline. Through std's `BufRead` on a slice, which searches
/// with std's memchr, a word at a time: several times faster than a byte
/// loop on long output.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut reader = bytes;
    match reader.skip_until(b'\n') {
        Ok(n) if n > 0 && bytes.get(n - 1) == Some(&b'\n') => Some(n - 1),
        _ => None,
    }
}

fn emit_pieces(line: &[u8], emit: &mut impl FnMut(&[u8])) {
    if line.is_empty() {
        emit(line);
        return;
    }
    let mut rest = line;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(piece_len(rest));
        emit(piece);
        rest = tail;
    }
}

/// The length of the next piece of `bytes`: all of it up to [`MAX_LINE`];
/// past that, cut before a UTF-8 character rather than inside one (a cut
/// character would be logged as two U+FFFD), so up to 3 bytes shorter.
fn piece_len(bytes: &[u8]) -> usize {
    if bytes.len() <= MAX_LINE {
        return bytes.len();
    }
    let is_continuation = |at: usize| bytes.get(at).is_some_and(|b| b & 0xc0 == 0x80);
    let mut cut = MAX_LINE;
    while cut > MAX_LINE - 3 && is_continuation(cut) {
        cut -= 1;
    }
    // Not UTF-8 there anyway: the full piece.
    if is_continuation(cut) { MAX_LINE } else { cut }
}

/// One read from a pipe takes at most this much, so that one chatty
/// program cannot starve the others.
pub const READ_CHUNK: usize = 64 * 1024;
/// On a program's exit its pipes are drained of at most this many reads
/// (1 MiB) before the `exited:` line; the rest follows as it is read.
const DRAIN_READS: usize = 16;

/// Where a pipe's lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// init's log, a line each, stamped and tagged.
    Log,
    /// Raw, to an outlet of its own.
    Outlet(OutletId),
    /// Nowhere (`NONE`).
    Discard,
}

/// A read end of a program's stdout or stderr. It lives until its end,
/// which may come long after the program's (a grandchild can hold it open).
pub struct Pipe {
    /// Whose output it is.
    pub program: ProgramId,
    name: String,
    stream: Stream,
    dest: Dest,
    file: File,
    lines: LineBuffer,
    /// The last wait found it readable.
    ready: Cell<bool>,
}

/// Whether a pipe is still open after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeRead {
    Open,
    Closed,
}

impl Pipe {
    pub fn new(program: ProgramId, name: &str, stream: Stream, dest: Dest, file: File) -> Pipe {
        Pipe {
            program,
            name: name.to_string(),
            stream,
            dest,
            file,
            lines: LineBuffer::default(),
            ready: Cell::new(false),
        }
    }

    /// What the last wait found: set by the loop, taken by the read.
    pub fn mark_ready(&self, ready: bool) {
        self.ready.set(ready);
    }

    pub fn take_ready(&self) -> bool {
        self.ready.take()
    }

    /// One read (the loop's turn), its complete lines sent on; at the end
    /// of the pipe, the partial last line too.
    /// `history`: the program's, which keeps the lines that go to the log.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        outlets: &mut Outlets,
        history: Option<&mut History>,
    ) -> PipeRead {
        self.read_some(buf, 1, outlets, history)
    }

    /// The program has exited: what it wrote so far is sent on now, the
    /// partial last line included, so that it stands above the exit line.
    pub fn drain(
        &mut self,
        buf: &mut [u8],
        outlets: &mut Outlets,
        mut history: Option<&mut History>,
    ) -> PipeRead {
        let state = self.read_some(buf, DRAIN_READS, outlets, history.as_deref_mut());
        self.finish(outlets, history);
        state
    }

    fn read_some(
        &mut self,
        buf: &mut [u8],
        reads: usize,
        outlets: &mut Outlets,
        mut history: Option<&mut History>,
    ) -> PipeRead {
        for _ in 0..reads {
            match (&self.file).read(buf) {
                Ok(0) => {
                    self.finish(outlets, history);
                    return PipeRead::Closed;
                }
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or(&[]);
                    self.send(outlets, history.as_deref_mut(), chunk, false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PipeRead::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The pipe is dropped after this, so this is said once.
                    logging::error(messages::read_failed(&self.name, self.stream, &e));
                    self.finish(outlets, history);
                    return PipeRead::Closed;
                }
            }
        }
        PipeRead::Open
    }

    fn finish(&mut self, outlets: &mut Outlets, history: Option<&mut History>) {
        self.send(outlets, history, &[], true);
    }

    /// A chunk read (or, at `end`, the partial last line) to where this
    /// pipe's lines go.
    fn send(
        &mut self,
        outlets: &mut Outlets,
        mut history: Option<&mut History>,
        chunk: &[u8],
        end: bool,
    ) {
        let (name, stream) = (self.name.as_str(), self.stream);
        match self.dest {
            Dest::Log => {
                // One stamp for the log and the history: `tail` shows the
                // line as the log has it.
                let mut log = |line: &[u8]| {
                    let at = crate::stamp::now();
                    logging::output_at(at, name, stream, line);
                    if let Some(history) = history.as_deref_mut() {
                        history.push(at.as_bytes(), stream, line);
                    }
                };
                if end {
                    self.lines.finish(&mut log);
                } else {
                    self.lines.feed(chunk, &mut log);
                }
            }
            Dest::Outlet(id) => {
                let mut gather = |bytes: &[u8]| outlets.push(bytes);
                if end {
                    self.lines.finish_raw(&mut gather);
                } else {
                    self.lines.feed_raw(chunk, &mut gather);
                }
                outlets.send(id, name, stream);
            }
            Dest::Discard => {}
        }
    }
}

impl AsFd for Pipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], finish: bool) -> Vec<Vec<u8>> {
        let mut buf = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            buf.feed(c, &mut |l| out.push(l.to_vec()));
        }
        if finish {
            buf.finish(&mut |l| out.push(l.to_vec()));
        }
        out
    }

    /// What a raw destination gets: each piece, and the newline where the
    /// program printed one.
    fn raw(chunks: &[&[u8]]) -> Vec<u8> {
        let mut buf = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            let mut block = Vec::new();
            buf.feed_raw(c, &mut |l| block.extend_from_slice(l));
            // What one read sends: whole lines, or pieces of a line too
            // long to wait for.
            assert!(
                block.is_empty() || block.ends_with(b"\n") || block.len() >= MAX_LINE - 3,
                "{block:?}"
            );
            out.extend(block);
        }
        buf.finish_raw(&mut |l| out.extend_from_slice(l));
        out
    }

    #[test]
    fn raw_output_is_the_bytes_as_printed() {
        let long = "é".repeat(MAX_LINE);
        let cases: [&[&[u8]]; 5] = [
            &[b"a\nbb\n\nc"],
            &[b"hel", b"lo\nwor", b"ld\n"],
            &[long.as_bytes(), b"\n", long.as_bytes()],
            &[b"\n\n\n"],
            &[b"", b"x", b"\xff\xfe\n"],
        ];
        for chunks in cases {
            assert_eq!(raw(chunks), chunks.concat());
        }
    }

    #[test]
    fn lines_split_on_newlines() {
        assert_eq!(
            run(&[b"a\nbb\n\nc"], false),
            [b"a".to_vec(), b"bb".to_vec(), b"".to_vec()]
        );
    }

    #[test]
    fn a_line_across_chunks_is_joined() {
        assert_eq!(
            run(&[b"hel", b"lo\nwor", b"ld\n"], false),
            [b"hello".to_vec(), b"world".to_vec()]
        );
    }

    #[test]
    fn partial_last_line_is_flushed_at_finish() {
        assert_eq!(
            run(&[b"a\nno newline"], true),
            [b"a".to_vec(), b"no newline".to_vec()]
        );
    }

    #[test]
    fn long_lines_are_cut_not_dropped() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = long.clone();
        input.push(b'\n');
        let out = run(&[&input], true);
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 5]
        );
        assert_eq!(out.concat(), long);
    }

    #[test]
    fn long_lines_are_cut_between_characters() {
        // 3-byte characters: MAX_LINE is not a multiple of 3.
        let text = "€".repeat(MAX_LINE);
        let mut input = text.as_bytes().to_vec();
        input.push(b'\n');
        for chunks in [vec![&input[..]], input.chunks(1000).collect::<Vec<_>>()] {
            let out = run(&chunks, true);
            assert!(out.iter().all(
                |p| p.len() <= MAX_LINE && p.len() >= MAX_LINE - 3 || p == out.last().unwrap()
            ));
            assert!(
                out.iter().all(|p| std::str::from_utf8(p).is_ok()),
                "a piece cut a character"
            );
            assert_eq!(out.concat(), text.as_bytes());
        }
        // Bytes that are no UTF-8 are cut at the limit.
        let junk = vec![0x80u8; MAX_LINE + 10];
        let out = run(&[&junk], true);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_LINE, 10]);
    }

    #[test]
    fn endless_line_without_newline_is_bounded() {
        let mut buf = LineBuffer::default();
        let mut count = 0;
        for _ in 0..100 {
            buf.feed(&[b'y'; 1000], &mut |l| {
                assert_eq!(l.len(), MAX_LINE);
                count += 1;
            });
            assert!(buf.partial.len() < MAX_LINE);
        }
        assert_eq!(count, 100_000 / MAX_LINE);
    }

    #[test]
    fn find_newline_finds_the_first() {
        let mut data = vec![b'a'; 300];
        assert_eq!(find_newline(&data), None);
        assert_eq!(find_newline(&[]), None);
        for at in [0, 1, 7, 8, 31, 32, 33, 64, 299] {
            data[at] = b'\n';
            assert_eq!(find_newline(&data), Some(at));
            data[299] = b'\n';
            assert_eq!(find_newline(&data), Some(at));
            data[299] = b'a';
            data[at] = b'a';
        }
    }

    #[test]
    fn bytes_are_kept_as_they_are() {
        assert_eq!(
            run(&[b"\x00\xff\xfe\r\n"], false),
            [b"\x00\xff\xfe\r".to_vec()]
        );
    }
}
