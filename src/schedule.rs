//! When a scheduled program runs: `cron=EXPR` (crontab(5)'s five fields or
//! an `@alias`, in the container's local time) or `every=DURATION` (after
//! the previous run ended). Pure: times in, times out; the zone's rules are
//! read once, at start.
//!
//! A cron time is a wall-clock instant, found by croner with jiff's zoned
//! times, which follow ISC cron at daylight saving changes: a fixed time
//! that a jump forward skips runs once right after the jump; a fixed time
//! in a repeated hour runs once; every-minute and every-hour patterns keep
//! their pace. An `every` interval is a duration on the monotonic clock.

use std::fmt;
use std::time::{Duration, SystemTime};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::Zoned;
use jiff::tz::TimeZone;

/// The longest `every=`: a year and a day.
const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);

/// A scheduled program's times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `cron=`: the expression as given, and as parsed.
    Cron(String, Box<Cron>),
    /// `every=`: between the end of one run and the start of the next.
    Every(Duration),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron(text, _) => write!(f, "cron {text}"),
            Schedule::Every(d) => write!(f, "every {}", every_text(*d)),
        }
    }
}

/// `every`'s value as given back: `90s`, `5m`, `2h`, `1d`.
fn every_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `cron=EXPR`: five fields or an alias; one that can never come (`0 0 31
/// 2 *`) is refused.
pub fn parse_cron(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(text)
        .map_err(|e| format!("'{text}' is not a cron expression ({e}): give minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly"))?;
    let schedule = Schedule::Cron(text.to_string(), Box::new(cron));
    if next_after(&schedule, SystemTime::now(), &TimeZone::UTC).is_none() {
        return Err(format!("'{text}' never comes: no date matches it"));
    }
    Ok(schedule)
}

/// `every=DURATION`: whole seconds, at least 1, at most 366 days; a number
/// alone is seconds, or with `s`, `m`, `h`, `d`.
pub fn parse_every(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "'{text}' is not a duration: give whole seconds, or a number with s, m, h or d (90, 90s, 5m, 2h, 1d)"
        )
    };
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let d = Duration::from_secs(n.saturating_mul(unit));
    if d.is_zero() {
        return Err(format!("'{text}': a run needs at least 1 second between"));
    }
    if d > MAX_EVERY {
        return Err(format!("'{text}' is more than 366 days"));
    }
    Ok(Schedule::Every(d))
}

/// The first cron time after `after` (wall clock) in `zone`; None for an
/// `every` schedule, or a cron time that never comes.
pub fn next_after(schedule: &Schedule, after: SystemTime, zone: &TimeZone) -> Option<SystemTime> {
    let Schedule::Cron(_, cron) = schedule else {
        return None;
    };
    let at = Timestamp::try_from(after).ok()?;
    let zoned = Zoned::new(at, zone.clone());
    let next = cron.find_next_occurrence(&zoned, false).ok()?;
    Some(SystemTime::from(next.timestamp()))
}

/// A wall-clock time as the log and `status` say it, in `zone`:
/// `2026-12-08 03:00:00`.
pub fn local_text(at: SystemTime, zone: &TimeZone) -> String {
    match Timestamp::try_from(at) {
        Ok(ts) => Zoned::new(ts, zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        crate::stamp::zone_named("Europe/Berlin").unwrap()
    }

    /// Wall time in Berlin → SystemTime.
    fn at(text: &str) -> SystemTime {
        let dt: jiff::civil::DateTime = text.parse().unwrap();
        let z = dt.to_zoned(berlin()).unwrap();
        SystemTime::from(z.timestamp())
    }

    fn runs(expr: &str, from: &str, n: usize) -> Vec<String> {
        let s = parse_cron(expr).unwrap();
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = next_after(&s, t, &berlin()).unwrap();
                Zoned::new(Timestamp::try_from(t).unwrap(), berlin())
                    .strftime("%F %T %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn cron_times_follow_crontab() {
        assert_eq!(
            runs("0 3 * * *", "2026-12-07T12:00", 2),
            ["2026-12-08 03:00:00 CET", "2026-12-09 03:00:00 CET"]
        );
        // Day of month and day of week: either matches, as crontab(5) says.
        assert_eq!(
            runs("0 0 13 * FRI", "2026-11-01T00:00", 3),
            [
                "2026-11-06 00:00:00 CET",
                "2026-11-13 00:00:00 CET",
                "2026-11-20 00:00:00 CET"
            ]
        );
        assert_eq!(
            runs("@hourly", "2026-12-07T12:30", 1),
            ["2026-12-07 13:00:00 CET"]
        );
        assert_eq!(
            runs("*/20 9-10 * jan,dec mon-fri", "2026-12-07T10:30", 2),
            ["2026-12-07 10:40:00 CET", "2026-12-08 09:00:00 CET"]
        );
    }

    #[test]
    fn daylight_saving_neither_loses_nor_doubles_a_run() {
        // Spring: 02:30 does not exist on 2027-03-28; it runs once, at 03:00.
        assert_eq!(
            runs("30 2 * * *", "2027-03-27T12:00", 2),
            ["2027-03-28 03:00:00 CEST", "2027-03-29 02:30:00 CEST"]
        );
        // Autumn: 02:30 comes twice on 2027-10-31; it runs once.
        assert_eq!(
            runs("30 2 * * *", "2027-10-30T12:00", 2),
            ["2027-10-31 02:30:00 CEST", "2027-11-01 02:30:00 CET"]
        );
        // A pattern of every half hour keeps its pace through both.
        assert_eq!(
            runs("*/30 * * * *", "2027-03-28T01:00", 3),
            [
                "2027-03-28 01:30:00 CET",
                "2027-03-28 03:00:00 CEST",
                "2027-03-28 03:30:00 CEST"
            ]
        );
        assert_eq!(
            runs("*/30 * * * *", "2027-10-31T01:50", 4),
            [
                "2027-10-31 02:00:00 CEST",
                "2027-10-31 02:30:00 CEST",
                "2027-10-31 02:00:00 CET",
                "2027-10-31 02:30:00 CET"
            ]
        );
    }

    #[test]
    fn bad_cron_and_every_values_say_why() {
        for (text, needle) in [
            ("0 0 31 2 *", "never comes"),
            ("* * *", "is not a cron expression"),
            ("61 * * * *", "is not a cron expression"),
            ("0 0 * * * *", "is not a cron expression"),
            ("@reboot", "is not a cron expression"),
        ] {
            let e = parse_cron(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86_400),
        ] {
            assert_eq!(
                parse_every(text),
                Ok(Schedule::Every(Duration::from_secs(secs)))
            );
        }
        for (text, needle) in [
            ("0", "at least 1 second"),
            ("-5", "not a duration"),
            ("5x", "not a duration"),
            ("1.5m", "not a duration"),
            ("", "not a duration"),
            ("367d", "more than 366 days"),
        ] {
            let e = parse_every(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert_eq!(parse_every("5m").unwrap().to_string(), "every 5m");
        assert_eq!(parse_cron(" @daily ").unwrap().to_string(), "cron @daily");
    }
}
