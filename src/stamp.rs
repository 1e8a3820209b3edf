//! The log's time stamp, `2026-11-27 16:26:02,524`: local time, a comma
//! before the milliseconds, as supervisord writes it.
//!
//! The offset from UTC is read once, at start: a change to or from
//! daylight saving time during a run is not followed (the man page says
//! so; containers on UTC, the usual case, are not affected). The date and
//! time are formatted by the `time` crate once a second and kept, and only
//! the milliseconds change within the second: in a flood of program output
//! formatting a date for every line would cost more than the rest of the
//! line.

use std::cell::Cell;
use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// To the second; the milliseconds follow after a comma.
const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

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

    /// Its bytes (ASCII), unchecked: what is copied needs no check.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn as_str(&self) -> &str {
        let text = self.text.get(..usize::from(self.len)).unwrap_or(&[]);
        std::str::from_utf8(text).unwrap_or("")
    }

    /// The stamp of `moment`, to the second.
    fn second(moment: OffsetDateTime) -> Stamp {
        let mut stamp = Stamp::EMPTY;
        if let Ok(text) = moment.format(FORMAT) {
            stamp.set(0, text.as_bytes());
        }
        stamp
    }

    /// The same second's stamp with `,mmm` after it.
    fn with_millis(mut self, ms: u16) -> Stamp {
        let at = usize::from(self.len);
        let mut tail = [0u8; 4];
        let _ = write!(&mut tail[..], ",{:03}", ms.min(999));
        self.set(at, &tail);
        self
    }

    /// Puts `bytes` at `at`; the stamp then ends after them.
    fn set(&mut self, at: usize, bytes: &[u8]) {
        let end = (at + bytes.len()).min(self.text.len());
        if let (Some(to), Some(from)) = (self.text.get_mut(at..end), bytes.get(..end - at)) {
            to.copy_from_slice(from);
            self.len = u8::try_from(end).unwrap_or(0);
        }
    }

    #[cfg(test)]
    fn at(moment: OffsetDateTime) -> Stamp {
        Stamp::second(moment).with_millis(moment.millisecond())
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Nov 27 04:40 PM`: when a program went down, as `status` shows it.
const SHORT: &[BorrowedFormatItem<'static>] =
    format_description!("[month repr:short] [day] [hour repr:12]:[minute] [period]");

/// A wall-clock time as `status` shows it, in local time.
pub fn short(at: SystemTime) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    local(since_epoch)
        .and_then(|t| t.format(SHORT).ok())
        .unwrap_or_default()
}

/// Local time `since_epoch` after 1970, if the calendar reaches it.
fn local(since_epoch: std::time::Duration) -> Option<OffsetDateTime> {
    let offset = OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    time::Duration::try_from(since_epoch)
        .ok()
        .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d))
        .and_then(|utc| utc.checked_to_offset(offset))
}

thread_local! {
    /// The last second's stamp, and that second since 1970.
    static SECOND: Cell<(u64, Stamp)> = const { Cell::new((u64::MAX, Stamp::EMPTY)) };
    /// The last stamp with its milliseconds, and that millisecond.
    static MILLI: Cell<(u128, Stamp)> = const { Cell::new((u128::MAX, Stamp::EMPTY)) };
}

/// The stamp for now.
pub fn now() -> Stamp {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = since_epoch.as_millis();
    let (last_ms, stamp) = MILLI.get();
    if last_ms == ms {
        return stamp;
    }
    let second = since_epoch.as_secs();
    let (last_second, mut stamp) = SECOND.get();
    if last_second != second {
        // Checked: a clock past the year 9999 must not panic PID 1.
        stamp = local(since_epoch).map_or(Stamp::EMPTY, Stamp::second);
        SECOND.set((second, stamp));
    }
    // The offset is whole seconds: the milliseconds are UTC's.
    let stamp = stamp.with_millis(u16::try_from(since_epoch.subsec_millis()).unwrap_or(0));
    MILLI.set((ms, stamp));
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
    fn short_times_are_supervisorctls() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_797_600);
        assert_eq!(short(at), "Nov 27 04:40 PM");
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
