//! The command line: the option table, `--help`, `--version`, and argv →
//! [`Config`]. No side effects: the caller prints and exits.
//!
//! argv is split at the first `--` here, so the main command keeps its
//! arguments exactly as the OS gave them. The options before it are read by
//! a small table-driven parser rather than getopts: getopts built a map of
//! every option and its matches on each start, 40,000 instructions of an
//! init's start-up, for fourteen options.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use crate::config::{
    Config, ExitCodes, LogConfig, LogTarget, Policy, ProgramKind, ProgramName, ProgramSpec, Seconds,
};
use crate::path;
use crate::shellwords;

pub const DEFAULT_LOG: &str = "/tmp/.cocalc/cocalc-init.log";
pub const DEFAULT_EXITCODES: &str = "0,2";
pub const DEFAULT_STARTSECS: &str = "1";
pub const DEFAULT_BACKOFF_MAX: &str = "60";
pub const DEFAULT_GRACE: &str = "8";
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_LOG_BACKUPS: u32 = 3;
/// More rotated files than this is surely a typo.
pub const MAX_LOG_BACKUPS: u32 = 1000;

// Option names, kept in one place.
const PROGRAM: &str = "program";
const INIT_SCRIPT: &str = "init-script";
const EXITCODES: &str = "exitcodes";
const STARTSECS: &str = "startsecs";
const BACKOFF_MAX: &str = "backoff-max";
const GRACE: &str = "grace";
const LOG: &str = "log";
const LOG_MAX_BYTES: &str = "log-max-bytes";
const LOG_BACKUPS: &str = "log-backups";
const QUIET: &str = "quiet";
const VERBOSE: &str = "verbose";
const CHECK: &str = "check";
const HELP: &str = "help";
const VERSION: &str = "version";

/// What the command line asks for.
#[derive(Debug)]
pub enum Request {
    Run(Box<Config>),
    /// `--check`: validate, describe, start nothing.
    Check(Box<Config>),
    Help,
    Version,
}

/// A usage error: the message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cocalc-init: {}\nTry 'cocalc-init --help' for more information.",
            self.0
        )
    }
}

/// The message quotes what the user typed; a control character in it (a
/// newline in a `-p` value, say) is written as an escape, so that the
/// error stays one line and the terminal is left alone.
fn usage(message: impl Into<String>) -> UsageError {
    let message = message.into();
    if !message.chars().any(char::is_control) {
        return UsageError(message);
    }
    let mut shown = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    UsageError(shown)
}

pub fn help_text() -> String {
    format!(
        "\
Usage: cocalc-init [OPTIONS] [-- COMMAND [ARG]...]
A small init for containers: reaps zombies, forwards signals, restarts
programs that exit unexpectedly, and logs what they print.

  -p, --program NAME=COMMAND  supervise COMMAND as NAME (repeatable)
  -i, --init-script PATH      run `bash PATH` if PATH exists (repeatable)
  -x, --exitcodes LIST        exit codes that are expected [{DEFAULT_EXITCODES}]
  -s, --startsecs SECS        a shorter run is a failed start [{DEFAULT_STARTSECS}]
  -b, --backoff-max SECS      longest wait between restarts [{DEFAULT_BACKOFF_MAX}]
  -g, --grace SECS            wait after the stop signal before SIGKILL [{DEFAULT_GRACE}]
  -l, --log FILE              the log; - = stderr [{DEFAULT_LOG}]
      --log-max-bytes N       rotate the log at N bytes, 0 = never [{DEFAULT_LOG_MAX_BYTES}]
      --log-backups K         rotated log files kept [{DEFAULT_LOG_BACKUPS}]
  -q, --quiet                 do not copy log lines to stderr
  -v, --verbose               also log debug lines
      --check                 check the command line, print what would run
  -h, --help                  print this help and exit
  -V, --version               print the version and exit
  -- COMMAND [ARG]...         main command: init exits with its status

See 'man cocalc-init' for details.
"
    )
}

pub fn version_text() -> String {
    format!("cocalc-init {}\n", env!("CARGO_PKG_VERSION"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A value, and the option may repeat.
    Values,
    /// One value.
    Value,
    /// No value.
    Nothing,
}

/// The option table: (short, long, value name, what it takes). The parser
/// is built from it, and a test holds `--help` to it.
const TABLE: &[(&str, &str, &str, Takes)] = &[
    ("p", PROGRAM, "NAME=COMMAND", Takes::Values),
    ("i", INIT_SCRIPT, "PATH", Takes::Values),
    ("x", EXITCODES, "LIST", Takes::Value),
    ("s", STARTSECS, "SECS", Takes::Value),
    ("b", BACKOFF_MAX, "SECS", Takes::Value),
    ("g", GRACE, "SECS", Takes::Value),
    ("l", LOG, "FILE", Takes::Value),
    ("", LOG_MAX_BYTES, "N", Takes::Value),
    ("", LOG_BACKUPS, "K", Takes::Value),
    ("q", QUIET, "", Takes::Nothing),
    ("v", VERBOSE, "", Takes::Nothing),
    ("", CHECK, "", Takes::Nothing),
    ("h", HELP, "", Takes::Nothing),
    ("V", VERSION, "", Takes::Nothing),
];

/// The options before `--`, in command-line order: (index into TABLE,
/// value). Only the shapes getopts-style tools accept: `-x V`, `-xV`,
/// clusters of flags (`-qv`, `-qx V`), `--long V`, `--long=V`.
struct Parsed<'a> {
    given: Vec<(usize, Option<&'a str>)>,
    /// Arguments that are not options (always an error for init).
    free: Vec<&'a str>,
}

impl<'a> Parsed<'a> {
    fn read(args: &[&'a str]) -> Result<Parsed<'a>, UsageError> {
        let mut parsed = Parsed {
            given: Vec::with_capacity(args.len()),
            free: Vec::new(),
        };
        let mut rest = args.iter().copied();
        while let Some(arg) = rest.next() {
            if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (long, None),
                };
                let Some(index) = TABLE.iter().position(|&(_, l, _, _)| l == name) else {
                    return Err(usage(format!("unknown option '--{name}'")));
                };
                let value = match (takes(index), inline) {
                    (Takes::Nothing, Some(_)) => {
                        return Err(usage(format!("option '--{name}' takes no value")));
                    }
                    (Takes::Nothing, None) => None,
                    (_, Some(value)) => Some(value),
                    (_, None) => match rest.next() {
                        Some(value) => Some(value),
                        None => return Err(usage(format!("option '--{name}' needs a value"))),
                    },
                };
                parsed.add(index, value)?;
            } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
                for (at, letter) in cluster.char_indices() {
                    let Some(index) = TABLE.iter().position(|&(short, _, _, _)| {
                        short.starts_with(letter) && short.len() == letter.len_utf8()
                    }) else {
                        return Err(usage(format!("unknown option '-{letter}'")));
                    };
                    if takes(index) == Takes::Nothing {
                        parsed.add(index, None)?;
                        continue;
                    }
                    // The rest of the cluster, or else the next argument, is
                    // the value.
                    let attached = cluster.get(at + letter.len_utf8()..).unwrap_or("");
                    let value = if attached.is_empty() {
                        match rest.next() {
                            Some(value) => value,
                            None => {
                                return Err(usage(format!("option '-{letter}' needs a value")));
                            }
                        }
                    } else {
                        attached
                    };
                    parsed.add(index, Some(value))?;
                    break;
                }
            } else {
                parsed.free.push(arg);
            }
        }
        Ok(parsed)
    }

    fn add(&mut self, index: usize, value: Option<&'a str>) -> Result<(), UsageError> {
        if takes(index) == Takes::Value && self.given.iter().any(|(i, _)| *i == index) {
            return Err(usage(format!(
                "option '--{}' is given more than once",
                long_name(index)
            )));
        }
        self.given.push((index, value));
        Ok(())
    }

    fn present(&self, long: &str) -> bool {
        self.given.iter().any(|(i, _)| long_name(*i) == long)
    }

    /// The value of a one-value option.
    fn value(&self, long: &str) -> Option<&'a str> {
        self.given
            .iter()
            .find(|(i, _)| long_name(*i) == long)
            .and_then(|(_, v)| *v)
    }
}

fn takes(index: usize) -> Takes {
    TABLE.get(index).map_or(Takes::Nothing, |&(_, _, _, t)| t)
}

fn long_name(index: usize) -> &'static str {
    TABLE.get(index).map_or("", |&(_, long, _, _)| long)
}

/// What `--check` prints: the configuration as init understood it.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    for program in &config.programs {
        match &program.kind {
            ProgramKind::Command(words) => {
                out.push_str(&format!(
                    "program {}: {}\n",
                    program.name,
                    quote_words(words.iter().map(String::as_str))
                ));
            }
            ProgramKind::InitScript(script) => {
                let folder = path::parent(script).unwrap_or(b"/");
                out.push_str(&format!(
                    "init script {}: bash {} (in {}, if it exists at start)\n",
                    program.name,
                    shell_quote(&path::display(script)),
                    path::display(folder)
                ));
            }
        }
    }
    if let Some(main) = &config.main {
        let words: Vec<String> = main
            .iter()
            .map(|w| path::display(w.to_bytes()).into_owned())
            .collect();
        out.push_str(&format!(
            "main: {}\n",
            quote_words(words.iter().map(String::as_str))
        ));
    }
    let p = &config.policy;
    out.push_str(&format!(
        "expected exit codes: {}; startsecs {}; backoff-max {}; grace {}\n",
        p.exitcodes, p.startsecs, p.backoff_max, p.grace
    ));
    let l = &config.log;
    let rotation = match l.max_bytes {
        0 => "never rotated".to_string(),
        n => format!("rotated at {n} bytes, {} kept", l.backups),
    };
    match &l.target {
        LogTarget::Stderr => out.push_str("log: standard error only\n"),
        LogTarget::File(file) => out.push_str(&format!(
            "log: {} ({rotation}){}\n",
            path::display(file),
            if l.quiet {
                ""
            } else {
                ", copied to standard error"
            }
        )),
    }
    out
}

fn quote_words<'a>(words: impl Iterator<Item = &'a str>) -> String {
    words.map(shell_quote).collect::<Vec<_>>().join(" ")
}

/// A word as a shell would need it quoted to read it back.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Parses the arguments after the program name. `cwd` makes relative `-i`
/// and `-l` paths absolute, as they were meant at start.
pub fn parse(args: &[&'static CStr], cwd: &[u8]) -> Result<Request, UsageError> {
    let split_at = args.iter().position(|a| a.to_bytes() == b"--");
    let (opts, main) = match split_at {
        Some(at) => (args.get(..at).unwrap_or(&[]), args.get(at + 1..)),
        None => (args, None),
    };
    let mut utf8 = Vec::with_capacity(opts.len());
    for arg in opts {
        match core::str::from_utf8(arg.to_bytes()) {
            Ok(s) => utf8.push(s),
            Err(_) => {
                return Err(usage(format!(
                    "option argument '{}' is not valid UTF-8",
                    path::display(arg.to_bytes())
                )));
            }
        }
    }
    let m = Parsed::read(&utf8)?;
    if m.present(HELP) {
        return Ok(Request::Help);
    }
    if m.present(VERSION) {
        return Ok(Request::Version);
    }
    if let Some(extra) = m.free.first() {
        return Err(usage(format!(
            "unexpected argument '{extra}': put the main command after '--'"
        )));
    }

    let mut programs: Vec<ProgramSpec> = Vec::new();
    for (index, value) in &m.given {
        let value = value.unwrap_or("");
        let spec = match long_name(*index) {
            PROGRAM => parse_program(value)?,
            INIT_SCRIPT => parse_init_script(value, cwd)?,
            _ => continue,
        };
        if programs.iter().any(|p| p.name == spec.name) {
            return Err(usage(format!(
                "the program name '{}' is used twice",
                spec.name
            )));
        }
        programs.push(spec);
    }

    // A trailing `--` with nothing after it is no main command: an image's
    // ENTRYPOINT ends with `--` so that `docker run IMAGE CMD` can add one,
    // and must still work when no CMD is given.
    let main: Option<Vec<&'static CStr>> = main
        .filter(|words| !words.is_empty())
        .map(|words| words.to_vec());
    match &main {
        Some(words) if words.first().is_some_and(|w| w.is_empty()) => {
            return Err(usage("the main command is empty"));
        }
        None if programs.is_empty() => {
            return Err(usage(
                "nothing to run: give -p NAME=COMMAND, -i PATH or '-- COMMAND'",
            ));
        }
        _ => {}
    }

    let policy = Policy {
        exitcodes: match m.value(EXITCODES) {
            Some(list) => ExitCodes::parse(list).map_err(|e| usage(format!("--exitcodes: {e}")))?,
            None => ExitCodes::default(),
        },
        startsecs: seconds(&m, STARTSECS, DEFAULT_STARTSECS)?,
        backoff_max: seconds(&m, BACKOFF_MAX, DEFAULT_BACKOFF_MAX)?,
        grace: seconds(&m, GRACE, DEFAULT_GRACE)?,
    };

    let target = match m.value(LOG) {
        Some("-") => LogTarget::Stderr,
        Some("") => return Err(usage("--log: the FILE is empty")),
        Some(file) => LogTarget::File(path::join(cwd, file.as_bytes())),
        None => LogTarget::File(DEFAULT_LOG.as_bytes().to_vec()),
    };
    let log = LogConfig {
        target,
        max_bytes: number(&m, LOG_MAX_BYTES, DEFAULT_LOG_MAX_BYTES, u64::MAX)?,
        backups: u32::try_from(number(
            &m,
            LOG_BACKUPS,
            u64::from(DEFAULT_LOG_BACKUPS),
            u64::from(MAX_LOG_BACKUPS),
        )?)
        .unwrap_or(MAX_LOG_BACKUPS),
        quiet: m.present(QUIET),
        verbose: m.present(VERBOSE),
    };

    let config = Box::new(Config {
        programs,
        main,
        policy,
        log,
    });
    Ok(if m.present(CHECK) {
        Request::Check(config)
    } else {
        Request::Run(config)
    })
}

fn parse_program(value: &str) -> Result<ProgramSpec, UsageError> {
    let Some((name, command)) = value.split_once('=') else {
        return Err(usage(format!("--program '{value}': expected NAME=COMMAND")));
    };
    let name = ProgramName::new(name).map_err(|e| usage(format!("--program '{value}': {e}")))?;
    let words = shellwords::split(command)
        .map_err(|e| usage(format!("--program '{value}': {e} in COMMAND")))?;
    if words.first().is_none_or(|w| w.is_empty()) {
        return Err(usage(format!("--program '{value}': the COMMAND is empty")));
    }
    Ok(ProgramSpec {
        name,
        kind: ProgramKind::Command(words),
    })
}

fn parse_init_script(value: &str, cwd: &[u8]) -> Result<ProgramSpec, UsageError> {
    if value.is_empty() {
        return Err(usage("--init-script: the PATH is empty"));
    }
    let script = path::join(cwd, value.as_bytes());
    let Some(file_name) = path::file_name(&script).and_then(|n| core::str::from_utf8(n).ok())
    else {
        return Err(usage(format!("--init-script '{value}': not a file name")));
    };
    Ok(ProgramSpec {
        name: ProgramName::for_script(file_name),
        kind: ProgramKind::InitScript(script),
    })
}

fn seconds(m: &Parsed<'_>, name: &str, default: &str) -> Result<Seconds, UsageError> {
    let text = m.value(name).unwrap_or(default);
    Seconds::parse(text).map_err(|e| usage(format!("--{name}: {e}")))
}

fn number(m: &Parsed<'_>, name: &str, default: u64, max: u64) -> Result<u64, UsageError> {
    let Some(text) = m.value(name) else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(usage(format!("--{name}: '{text}' is more than {max}"))),
        Err(_) => Err(usage(format!(
            "--{name}: '{text}' is not a whole number >= 0"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments as main gets them: C strings that live for ever.
    pub(super) fn leak(bytes: Vec<u8>) -> &'static CStr {
        Box::leak(alloc::ffi::CString::new(bytes).unwrap().into_boxed_c_str())
    }

    fn args(list: &[&str]) -> Vec<&'static CStr> {
        list.iter().map(|a| leak(a.as_bytes().to_vec())).collect()
    }

    fn run(list: &[&str]) -> Config {
        match parse(&args(list), b"/work") {
            Ok(Request::Run(c)) => *c,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    fn err(list: &[&str]) -> String {
        match parse(&args(list), b"/work") {
            Err(e) => e.0,
            Ok(other) => panic!("{list:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&["--", "true"]);
        assert_eq!(c.policy.exitcodes, ExitCodes::default());
        assert_eq!(c.policy.startsecs.to_string(), "1");
        assert_eq!(c.policy.backoff_max.to_string(), "60");
        assert_eq!(c.policy.grace.to_string(), "8");
        assert_eq!(c.log.target, LogTarget::File(DEFAULT_LOG.into()));
        assert_eq!(c.log.max_bytes, 10_485_760);
        assert_eq!(c.log.backups, 3);
        assert!(!c.log.quiet && !c.log.verbose);
        assert_eq!(c.main, Some(args(&["true"])));
    }

    #[test]
    fn every_flag_short_and_long() {
        let c = run(&[
            "-p",
            "a=x y",
            "--program",
            "b=z",
            "-i",
            "s.sh",
            "--init-script",
            "/t/u.sh",
            "-x",
            "1",
            "-s",
            "0.5",
            "-b",
            "3",
            "-g",
            "2",
            "-l",
            "log",
            "--log-max-bytes",
            "100",
            "--log-backups",
            "0",
            "-q",
            "-v",
        ]);
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "s_sh", "u_sh"]);
        assert_eq!(
            c.programs[0].kind,
            ProgramKind::Command(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            c.programs[2].kind,
            ProgramKind::InitScript("/work/s.sh".into())
        );
        assert!(c.policy.exitcodes.contains(1) && !c.policy.exitcodes.contains(0));
        assert_eq!(c.policy.startsecs.to_string(), "0.5");
        assert_eq!(c.policy.backoff_max.to_string(), "3");
        assert_eq!(c.policy.grace.to_string(), "2");
        assert_eq!(c.log.target, LogTarget::File("/work/log".into()));
        assert_eq!((c.log.max_bytes, c.log.backups), (100, 0));
        assert!(c.log.quiet && c.log.verbose);
        assert_eq!(c.main, None);
        let c = run(&[
            "--exitcodes=3",
            "--startsecs=2",
            "--backoff-max=4",
            "--grace=5",
            "--log=-",
            "--quiet",
            "--verbose",
            "--",
            "x",
        ]);
        assert!(c.policy.exitcodes.contains(3));
        assert_eq!(c.log.target, LogTarget::Stderr);
    }

    #[test]
    fn short_clusters_attached_values_and_option_like_values() {
        let c = run(&["-qvx1", "-pa=x", "--log", "-q", "-s0"]);
        assert!(c.log.quiet && c.log.verbose);
        assert!(c.policy.exitcodes.contains(1) && !c.policy.exitcodes.contains(0));
        assert_eq!(c.programs[0].name.as_str(), "a");
        // A value is taken as it is, even when it looks like an option.
        assert_eq!(c.log.target, LogTarget::File("/work/-q".into()));
        assert_eq!(c.policy.startsecs.to_string(), "0");
        assert!(err(&["-g", "-1.5x", "--", "x"]).contains("'-1.5x'"));
        let c = run(&["-p", "-x=y", "--program=b=c d"]);
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["-x", "b"]);
    }

    #[test]
    fn a_trailing_double_dash_is_no_main_command() {
        let c = run(&["-p", "a=x", "--"]);
        assert_eq!(c.main, None);
        assert_eq!(c.programs.len(), 1);
    }

    #[test]
    fn programs_keep_command_line_order() {
        let c = run(&["-i", "/a/first.sh", "-p", "second=x", "-i", "/b/third"]);
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["first_sh", "second", "third"]);
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(&args(&["-h"]), b"/"), Ok(Request::Help)));
        assert!(parse(&args(&["--help", "--bogus"]), b"/").is_err());
        assert!(matches!(parse(&args(&["-V"]), b"/"), Ok(Request::Version)));
        assert!(matches!(
            parse(&args(&["--version"]), b"/"),
            Ok(Request::Version)
        ));
    }

    #[test]
    fn help_lists_every_option_of_the_table() {
        let help = help_text();
        for &(short, long, hint, _) in TABLE {
            let flag = if short.is_empty() {
                format!("    --{long}")
            } else {
                format!("-{short}, --{long}")
            };
            let line = help
                .lines()
                .find(|l| l.contains(&flag))
                .unwrap_or_else(|| panic!("{flag} not in help"));
            assert!(line.contains(hint), "{line}");
        }
        let listed = help
            .lines()
            .filter(|l| l.trim_start().starts_with('-') && l.contains("--"))
            .count();
        // Every flag line, plus the `-- COMMAND` line.
        assert_eq!(listed, TABLE.len() + 1, "{help}");
    }

    #[test]
    fn check_describes_the_configuration() {
        let c = match parse(
            &args(&[
                "--check",
                "-p",
                "a=sh -c 'echo hi'",
                "-i",
                "/h/p.sh",
                "-x",
                "0,3,3",
                "--",
                "x y",
            ]),
            b"/",
        ) {
            Ok(Request::Check(c)) => c,
            other => panic!("{other:?}"),
        };
        let text = describe(&c);
        assert!(text.contains("program a: sh -c 'echo hi'\n"), "{text}");
        assert!(
            text.contains("init script p_sh: bash /h/p.sh (in /h, if it exists at start)\n"),
            "{text}"
        );
        assert!(text.contains("main: 'x y'\n"), "{text}");
        assert!(
            text.contains("expected exit codes: 0,3; startsecs 1; backoff-max 60; grace 8\n"),
            "{text}"
        );
        assert!(text.contains("log: /tmp/.cocalc/cocalc-init.log (rotated at 10485760 bytes, 3 kept), copied to standard error\n"), "{text}");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn help_fits_80_columns_and_points_to_the_man_page() {
        let help = help_text();
        // One line a flag: no continuation lines.
        assert!(
            !help
                .lines()
                .any(|l| l.starts_with("                              ")),
            "{help}"
        );
        assert!(help.lines().all(|l| l.chars().count() <= 80), "{help}");
        assert!(
            help.trim_end()
                .ends_with("See 'man cocalc-init' for details.")
        );
    }

    #[test]
    fn main_command_keeps_non_utf8_and_dashes() {
        let raw = leak(vec![0xff, 0xfe]);
        let mut a = args(&["-q", "--", "echo", "--", "-x"]);
        a.push(raw);
        match parse(&a, b"/") {
            Ok(Request::Run(c)) => {
                let main = c.main.unwrap();
                assert_eq!(main[..3], args(&["echo", "--", "-x"])[..]);
                assert_eq!(main[3], raw);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_names_the_value() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bogus"], "bogus"),
            (&["-p"], "'-p' needs a value"),
            (&["--log"], "'--log' needs a value"),
            (&["--quiet=yes", "--", "x"], "'--quiet' takes no value"),
            (&["-qz", "--", "x"], "unknown option '-z'"),
            (&["-"], "unexpected argument '-'"),
            (&["-p", "nameonly"], "'nameonly'"),
            (&["-p", "=cmd"], "NAME is empty"),
            (&["-p", "a="], "COMMAND is empty"),
            (&["-p", "a=  "], "COMMAND is empty"),
            (&["-p", "a b=x"], "'a b'"),
            (&["-p", "a/b=x"], "'a/b'"),
            (&["-p", "main=x"], "reserved"),
            (&["-p", "a=x", "-p", "a=y"], "'a' is used twice"),
            (
                &["-p", "run_sh=x", "-i", "/x/run.sh"],
                "'run_sh' is used twice",
            ),
            (&["-x", "256", "--", "x"], "'256'"),
            (&["-x", "abc", "--", "x"], "'abc'"),
            (&["-s", "-1", "--", "x"], "'-1'"),
            (&["-g", "soon", "--", "x"], "'soon'"),
            (&["-b", "x", "--", "x"], "'x'"),
            (&["-p", "a=sh -c 'oops"], "unbalanced single quote"),
            (&["-p", "a=sh -c \"oops"], "unbalanced double quote"),
            (&["--log-max-bytes", "-5", "--", "x"], "'-5'"),
            (&["--log-max-bytes", "1M", "--", "x"], "'1M'"),
            (&["--log-backups", "x", "--", "x"], "'x'"),
            (&["--log-backups", "5000", "--", "x"], "'5000'"),
            (&[], "nothing to run"),
            (&["-q"], "nothing to run"),
            (&["--"], "nothing to run"),
            (&["-q", "--"], "nothing to run"),
            (&["--", ""], "main command is empty"),
            (&["sleep", "1"], "'sleep'"),
            (&["-l", "", "--", "x"], "FILE is empty"),
            (&["-i", "", "--", "x"], "PATH is empty"),
            (&["-g", "1", "-g", "2", "--", "x"], "grace"),
        ];
        for (list, needle) in cases {
            let e = err(list);
            assert!(e.contains(needle), "{list:?}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn usage_error_has_two_lines_pointing_to_help() {
        let e = parse(&args(&["--bogus"]), b"/").unwrap_err().to_string();
        assert_eq!(e.lines().count(), 2);
        assert!(e.ends_with("Try 'cocalc-init --help' for more information."));
        // Even when the value quoted holds a newline or an escape.
        let e = parse(&args(&["-p", "a\nb\x1b[2J"]), b"/")
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.contains(r"'a\nb\u{1b}[2J'"), "{e}");
    }
}

/// Property tests with a small seeded generator (no extra crate): any argv
/// gives a configuration or a usage error — never a panic — and what
/// parses describes itself.
#[cfg(test)]
mod properties {
    use super::*;

    /// xorshift64*: deterministic, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    const PIECES: &[&str] = &[
        "-p",
        "-i",
        "-x",
        "-s",
        "-b",
        "-g",
        "-l",
        "-q",
        "-v",
        "-h",
        "-V",
        "--",
        "--program",
        "--init-script",
        "--exitcodes=",
        "--startsecs",
        "--log-max-bytes",
        "--log-backups",
        "--check",
        "--bogus",
        "-",
        "=",
        "a=b",
        "main=x",
        "n=sh -c 'x'",
        "n=\"",
        "n='",
        "n=\\",
        "0,2",
        "256",
        "-1",
        "0.5",
        "1e9",
        "nan",
        "",
        " ",
        "x y",
        "é",
        "/",
        "./a.sh",
        "a.b-c_d=e",
        ",",
        "-pq",
        "-qv",
        "-x1",
        "--grace=0",
        "\u{0}",
        "a\nb=x",
        "\t",
    ];

    #[test]
    fn any_argv_parses_or_is_a_usage_error() {
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        for _ in 0..20_000 {
            let n = rng.below(8);
            let argv: Vec<&'static CStr> = (0..n)
                .map(|_| {
                    let mut a = rng.pick(PIECES).to_string();
                    if rng.below(4) == 0 {
                        a.push_str(rng.pick(PIECES));
                    }
                    // A NUL cannot be in an argument; the piece "\u{0}"
                    // stands for an empty one.
                    tests::leak(a.replace('\u{0}', "").into_bytes())
                })
                .collect();
            match parse(&argv, b"/w") {
                Ok(Request::Run(c)) | Ok(Request::Check(c)) => {
                    assert!(!c.programs.is_empty() || c.main.is_some(), "{argv:?}");
                    let _ = describe(&c);
                }
                Ok(Request::Help | Request::Version) => {}
                Err(e) => assert!(
                    !e.0.is_empty() && !e.0.chars().any(char::is_control),
                    "{argv:?}: {e:?}"
                ),
            }
        }
    }

    #[test]
    fn split_words_read_back_through_quoting() {
        let mut rng = Rng(0x0dd_ba11);
        let alphabet = [
            'a', ' ', '\'', '"', '\\', '$', '\t', 'é', '\n', '|', '*', '#',
        ];
        for _ in 0..20_000 {
            let len = rng.below(12);
            let line: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if let Ok(words) = shellwords::split(&line) {
                let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
                assert_eq!(
                    shellwords::split(&quoted.join(" ")).unwrap(),
                    words,
                    "{line:?}"
                );
            }
        }
    }
}
