//! Validated configuration: every value here has already passed its checks,
//! so the rest of init never re-validates or fails on it.

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::settings::Settings;

/// The name of the main command in log lines, and so a name no `-p` may take.
pub const MAIN_NAME: &str = "main";
/// What the control verbs take for every program: no program's name.
pub const ALL_NAME: &str = "all";

/// A program name: non-empty, only `[A-Za-z0-9_.-]`, never `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramName(String);

impl ProgramName {
    pub fn new(name: &str) -> Result<ProgramName, String> {
        if name.is_empty() {
            return Err("the NAME is empty".into());
        }
        if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(format!(
                "the NAME '{name}' has '{bad}': only letters, digits, '_', '.' and '-' are allowed"
            ));
        }
        if name == MAIN_NAME {
            return Err(format!(
                "the NAME '{MAIN_NAME}' is reserved for the command after '--'"
            ));
        }
        if name == ALL_NAME {
            return Err(format!(
                "the NAME '{ALL_NAME}' is reserved: it means every program"
            ));
        }
        if name.starts_with('-') {
            return Err(format!("the NAME '{name}' may not begin with '-'"));
        }
        Ok(ProgramName(name.to_string()))
    }

    /// The program name of an init script: its file name with every
    /// character a name may not hold (and every `.`) made `_`, as supervisord
    /// set-ups named `project_init.sh` → `project_init_sh`.
    pub fn for_script(file_name: &str) -> ProgramName {
        let mut name: String = file_name
            .chars()
            .map(|c| if is_name_char(c) && c != '.' { c } else { '_' })
            .collect();
        if name.starts_with('-') {
            name.replace_range(..1, "_");
        }
        if name.is_empty() || name == MAIN_NAME || name == ALL_NAME {
            return ProgramName(format!("{name}_"));
        }
        ProgramName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgramName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
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

/// What a supervised program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramKind {
    /// `-p NAME=COMMAND`: COMMAND split into words.
    Command(Vec<String>),
    /// `-i PATH`: an absolute script path, run by bash (or sh) in its folder.
    InitScript(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    pub name: ProgramName,
    pub kind: ProgramKind,
    /// The global flags' values with its own `-o` keys over them.
    pub settings: Settings,
}

/// The control socket's path, in every child's environment where there
/// is one; the client reads it when --control is not given.
pub const CONTROL_VAR: &str = "COCALC_INIT_CONTROL";
/// The program's own name, in its environment.
pub const PROGRAM_VAR: &str = "COCALC_INIT_PROGRAM";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// An absolute path.
    File(PathBuf),
    /// `-l -`: standard error only.
    Stderr,
    /// `-l /dev/stdout`: standard output only.
    Stdout,
}

/// The least severe lines the log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(text: &str) -> Result<LogLevel, String> {
        match text {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "'{text}' is not a level: debug, info, warn or error"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub target: LogTarget,
    /// 0 = never rotate.
    pub max_bytes: u64,
    pub backups: u32,
    pub quiet: bool,
    pub level: LogLevel,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `-p` and `-i` programs, in command-line order.
    pub programs: Vec<ProgramSpec>,
    /// The command after `--`, kept as the OS gave it (need not be UTF-8).
    pub main: Option<Vec<CString>>,
    /// The main command's `-o main.KEY` settings (directory, environment,
    /// user, stopsignal).
    pub main_settings: Settings,
    pub policy: Policy,
    pub log: LogConfig,
    /// The control socket, if any.
    pub control: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_allowed_characters() {
        assert!(ProgramName::new("A-z_0.9").is_ok());
        assert!(ProgramName::new("").is_err());
        assert!(ProgramName::new("a b").is_err());
        assert!(ProgramName::new("a/b").is_err());
        assert!(ProgramName::new("main").is_err());
        assert!(ProgramName::new("main2").is_ok());
        assert!(ProgramName::new("all").is_err());
        assert!(ProgramName::new("-x").is_err());
        assert_eq!(ProgramName::for_script("all").as_str(), "all_");
        assert_eq!(ProgramName::for_script("-x.sh").as_str(), "_x_sh");
    }

    #[test]
    fn script_names_turn_dots_into_underscores() {
        assert_eq!(
            ProgramName::for_script("project_init.sh").as_str(),
            "project_init_sh"
        );
        assert_eq!(
            ProgramName::for_script("my init.v2.sh").as_str(),
            "my_init_v2_sh"
        );
        assert_eq!(ProgramName::for_script("main").as_str(), "main_");
    }

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
            assert_eq!(LogLevel::parse(name).unwrap().name(), name);
        }
        assert!(LogLevel::parse("INFO").is_err());
        assert!(LogLevel::Debug < LogLevel::Error);
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
