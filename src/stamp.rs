//! The log's time stamp, `2026-11-27 16:26:02,524`: local time, a comma
//! before the milliseconds, as supervisord writes it.
//!
//! The offset from UTC is read once, at start: a change to or from
//! daylight saving time during a run is not followed (the man page says
//! so; containers on UTC, the usual case, are not affected). The text is
//! made with the `time` crate at most once a millisecond and kept: in a
//! flood of program output most lines share it, and formatting a date for
//! every line would cost more than the rest of the line.

use std::cell::Cell;
use std::sync::OnceLock;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second],[subsecond digits:3]");

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset from UTC: `TZ`, else `/etc/localtime`. Must run
/// while init has one thread (the `time` crate refuses otherwise, and then
/// UTC is used).
pub fn read_local_offset() {
    OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC));
}

/// A stamp's text, kept by value: a copy costs less than a lock or a
/// borrow, and the log sink may ask for one while a line is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    text: [u8; 32],
    len: u8,
}

impl Stamp {
    const EMPTY: Stamp = Stamp {
        text: [0; 32],
        len: 0,
    };

    pub fn as_str(&self) -> &str {
        let text = self.text.get(..usize::from(self.len)).unwrap_or(&[]);
        std::str::from_utf8(text).unwrap_or("")
    }

    fn at(moment: OffsetDateTime) -> Stamp {
        let mut stamp = Stamp::EMPTY;
        if let Ok(text) = moment.format(FORMAT) {
            let len = text.len().min(stamp.text.len());
            if let (Some(to), Some(from)) = (stamp.text.get_mut(..len), text.as_bytes().get(..len))
            {
                to.copy_from_slice(from);
                stamp.len = u8::try_from(len).unwrap_or(0);
            }
        }
        stamp
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

thread_local! {
    /// The last stamp made, and its millisecond since 1970.
    static LAST: Cell<(i128, Stamp)> = const { Cell::new((i128::MIN, Stamp::EMPTY)) };
}

/// The stamp for now.
pub fn now() -> Stamp {
    let utc = OffsetDateTime::now_utc();
    let ms = utc.unix_timestamp_nanos() / 1_000_000;
    let (last_ms, last) = LAST.get();
    if last_ms == ms {
        return last;
    }
    let offset = OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    let stamp = Stamp::at(utc.to_offset(offset));
    LAST.set((ms, stamp));
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_format_is_supervisords() {
        let s = Stamp::at(datetime!(2026-11-27 16:26:02.524_999 UTC));
        assert_eq!(s.as_str(), "2026-11-27 16:26:02,524");
        let s = Stamp::at(datetime!(0999-01-02 03:04:05.006 UTC));
        assert_eq!(s.as_str(), "0999-01-02 03:04:05,006");
    }

    #[test]
    fn now_is_a_stamp_of_this_year() {
        let text = now().to_string();
        assert_eq!(text.len(), 23, "{text}");
        let year = OffsetDateTime::now_utc().year();
        // Around New Year the local year may be one off.
        let shown: i32 = text[..4].parse().unwrap();
        assert!((shown - year).abs() <= 1, "{text}");
    }
}
