//! Value types every layer shares: exit codes, seconds, log levels, the
//! global defaults. A leaf: it imports nothing of ours, so no import circle
//! can run through it.

use std::fmt;
use std::time::Duration;

/// What a child is to init, beside what it runs: the few rules that differ
/// between roles are decided from this, each in one place, and everything
/// else about a child is the same for every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A `-p` program or `-i` init script: supervised, restarted as its
    /// settings say, and controlled by the verbs.
    Program,
    /// The command after `--`: never started again, and its end is init's
    /// (init exits with its status); it keeps the terminal; `start`,
    /// `stop` and `restart` refuse it, and no program comes after it.
    Main,
}

/// The set of exit codes that count as expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCodes([bool; 256]);

impl ExitCodes {
    pub fn parse(list: &str) -> Result<ExitCodes, String> {
        let mut set = [false; 256];
        for item in list.split(',') {
            let item = item.trim();
            let code: u8 = item
                .parse()
                .map_err(|_| format!("'{item}' is not an exit code (a number from 0 to 255)"))?;
            if let Some(slot) = set.get_mut(usize::from(code)) {
                *slot = true;
            }
        }
        Ok(ExitCodes(set))
    }

    pub fn contains(&self, code: u8) -> bool {
        self.0.get(usize::from(code)).copied().unwrap_or(false)
    }
}

impl fmt::Display for ExitCodes {
    /// The codes, ascending, comma-separated: `0,2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = (0..=255u8)
            .filter(|&c| self.contains(c))
            .map(|c| c.to_string())
            .collect();
        f.write_str(&codes.join(","))
    }
}

impl Default for ExitCodes {
    fn default() -> ExitCodes {
        let mut set = [false; 256];
        set[0] = true;
        set[2] = true;
        ExitCodes(set)
    }
}

/// A non-negative number of seconds, which remembers how to print itself
/// in its shortest form (`1`, `0.5`) for log messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds {
    value: f64,
    duration: Duration,
}

impl Seconds {
    pub fn parse(text: &str) -> Result<Seconds, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a number of seconds"))?;
        Seconds::from_f64(value)
            .ok_or_else(|| format!("'{text}' is not a non-negative number of seconds"))
    }

    pub fn from_f64(value: f64) -> Option<Seconds> {
        if !value.is_finite() || value < 0.0 || value.is_sign_negative() {
            return None;
        }
        let duration = Duration::try_from_secs_f64(value).ok()?;
        Some(Seconds { value, duration })
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // f64's Display is already the shortest form that reads back exactly.
        write!(f, "{}", self.value)
    }
}

/// How severe a log line is; as `--log-level`, the least severe kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl Level {
    /// supervisord's four-letter level words.
    pub fn word(self) -> &'static str {
        match self {
            Level::Debug => "DEBG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERRO",
            Level::Critical => "CRIT",
        }
    }

    /// `--log-level`'s names: the least severe lines the log keeps.
    pub fn parse(text: &str) -> Result<Level, String> {
        match text {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(format!(
                "'{text}' is not a level: debug, info, warn or error"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }
}

/// Which pipe a program line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn word(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The global flags: what every program has unless its own `-o` keys say
/// otherwise (`backoff_max` is everyone's).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub exitcodes: ExitCodes,
    pub startsecs: Seconds,
    pub backoff_max: Seconds,
    pub grace: Seconds,
}

/// The command line's defaults, for unit tests of what takes a policy.
#[cfg(test)]
pub fn test_policy() -> Policy {
    Policy {
        exitcodes: ExitCodes::default(),
        startsecs: Seconds::parse("1").unwrap_or_else(|e| panic!("{e}")),
        backoff_max: Seconds::parse("60").unwrap_or_else(|e| panic!("{e}")),
        grace: Seconds::parse("8").unwrap_or_else(|e| panic!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_parse_lists_with_duplicates() {
        let codes = ExitCodes::parse("0, 3,3,255").unwrap();
        assert!(codes.contains(0) && codes.contains(3) && codes.contains(255));
        assert!(!codes.contains(2));
    }

    #[test]
    fn exit_codes_reject_out_of_range_and_garbage() {
        for bad in ["256", "-1", "a", "", "0,,2", "1.5"] {
            assert!(ExitCodes::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_exit_codes_are_zero_and_two() {
        let codes = ExitCodes::default();
        assert!(codes.contains(0) && codes.contains(2) && !codes.contains(1));
    }

    #[test]
    fn log_levels_read_back_by_name() {
        for name in ["debug", "info", "warn", "error"] {
            assert_eq!(Level::parse(name).unwrap().name(), name);
        }
        assert!(Level::parse("INFO").is_err());
        assert!(Level::Debug < Level::Error);
    }

    #[test]
    fn seconds_print_in_shortest_form() {
        assert_eq!(Seconds::parse("1").unwrap().to_string(), "1");
        assert_eq!(Seconds::parse("0.50").unwrap().to_string(), "0.5");
        assert_eq!(
            Seconds::parse("1.5").unwrap().duration(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn seconds_reject_negative_and_non_numbers() {
        for bad in ["-1", "-0", "abc", "", "inf", "NaN", "1e400", "1s"] {
            assert!(Seconds::parse(bad).is_err(), "{bad}");
        }
    }
}
