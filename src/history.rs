//! A program's recent output, kept in init's memory for `cocalc-init
//! tail`: its last lines as the log wrote them (stamp, stream, text), up
//! to [`CAPACITY`] bytes, the oldest going first. A program's lines are
//! its own here, so neither the log's rotation nor a chatty neighbour
//! takes them away.
//!
//! The lines sit end to end in one ring of bytes, each behind a small
//! header: a line costs no allocation of its own, and nothing at all is
//! allocated until the program first prints.

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::values::Stream;

/// Bytes kept a program: some hundreds of typical lines, the screenful or
/// two a look at "why did it fail" needs, at a cost that a few hundred
/// programs can pay.
pub const CAPACITY: usize = 64 * 1024;

/// Stamp length, stream, text length (u32, little-endian).
const HEADER: usize = 1 + 1 + 4;

#[derive(Debug, Default)]
pub struct History {
    ring: VecDeque<u8>,
    /// Lines ever kept; the next line's number.
    pushed: u64,
    /// Lines in the ring.
    count: u64,
}

/// One line, as it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// Its number among the program's lines, from 0.
    pub seq: u64,
    pub stamp: Cow<'a, [u8]>,
    pub stream: Stream,
    pub text: Cow<'a, [u8]>,
}

impl History {
    /// Keeps a line; the oldest go until it fits. A line longer than the
    /// whole capacity is kept cut to it.
    pub fn push(&mut self, stamp: &[u8], stream: Stream, text: &[u8]) {
        let stamp = stamp
            .get(..stamp.len().min(usize::from(u8::MAX)))
            .unwrap_or(&[]);
        let room = CAPACITY.saturating_sub(HEADER + stamp.len());
        let text = text.get(..text.len().min(room)).unwrap_or(&[]);
        let size = HEADER + stamp.len() + text.len();
        while self.ring.len() + size > CAPACITY && self.drop_oldest() {}
        let [l0, l1, l2, l3] = u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes();
        let stream = match stream {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        };
        let header = [
            u8::try_from(stamp.len()).unwrap_or(0),
            stream,
            l0,
            l1,
            l2,
            l3,
        ];
        self.ring.extend(&header);
        self.ring.extend(stamp);
        self.ring.extend(text);
        self.pushed += 1;
        self.count += 1;
    }

    fn drop_oldest(&mut self) -> bool {
        let Some(size) = self.size_at(0) else {
            return false;
        };
        self.ring.drain(..size.min(self.ring.len()));
        self.count = self.count.saturating_sub(1);
        true
    }

    /// The whole size of the record that starts at `at`.
    fn size_at(&self, at: usize) -> Option<usize> {
        let stamp = usize::from(*self.ring.get(at)?);
        let mut len = [0u8; 4];
        for (i, byte) in len.iter_mut().enumerate() {
            *byte = *self.ring.get(at + 2 + i)?;
        }
        Some(HEADER + stamp + u32::from_le_bytes(len) as usize)
    }

    /// How many of the lines numbered `from` on are no longer kept.
    pub fn gone_since(&self, from: u64) -> u64 {
        (self.pushed - self.count).saturating_sub(from)
    }

    /// The number the next line will get: lines below it have been seen.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Each line numbered `from` on that is still kept, oldest first, to
    /// `each`; how many of those numbered `from` on are gone already.
    pub fn visit_since<'a>(&'a self, from: u64, mut each: impl FnMut(Line<'a>)) -> u64 {
        let first = self.pushed - self.count;
        let mut at = 0;
        let mut seq = first;
        while at < self.ring.len() {
            let Some(size) = self.size_at(at) else { break };
            if seq >= from {
                if let Some(line) = self.line_at(at, seq) {
                    each(line);
                }
            }
            at += size;
            seq += 1;
        }
        first.saturating_sub(from)
    }

    /// The lines numbered `from` on that are still kept, oldest first, and
    /// how many of those numbered `from` on are gone already.
    pub fn since(&self, from: u64) -> (u64, Vec<Line<'_>>) {
        let first = self.pushed - self.count;
        let gone = first.saturating_sub(from);
        let skip = from.saturating_sub(first);
        let mut lines = Vec::new();
        let mut at = 0;
        let mut seq = first;
        while at < self.ring.len() {
            let Some(size) = self.size_at(at) else { break };
            if seq >= first + skip {
                if let Some(line) = self.line_at(at, seq) {
                    lines.push(line);
                }
            }
            at += size;
            seq += 1;
        }
        (gone, lines)
    }

    /// The last `n` lines kept, oldest first.
    pub fn last(&self, n: usize) -> Vec<Line<'_>> {
        let from = self.pushed.saturating_sub(n as u64);
        self.since(from).1
    }

    fn line_at(&self, at: usize, seq: u64) -> Option<Line<'_>> {
        let stamp_len = usize::from(*self.ring.get(at)?);
        let stream = match self.ring.get(at + 1)? {
            2 => Stream::Stderr,
            _ => Stream::Stdout,
        };
        let start = at + HEADER;
        let end = at + self.size_at(at)?;
        Some(Line {
            seq,
            stamp: self.bytes(start, start + stamp_len)?,
            stream,
            text: self.bytes(start + stamp_len, end)?,
        })
    }

    /// The ring's bytes `start..end`: borrowed, or copied out where they
    /// run over the ring's end.
    fn bytes(&self, start: usize, end: usize) -> Option<Cow<'_, [u8]>> {
        let (front, back) = self.ring.as_slices();
        if end <= front.len() {
            return front.get(start..end).map(Cow::Borrowed);
        }
        if start >= front.len() {
            return back
                .get(start - front.len()..end - front.len())
                .map(Cow::Borrowed);
        }
        Some(Cow::Owned(self.ring.range(start..end).copied().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    #[test]
    fn nothing_is_allocated_before_the_first_line() {
        let h = History::default();
        assert_eq!(h.ring.capacity(), 0);
        assert_eq!(h.since(0), (0, Vec::new()));
    }

    #[test]
    fn lines_come_back_as_kept_with_their_stamp_and_stream() {
        let mut h = History::default();
        h.push(b"2026-12-07 10:00:00,001", Stream::Stdout, b"one");
        h.push(b"2026-12-07 10:00:00,002", Stream::Stderr, b"two \xff");
        let (gone, lines) = h.since(0);
        assert_eq!(gone, 0);
        assert_eq!(texts(&lines), ["one", "two \u{fffd}"]);
        assert_eq!(&*lines[1].stamp, b"2026-12-07 10:00:00,002");
        assert_eq!(lines[1].stream, Stream::Stderr);
        assert_eq!(&*lines[1].text, b"two \xff");
        assert_eq!((lines[0].seq, lines[1].seq), (0, 1));
        assert_eq!(texts(&h.last(1)), ["two \u{fffd}"]);
        assert_eq!(texts(&h.last(10)).len(), 2);
        assert_eq!(h.since(2), (0, Vec::new()));
    }

    #[test]
    fn the_oldest_go_first_and_the_bytes_stay_bounded() {
        let mut h = History::default();
        let line = vec![b'x'; 1000];
        for i in 0..1000u32 {
            let mut text = i.to_string().into_bytes();
            text.extend_from_slice(&line);
            h.push(b"2026-12-07 10:00:00,000", Stream::Stdout, &text);
            assert!(h.ring.len() <= CAPACITY);
        }
        assert_eq!(h.pushed(), 1000);
        let (gone, lines) = h.since(0);
        // Each record is 6 + 23 + ~1003 bytes: 63 fit.
        assert_eq!(gone as usize + lines.len(), 1000);
        assert!(lines.len() >= 60, "{}", lines.len());
        let last = lines.last().unwrap();
        assert!(last.text.starts_with(b"999x"));
        assert_eq!(last.seq, 999);
        // Asked from a line still kept: only what is newer, none gone.
        let (gone, newer) = h.since(998);
        assert_eq!((gone, newer.len()), (0, 2));
        // Every line reads back whole, across the ring's end too.
        assert!(lines.iter().all(|l| l.text.len() >= 1001));
    }

    #[test]
    fn a_line_longer_than_the_capacity_is_kept_cut() {
        let mut h = History::default();
        h.push(b"s", Stream::Stdout, b"small");
        h.push(b"s", Stream::Stdout, &vec![b'y'; CAPACITY * 2]);
        let (gone, lines) = h.since(0);
        assert_eq!(gone, 1);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text.len(), CAPACITY - HEADER - 1);
        assert!(h.ring.len() <= CAPACITY);
    }
}
