//! Program output → log lines. Bytes are kept as they are (no UTF-8
//! repair: the log is a byte stream and nothing is lost); a line longer than
//! [`MAX_LINE`] is cut into pieces of that size, never dropped; a partial
//! last line waits for its end until the program exits.

use alloc::vec::Vec;

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
        self.partial.extend_from_slice(chunk);
        // A line that outgrows the limit is logged in full pieces now, so
        // that a program printing without newlines costs bounded memory.
        if self.partial.len() >= MAX_LINE {
            let whole = self.partial.len() / MAX_LINE * MAX_LINE;
            if let Some(head) = self.partial.get(..whole) {
                emit_pieces(head, emit);
            }
            self.partial.drain(..whole);
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

/// The first newline: glibc's memchr, which scans a word or a vector at a
/// time, several times faster than a byte loop on long output.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most bytes.len() bytes from a valid slice.
    let at = unsafe { libc::memchr(bytes.as_ptr().cast(), i32::from(b'\n'), bytes.len()) };
    if at.is_null() {
        return None;
    }
    Some((at as usize).wrapping_sub(bytes.as_ptr() as usize))
}

fn emit_pieces(line: &[u8], emit: &mut impl FnMut(&[u8])) {
    if line.is_empty() {
        emit(line);
        return;
    }
    for piece in line.chunks(MAX_LINE) {
        emit(piece);
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
    fn find_newline_agrees_with_a_byte_scan() {
        let mut data = vec![b'a'; 300];
        for at in [0, 1, 7, 8, 31, 32, 33, 64, 299] {
            data[at] = b'\n';
            assert_eq!(find_newline(&data), data.iter().position(|&b| b == b'\n'));
            assert_eq!(find_newline(&data[at..]), Some(0));
            data[at] = b'a';
        }
        assert_eq!(find_newline(&data), None);
        assert_eq!(find_newline(&[]), None);
    }

    #[test]
    fn bytes_are_kept_as_they_are() {
        assert_eq!(
            run(&[b"\x00\xff\xfe\r\n"], false),
            [b"\x00\xff\xfe\r".to_vec()]
        );
    }
}
