//! Where a program's stdout or stderr goes: supervisord's
//! `stdout_logfile`/`stderr_logfile` words and sizes, as values. Unset,
//! a stream goes into init's log, a line stamped and tagged with the
//! program; any other destination gets the output raw, as printed.

use std::fmt;
use std::path::PathBuf;

/// One stream's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// init's log (unset, or `AUTO`).
    Log,
    /// `NONE`: dropped.
    Discard,
    /// `/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`: init's own fd 1.
    Stdout,
    /// `/dev/stderr`, `/dev/fd/2`, `/proc/self/fd/2`: init's own fd 2.
    Stderr,
    /// An absolute path: appended to, rotated by size.
    File(PathBuf),
}

impl Place {
    pub fn parse(text: &str) -> Result<Place, String> {
        // As a path is written (`//`, `/./` folded), so that two spellings
        // of one file are one place.
        let path: PathBuf = std::path::Path::new(text).components().collect();
        let is = |names: [&str; 3]| names.iter().any(|n| path.as_os_str() == *n);
        Ok(match text.to_ascii_uppercase().as_str() {
            "" => return Err("the destination is empty".into()),
            "AUTO" => Place::Log,
            "NONE" | "OFF" => Place::Discard,
            "SYSLOG" => {
                return Err(
                    "syslog is not supported: send the output to /dev/stdout or a file".into(),
                );
            }
            _ if is(["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]) => Place::Stdout,
            _ if is(["/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"]) => Place::Stderr,
            _ if path.is_absolute() => Place::File(path),
            _ => {
                return Err(format!(
                    "'{text}' is not an absolute path, NONE, AUTO, /dev/stdout or /dev/stderr"
                ));
            }
        })
    }

    /// Whether the output goes somewhere other than init's log.
    pub fn is_own(&self) -> bool {
        *self != Place::Log
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Log => f.write_str("the log"),
            Place::Discard => f.write_str("NONE"),
            Place::Stdout => f.write_str("/dev/stdout"),
            Place::Stderr => f.write_str("/dev/stderr"),
            Place::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// supervisord's defaults for a file: 50MB, 10 backups.
pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;
pub const DEFAULT_BACKUPS: u32 = 10;
/// As for init's own log.
pub const MAX_BACKUPS: u32 = 1000;

/// A stream's destination and, for a file, when it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub place: Place,
    /// 0: never rotated.
    pub max_bytes: u64,
    pub backups: u32,
}

impl Default for Output {
    fn default() -> Output {
        Output {
            place: Place::Log,
            max_bytes: DEFAULT_MAX_BYTES,
            backups: DEFAULT_BACKUPS,
        }
    }
}

/// supervisord's byte sizes: a whole number, or one with `KB`, `MB` or
/// `GB` (of 1024), in any case.
pub fn byte_size(text: &str) -> Result<u64, String> {
    let upper = text.trim().to_ascii_uppercase();
    let (digits, unit) = match upper
        .len()
        .checked_sub(2)
        .and_then(|at| upper.split_at_checked(at))
    {
        Some((digits, "KB")) => (digits, 1 << 10),
        Some((digits, "MB")) => (digits, 1 << 20),
        Some((digits, "GB")) => (digits, 1 << 30),
        _ => (upper.as_str(), 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| {
            format!("'{text}' is not a size: a whole number of bytes, or with KB, MB or GB")
        })
}

/// A number of backups.
pub fn backups(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n <= MAX_BACKUPS => Ok(n),
        Ok(_) => Err(format!("'{text}' is more than {MAX_BACKUPS}")),
        Err(_) => Err(format!("'{text}' is not a whole number >= 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_by_their_words() {
        assert_eq!(Place::parse("NONE"), Ok(Place::Discard));
        assert_eq!(Place::parse("AUTO"), Ok(Place::Log));
        for word in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            assert_eq!(Place::parse(word), Ok(Place::Stdout), "{word}");
        }
        for word in ["/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"] {
            assert_eq!(Place::parse(word), Ok(Place::Stderr), "{word}");
        }
        assert_eq!(
            Place::parse("/var/log/x.log"),
            Ok(Place::File("/var/log/x.log".into()))
        );
        assert!(
            Place::parse("x.log")
                .unwrap_err()
                .contains("not an absolute path")
        );
        assert!(Place::parse("").is_err());
        assert_eq!(Place::parse("none"), Ok(Place::Discard));
        assert_eq!(Place::parse("off"), Ok(Place::Discard));
        assert_eq!(Place::parse("Auto"), Ok(Place::Log));
        assert!(
            Place::parse("syslog")
                .unwrap_err()
                .contains("not supported")
        );
        assert_eq!(
            Place::parse("/var//log/./x.log"),
            Ok(Place::File("/var/log/x.log".into()))
        );
        assert_eq!(Place::parse("/dev//stdout"), Ok(Place::Stdout));
    }

    #[test]
    fn sizes_in_supervisords_units() {
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("1024"), Ok(1024));
        assert_eq!(byte_size("1KB"), Ok(1024));
        assert_eq!(byte_size("50MB"), Ok(50 << 20));
        assert_eq!(byte_size("2gb"), Ok(2 << 30));
        assert_eq!(byte_size(" 3 KB "), Ok(3072));
        for bad in ["", "KB", "-1", "1.5MB", "1TB", "99999999999999999999GB"] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
        assert_eq!(backups("10"), Ok(10));
        assert!(backups("1001").is_err() && backups("x").is_err());
    }
}
