//! The log's time stamp, `2026-11-27 16:26:02,524`: local time, a comma
//! before the milliseconds, as supervisord writes it.
//!
//! The local zone's rules (`TZ`, else `/etc/localtime`, else UTC) are read
//! once, at start, by jiff, and every stamp is made with them: a container
//! started in winter still writes summer's stamps in summer, and cron
//! times and the log agree. The date and time are worked out once a second
//! and kept, and only the milliseconds change within the second: in a
//! flood of program output formatting a date for every line would cost
//! more than the rest of the line.

use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// The local zone, read once: `TZ`, else `/etc/localtime`, else UTC.
pub fn zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| match std::env::var("TZ") {
        Ok(tz) if !tz.is_empty() => zone_named(&tz).unwrap_or(TimeZone::UTC),
        Ok(_) => TimeZone::UTC,
        Err(_) => zone_file(Path::new("/etc/localtime")).unwrap_or(TimeZone::UTC),
    })
}

/// `TZ`'s zone, as glibc reads it: a path (after an optional `:`), a
/// name under `TZDIR` (default /usr/share/zoneinfo), or a POSIX rule
/// (`EST5EDT,M3.2.0,M11.1.0`). The one file is read and parsed here: jiff's
/// own discovery walks the whole zone database, three million instructions
/// at every start.
pub fn zone_named(tz: &str) -> Option<TimeZone> {
    let tz = tz.strip_prefix(':').unwrap_or(tz);
    if tz.starts_with('/') {
        return zone_file(Path::new(tz));
    }
    let dir = std::env::var_os("TZDIR").unwrap_or_else(|| "/usr/share/zoneinfo".into());
    let inside = !tz.split('/').any(|part| part == ".." || part.is_empty());
    inside
        .then(|| zone_file(&Path::new(&dir).join(tz)))
        .flatten()
        .or_else(|| TimeZone::posix(tz).ok())
}

fn zone_file(path: &Path) -> Option<TimeZone> {
    let data = std::fs::read(path).ok()?;
    TimeZone::tzif("local", &data).ok()
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
    fn second(moment: DateTime) -> Stamp {
        let mut text = [0u8; 19];
        let written = write!(
            &mut text[..],
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            moment.year(),
            moment.month(),
            moment.day(),
            moment.hour(),
            moment.minute(),
            moment.second()
        );
        let mut stamp = Stamp::EMPTY;
        if written.is_ok() {
            stamp.set(0, &text);
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
    fn at(moment: DateTime) -> Stamp {
        let ms = u16::try_from(moment.subsec_nanosecond() / 1_000_000).unwrap_or(0);
        Stamp::second(moment).with_millis(ms)
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A wall-clock time as `status` shows it, in local time:
/// `Nov 27 04:40 PM`.
pub fn short(at: SystemTime) -> String {
    match Timestamp::try_from(at) {
        Ok(ts) => zone()
            .to_datetime(ts)
            .strftime("%b %d %I:%M %p")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// Local time `since_epoch` after 1970, if the calendar reaches it.
fn local(since_epoch: std::time::Duration) -> Option<DateTime> {
    let secs = i64::try_from(since_epoch.as_secs()).ok()?;
    let ts = Timestamp::from_second(secs).ok()?;
    Some(zone().to_datetime(ts))
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
    // Zones' offsets are whole seconds: the milliseconds are UTC's.
    let stamp = stamp.with_millis(u16::try_from(since_epoch.subsec_millis()).unwrap_or(0));
    MILLI.set((ms, stamp));
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_supervisords() {
        let s = Stamp::at("2026-11-27T16:26:02.524999".parse().unwrap());
        assert_eq!(s.as_str(), "2026-11-27 16:26:02,524");
        let s = Stamp::at("0999-01-02T03:04:05.006".parse().unwrap());
        assert_eq!(s.as_str(), "0999-01-02 03:04:05,006");
    }

    #[test]
    fn short_times_are_supervisorctls() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_797_600);
        // In the zone of the test run: UTC here, as CI has it.
        let expected = zone()
            .to_datetime(Timestamp::from_second(1_795_797_600).unwrap())
            .strftime("%b %d %I:%M %p")
            .to_string();
        assert_eq!(short(at), expected);
        if zone() == &TimeZone::UTC {
            assert_eq!(short(at), "Nov 27 04:40 PM");
        }
    }

    #[test]
    fn stamps_follow_the_zones_rules_across_a_change() {
        // Berlin, one second before and after the spring change.
        let berlin = zone_named("Europe/Berlin").unwrap();
        let before = berlin.to_datetime(Timestamp::from_second(1_806_195_599).unwrap());
        let after = berlin.to_datetime(Timestamp::from_second(1_806_195_600).unwrap());
        assert_eq!(Stamp::second(before).as_str(), "2027-03-28 01:59:59");
        assert_eq!(Stamp::second(after).as_str(), "2027-03-28 03:00:00");
    }

    #[test]
    fn now_is_a_stamp_of_this_year() {
        let text = now().to_string();
        assert_eq!(text.len(), 23, "{text}");
        let year = jiff::Zoned::now().year();
        // Around New Year the local year may be one off.
        let shown: i16 = text[..4].parse().unwrap();
        assert!((shown - year).abs() <= 1, "{text}");
    }
}
