//! The command line: the option table, `--help`, `--version`, and argv →
//! [`Config`]. No side effects: the caller prints and exits.
//!
//! argv is split at the first `--` here, by hand: getopts takes only UTF-8
//! text, and the main command keeps its arguments exactly as the OS gave
//! them. getopts reads the options before it, from one table that also
//! makes `--help`; its errors are told in our words.

use std::ffi::{CString, OsString};
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use getopts::{Fail, Matches, Options};

use crate::config::MAIN_NAME;
use crate::config::{Config, LogConfig, LogTarget, ProgramKind, ProgramName, ProgramSpec};
use crate::destination::Place;
use crate::expand;
use crate::order;
use crate::settings::{self, Key, Settings};
use crate::shellwords;
use crate::values::{ExitCodes, Level, Policy, Role, Seconds};

pub const DEFAULT_LOG: &str = "/tmp/.cocalc/cocalc-init.log";
pub const DEFAULT_CONTROL: &str = "/tmp/.cocalc/cocalc-init.sock";
pub const DEFAULT_STARTSECS: &str = "1";
pub const DEFAULT_BACKOFF_MAX: &str = "60";
pub const DEFAULT_GRACE: &str = "8";
pub const DEFAULT_EXITCODES: &str = "0,2";
/// 10 MiB.
pub const DEFAULT_LOG_MAX_BYTES: &str = "10485760";
pub const DEFAULT_LOG_BACKUPS: &str = "3";
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// More rotated files than this is surely a typo.
pub const MAX_LOG_BACKUPS: u32 = 1000;

// Option names, kept in one place: getopts panics on a name it was not
// given, and a test reads every one of them.
const PROGRAM: &str = "program";
const OPTION: &str = "option";
const INIT_SCRIPT: &str = "init-script";
const EXITCODES: &str = "exitcodes";
const STARTSECS: &str = "startsecs";
const BACKOFF_MAX: &str = "backoff-max";
const GRACE: &str = "grace";
const LOG: &str = "log";
const LOG_MAX_BYTES: &str = "log-max-bytes";
const LOG_BACKUPS: &str = "log-backups";
const LOG_LEVEL: &str = "log-level";
const CONTROL: &str = "control";
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A value, and the option may repeat.
    Values,
    /// One value.
    Value,
    /// No value; may repeat (`-vv`).
    Nothing,
}

/// One option: the getopts table and `--help` are made from these rows,
/// and a default is written once, here, for both the parse and the help.
struct Row {
    short: &'static str,
    long: &'static str,
    /// The value's name in `--help`.
    hint: &'static str,
    takes: Takes,
    help: &'static str,
    default: Option<&'static str>,
}

const TABLE: &[Row] = &[
    Row {
        short: "p",
        long: PROGRAM,
        hint: "NAME=COMMAND",
        takes: Takes::Values,
        help: "supervise COMMAND as NAME (repeatable)",
        default: None,
    },
    Row {
        short: "i",
        long: INIT_SCRIPT,
        hint: "PATH",
        takes: Takes::Values,
        help: "run `bash PATH` if PATH exists (repeatable)",
        default: None,
    },
    Row {
        short: "o",
        long: OPTION,
        hint: "NAME.KEY=VAL",
        takes: Takes::Values,
        help: "a program's own setting (repeatable; keys below)",
        default: None,
    },
    Row {
        short: "x",
        long: EXITCODES,
        hint: "LIST",
        takes: Takes::Value,
        help: "exit codes that are expected",
        default: Some(DEFAULT_EXITCODES),
    },
    Row {
        short: "s",
        long: STARTSECS,
        hint: "SECS",
        takes: Takes::Value,
        help: "a shorter run is a failed start",
        default: Some(DEFAULT_STARTSECS),
    },
    Row {
        short: "b",
        long: BACKOFF_MAX,
        hint: "SECS",
        takes: Takes::Value,
        help: "longest wait between restarts",
        default: Some(DEFAULT_BACKOFF_MAX),
    },
    Row {
        short: "g",
        long: GRACE,
        hint: "SECS",
        takes: Takes::Value,
        help: "wait after the stop signal before SIGKILL",
        default: Some(DEFAULT_GRACE),
    },
    Row {
        short: "l",
        long: LOG,
        hint: "FILE",
        takes: Takes::Value,
        help: "the log; - = stderr",
        default: Some(DEFAULT_LOG),
    },
    Row {
        short: "",
        long: LOG_MAX_BYTES,
        hint: "N",
        takes: Takes::Value,
        help: "rotate the log at N bytes, 0 = never",
        default: Some(DEFAULT_LOG_MAX_BYTES),
    },
    Row {
        short: "",
        long: LOG_BACKUPS,
        hint: "K",
        takes: Takes::Value,
        help: "rotated log files kept",
        default: Some(DEFAULT_LOG_BACKUPS),
    },
    Row {
        short: "",
        long: LOG_LEVEL,
        hint: "LEVEL",
        takes: Takes::Value,
        help: "debug, info, warn or error",
        default: Some(DEFAULT_LOG_LEVEL),
    },
    Row {
        short: "",
        long: CONTROL,
        hint: "PATH",
        takes: Takes::Value,
        help: "the control socket",
        default: Some(DEFAULT_CONTROL),
    },
    Row {
        short: "q",
        long: QUIET,
        hint: "",
        takes: Takes::Nothing,
        help: "do not copy log lines to stderr",
        default: None,
    },
    Row {
        short: "v",
        long: VERBOSE,
        hint: "",
        takes: Takes::Nothing,
        help: "the same as --log-level debug",
        default: None,
    },
    Row {
        short: "",
        long: CHECK,
        hint: "",
        takes: Takes::Nothing,
        help: "check the command line, print what would run",
        default: None,
    },
    Row {
        short: "h",
        long: HELP,
        hint: "",
        takes: Takes::Nothing,
        help: "print this help and exit",
        default: None,
    },
    Row {
        short: "V",
        long: VERSION,
        hint: "",
        takes: Takes::Nothing,
        help: "print the version and exit",
        default: None,
    },
];

/// The table as getopts takes it; `described`: with the help texts,
/// which only `--help` shows (a start does not build them).
fn options_with(described: bool) -> Options {
    let mut opts = Options::new();
    for row in TABLE {
        let (short, long) = (row.short, row.long);
        let (help, hint) = match (described, row.default) {
            (false, _) => (String::new(), ""),
            (true, Some(default)) => (format!("{} [{default}]", row.help), row.hint),
            (true, None) => (row.help.to_string(), row.hint),
        };
        match row.takes {
            Takes::Values => opts.optmulti(short, long, &help, hint),
            Takes::Value => opts.optopt(short, long, &help, hint),
            Takes::Nothing => opts.optflagmulti(short, long, &help),
        };
    }
    opts
}

fn options() -> Options {
    options_with(false)
}

pub fn help_text() -> String {
    options_with(true).usage_with_format(|rows| {
        let mut out = String::from(
            "Usage: cocalc-init [OPTIONS] [-- COMMAND [ARG]...]\n\
             A small init for containers: reaps zombies, forwards signals, restarts\n\
             programs that exit unexpectedly, and logs what they print.\n\n",
        );
        for row in rows {
            let (flag, help) = one_line(&row);
            out.push_str(&format!("  {flag:<28}{help}\n"));
        }
        out.push_str(&format!(
            "  {:<28}main command: init exits with its status\n\n\
             Keys of -o: exitcodes, startsecs, startretries, autorestart, autostart,\n\
             stopsignal, stopwaitsecs, directory, environment, user, stdout_logfile,\n\
             stderr_logfile, redirect_stderr, {{stdout,stderr}}_logfile_{{maxbytes,backups}}\n\
             (supervisord's), essential, after, ready, cron, every. The main command takes\n\
             directory, environment, user, stopsignal and after. Commands and values\n\
             expand %(ENV_X)s, %(program_name)s and %% as supervisord does.\n\n\
             Inside the container: cocalc-init status|start|stop|restart [NAME...|all]\n\
             \x20                     cocalc-init signal SIG NAME...|all   [--control PATH]\n\
             \x20                     cocalc-init wait NAME...|all [--timeout SECS]\n\
             \x20                     cocalc-init tail [-f] [-n LINES] NAME...|all\n\n\
             See 'man cocalc-init' for details.\n",
            "-- COMMAND [ARG]..."
        ));
        out
    })
}

/// getopts' help row → (flags and value name, description). getopts puts
/// the description of a long flag on a line of its own; `--help` keeps one
/// line a flag.
fn one_line(row: &str) -> (String, String) {
    // Every row starts with four spaces, then the flags; the description
    // starts at column 24 or on the next lines.
    let body = row.get(4..).unwrap_or("");
    let (flag, help) = match body.split_once('\n') {
        Some((flag, help)) => (flag, help),
        None => (body.get(..20).unwrap_or(body), body.get(20..).unwrap_or("")),
    };
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    (flag.trim_end().to_string(), help)
}

pub fn version_text() -> String {
    format!("cocalc-init {}\n", env!("CARGO_PKG_VERSION"))
}

/// getopts' failure, in our words.
fn fail_message(fail: Fail) -> String {
    let dashed = |name: &str| {
        if name.chars().count() == 1 {
            format!("-{name}")
        } else {
            format!("--{name}")
        }
    };
    match fail {
        Fail::ArgumentMissing(name) => format!("option '{}' needs a value", dashed(&name)),
        Fail::UnrecognizedOption(name) => format!("unknown option '{}'", dashed(&name)),
        Fail::OptionDuplicated(name) => {
            let long = TABLE
                .iter()
                .find(|row| row.short == name || row.long == name)
                .map_or(name.as_str(), |row| row.long);
            format!("option '--{long}' is given more than once")
        }
        Fail::UnexpectedArgument(name) => format!("option '{}' takes no value", dashed(&name)),
        Fail::OptionMissing(name) => format!("option '{}' is missing", dashed(&name)),
    }
}

/// Parses the arguments after the program name. `cwd` makes relative `-i`
/// and `-l` paths absolute, as they were meant at start.
pub fn parse(args: &[OsString], cwd: &Path) -> Result<Request, UsageError> {
    let split_at = args.iter().position(|a| a == "--");
    let (opts, main) = match split_at {
        Some(at) => (args.get(..at).unwrap_or(&[]), args.get(at + 1..)),
        None => (args, None),
    };
    let m = matches(opts)?;
    if m.opt_present(HELP) {
        return Ok(Request::Help);
    }
    if m.opt_present(VERSION) {
        return Ok(Request::Version);
    }
    if let Some(extra) = m.free.first() {
        return Err(unexpected(opts, extra));
    }
    // Every value is checked before asking whether there is anything to
    // run: `-g abc` is first of all a bad grace. The global flags come
    // first: they are the defaults of every program's settings.
    let policy = policy(&m)?;
    let defaults = Settings::defaults(&policy);
    let mut programs = programs(&m, cwd, &defaults)?;
    // The main command is one more child, last in the table; a bad one is
    // said after the options, as before it was one.
    let main = main_command(main);
    if let Ok(Some(argv)) = &main {
        programs.push(ProgramSpec {
            name: ProgramName::main(),
            kind: ProgramKind::Main(argv.clone()),
            settings: defaults.clone(),
        });
    }
    let mut given_keys: Vec<(String, Key)> = Vec::new();
    for value in m.opt_strs(OPTION) {
        apply_option(&value, &mut programs, &mut given_keys)?;
    }
    check_order(&programs)?;
    check_schedules(&programs, &given_keys)?;
    let log = log_config(&m, cwd)?;
    check_outputs(&programs, &log.target)?;
    main?;
    if programs.is_empty() {
        return Err(usage(
            "nothing to run: give -p NAME=COMMAND, -i PATH or '-- COMMAND'",
        ));
    }
    let mut config = Box::new(Config {
        programs,
        policy,
        log,
        control: None,
    });
    // Only what supervises programs has anything to control, unless a
    // socket is asked for by name.
    config.control = match m.opt_str(CONTROL).as_deref() {
        Some("none") => None,
        Some("") => return Err(usage("--control: the PATH is empty")),
        Some(path) => Some(cwd.join(path)),
        None if !config.supervises() => None,
        None => Some(DEFAULT_CONTROL.into()),
    };
    Ok(if m.opt_present(CHECK) {
        Request::Check(config)
    } else {
        Request::Run(config)
    })
}

/// A word getopts left over: a verb misspelt, a command cut from its `-p`
/// by the shell, or a main command without its `--`.
fn unexpected(opts: &[OsString], extra: &str) -> UsageError {
    let words: Vec<&str> = opts.iter().filter_map(|a| a.to_str()).collect();
    let at = words.iter().position(|w| *w == extra).unwrap_or(0);
    let looks_like_a_word = extra.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && extra.starts_with(|c: char| c.is_ascii_alphabetic());
    if at == 0 && looks_like_a_word {
        return unknown_command(extra);
    }
    match program_before(&words, at) {
        Some(program) if !words.iter().any(|w| w.starts_with(&format!("{program}="))) => {
            usage(format!(
                "-p '{program}': NAME and COMMAND are one argument, joined by '=': -p '{program}={extra} …'"
            ))
        }
        Some(program) => usage(format!(
            "unexpected argument '{extra}': is it part of the command of -p {program}? \
             quote NAME=COMMAND as one argument (-p '{program}=COMMAND ARGS')"
        )),
        None => usage(format!(
            "unexpected argument '{extra}': put the main command after '--'"
        )),
    }
}

/// The options before `--`, read by getopts (which takes UTF-8 only: the
/// main command after `--` keeps its bytes).
fn matches(opts: &[OsString]) -> Result<Matches, UsageError> {
    let mut utf8 = Vec::with_capacity(opts.len());
    for arg in opts {
        match arg.to_str() {
            Some(s) => utf8.push(s),
            None => {
                return Err(usage(format!(
                    "option argument '{}' is not valid UTF-8",
                    arg.to_string_lossy()
                )));
            }
        }
    }
    options().parse(&utf8).map_err(|f| {
        // `-p sshd=/usr/sbin/sshd -D -e`, unquoted: the shell split the
        // command, and its first option is what getopts tripped on.
        if let Fail::UnrecognizedOption(name) = &f {
            let at = utf8
                .iter()
                .position(|a| a.strip_prefix('-').is_some_and(|a| a.trim_start_matches('-').starts_with(name.as_str())));
            if let Some(program) = at.and_then(|at| program_before(&utf8, at)) {
                return usage(format!(
                    "{}: is it part of the command of -p {program}? quote NAME=COMMAND as one argument \
                     (-p '{program}=COMMAND ARGS')",
                    fail_message(f.clone())
                ));
            }
        }
        usage(fail_message(f))
    })
}

/// The `-p` value just before argument `at`, with only words that are no
/// option between: the command it may have been cut from. The program's
/// NAME, or the whole value where it has no `=`.
fn program_before<'a>(args: &[&'a str], at: usize) -> Option<&'a str> {
    for j in (0..at).rev() {
        let arg = *args.get(j)?;
        let value = if arg == "-p" || arg == "--program" {
            args.get(j + 1).copied().filter(|_| j + 1 < at)
        } else if let Some(value) = arg.strip_prefix("--program=") {
            Some(value)
        } else if arg.starts_with('-') {
            return None;
        } else {
            continue;
        };
        return value.map(|v| v.split_once('=').map_or(v, |(name, _)| name));
    }
    None
}

/// A word where a verb would be, that is none: what it may have meant.
fn unknown_command(word: &str) -> UsageError {
    let near = crate::verbs::VERBS
        .iter()
        .find(|verb| edit_distance(word, verb) <= 2);
    let list = crate::verbs::VERBS.join(", ");
    usage(match near {
        Some(verb) => format!(
            "unknown command '{word}'; did you mean '{verb}'? commands: {list}; \
             a main command goes after '--'"
        ),
        None => {
            format!("unknown command '{word}'; commands: {list}; a main command goes after '--'")
        }
    })
}

/// Levenshtein's distance between two short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // The row for the prefix of `a` read so far: row[j] is the distance
    // to b's first j characters.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut next = Vec::with_capacity(row.len());
        next.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let replace = row.get(j).map_or(usize::MAX, |d| d + usize::from(ca != cb));
            let delete = row.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insert = next.last().map_or(usize::MAX, |d| d + 1);
            next.push(replace.min(delete).min(insert));
        }
        row = next;
    }
    row.last().copied().unwrap_or(0)
}

/// The global flags: every program's defaults.
fn policy(m: &Matches) -> Result<Policy, UsageError> {
    Ok(Policy {
        exitcodes: match m.opt_str(EXITCODES) {
            Some(list) => {
                ExitCodes::parse(&list).map_err(|e| usage(format!("--exitcodes: {e}")))?
            }
            None => ExitCodes::parse(DEFAULT_EXITCODES).map_err(usage)?,
        },
        startsecs: seconds(m, STARTSECS, DEFAULT_STARTSECS)?,
        backoff_max: seconds(m, BACKOFF_MAX, DEFAULT_BACKOFF_MAX)?,
        grace: seconds(m, GRACE, DEFAULT_GRACE)?,
    })
}

/// `-p` and `-i` together, in command-line order, each name once.
fn programs(m: &Matches, cwd: &Path, defaults: &Settings) -> Result<Vec<ProgramSpec>, UsageError> {
    let mut given: Vec<(usize, &str, String)> = m
        .opt_strs_pos(PROGRAM)
        .into_iter()
        .map(|(at, v)| (at, PROGRAM, v))
        .chain(
            m.opt_strs_pos(INIT_SCRIPT)
                .into_iter()
                .map(|(at, v)| (at, INIT_SCRIPT, v)),
        )
        .collect();
    given.sort_by_key(|&(at, ..)| at);
    let mut programs: Vec<ProgramSpec> = Vec::with_capacity(given.len());
    for (_, option, value) in &given {
        let spec = if *option == PROGRAM {
            parse_program(value, defaults)?
        } else {
            parse_init_script(value, cwd, defaults)?
        };
        if programs.iter().any(|p| p.name == spec.name) {
            return Err(usage(format!(
                "the program name '{}' is used twice",
                spec.name
            )));
        }
        programs.push(spec);
    }
    Ok(programs)
}

fn log_config(m: &Matches, cwd: &Path) -> Result<LogConfig, UsageError> {
    let target = match m.opt_str(LOG).as_deref() {
        // /dev/stderr is a link, which the log never follows: it means `-`.
        Some("-" | "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2") => LogTarget::Stderr,
        Some("/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") => LogTarget::Stdout,
        Some("") => return Err(usage("--log: the FILE is empty")),
        Some(file) => LogTarget::File(cwd.join(file)),
        None => LogTarget::File(DEFAULT_LOG.into()),
    };
    Ok(LogConfig {
        target,
        max_bytes: number(m, LOG_MAX_BYTES, DEFAULT_LOG_MAX_BYTES, u64::MAX)?,
        backups: u32::try_from(number(
            m,
            LOG_BACKUPS,
            DEFAULT_LOG_BACKUPS,
            u64::from(MAX_LOG_BACKUPS),
        )?)
        .unwrap_or(MAX_LOG_BACKUPS),
        quiet: m.opt_present(QUIET),
        level: log_level(m)?,
    })
}

/// The words after `--`. A trailing `--` with nothing after it is no main
/// command: an image's ENTRYPOINT ends with `--` so that `docker run IMAGE
/// CMD` can add one, and must still work when no CMD is given.
fn main_command(words: Option<&[OsString]>) -> Result<Option<Vec<CString>>, UsageError> {
    match words.filter(|words| !words.is_empty()) {
        None => Ok(None),
        Some(words) if words.first().is_some_and(|w| w.is_empty()) => {
            Err(usage("the main command is empty"))
        }
        Some(words) => words
            .iter()
            .map(|w| CString::new(w.clone().into_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            // The OS passes arguments as C strings: none holds a NUL.
            .map_err(|_| usage("the main command holds a NUL byte")),
    }
}

/// One `-o NAME.KEY=VALUE`, laid over the settings of the program (or
/// main command) it names. `given`: the keys set so far, for "given twice".
fn apply_option(
    value: &str,
    programs: &mut [ProgramSpec],
    given: &mut Vec<(String, Key)>,
) -> Result<(), UsageError> {
    let bad = |why: &str| usage(format!("--option '{value}': {why}"));
    if value.chars().any(char::is_control) {
        return Err(bad("a control character is not allowed"));
    }
    let (name, key, text) = settings::split(value).map_err(|e| bad(&e))?;
    let text = &expand::expand_for(name, text).map_err(|e| bad(&e))?;
    let program = programs.iter_mut().find(|p| p.name.as_str() == name);
    // A key the main command never takes is said first, main or not.
    let role = match &program {
        Some(program) => program.kind.role(),
        None if name == MAIN_NAME => Role::Main,
        None => Role::Program,
    };
    if !key.applies_to(role) {
        return Err(bad(&if key.is_output() {
            format!(
                "the main command's output is init's own standard output and error \
                 (it keeps the terminal), so {} does not apply",
                key.name()
            )
        } else {
            format!(
                "the main command takes only directory, environment, user, stopsignal \
                 and after: its end ends init, so {} does not apply",
                key.name()
            )
        }));
    }
    let Some(program) = program else {
        return Err(if name == MAIN_NAME {
            usage("--option main.…: there is no main command (give it after '--')")
        } else {
            bad(&no_program(name, programs))
        });
    };
    let target = &mut program.settings;
    if !key.repeats() && given.iter().any(|(n, k)| n == name && *k == key) {
        return Err(bad(&format!("{} is given twice for {name}", key.name())));
    }
    given.push((name.to_string(), key));
    settings::apply(target, key, text).map_err(|e| bad(&e))?;
    if let Some(account) = target.user.as_ref().filter(|_| key == Key::User) {
        if account.is_other_than_init() {
            crate::user::may_change_user().map_err(|e| bad(&e))?;
        }
    }
    Ok(())
}

/// A scheduled program takes neither both schedules nor the keys about
/// keeping a process running; no program waits for a `cron=` one (the
/// wait could be a day).
fn check_schedules(programs: &[ProgramSpec], given: &[(String, Key)]) -> Result<(), UsageError> {
    for program in programs {
        let name = program.name.as_str();
        let keys: Vec<Key> = given
            .iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, k)| k)
            .collect();
        if keys.contains(&Key::Cron) && keys.contains(&Key::Every) {
            return Err(usage(format!(
                "--option {name}.cron and {name}.every: give one schedule, not both"
            )));
        }
        if program.settings.schedule.is_none() {
            continue;
        }
        let running_only = [
            Key::Autorestart,
            Key::Startsecs,
            Key::Startretries,
            Key::Ready,
            Key::Essential,
        ];
        if let Some(key) = keys.iter().find(|k| running_only.contains(k)) {
            return Err(usage(format!(
                "--option {name}.{}: {name} is scheduled (cron or every): a run is judged by \
                 exitcodes and its next time is its retry, so {} does not apply",
                key.name(),
                key.name()
            )));
        }
    }
    for program in programs {
        for dep in &program.settings.after {
            let cron = programs
                .iter()
                .find(|p| p.name.as_str() == dep)
                .is_some_and(|p| {
                    matches!(
                        p.settings.schedule,
                        Some(crate::schedule::Schedule::Cron(..))
                    )
                });
            if cron {
                return Err(usage(format!(
                    "--option '{}.after={dep}': {dep} runs at its cron times, so a wait for \
                     it could last a day; start {} on its own",
                    program.name, program.name
                )));
            }
        }
    }
    Ok(())
}

/// "No such program", with the names there are, or how names are made.
fn no_program(name: &str, programs: &[ProgramSpec]) -> String {
    let names: Vec<&str> = programs
        .iter()
        .filter(|p| p.kind.role() == Role::Program)
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        format!("no program is named '{name}' (programs are named by -p NAME=… and -i PATH)")
    } else {
        format!(
            "no program is named '{name}'; programs: {}",
            names.join(", ")
        )
    }
}

/// Every `after` names another program, never `main`, and the order has
/// no cycle.
fn check_order(programs: &[ProgramSpec]) -> Result<(), UsageError> {
    let index = |name: &str| programs.iter().position(|p| p.name.as_str() == name);
    let owners = programs.iter().map(|p| (p.name.as_str(), &p.settings));
    for (owner, settings) in owners {
        for dep in &settings.after {
            let bad = |why: String| Err(usage(format!("--option '{owner}.after={dep}': {why}")));
            if dep == MAIN_NAME {
                return bad("no program can come after the main command".into());
            }
            if dep == owner {
                return bad(format!("{owner} cannot come after itself"));
            }
            if index(dep).is_none() {
                return bad(no_program(dep, programs));
            }
        }
    }
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    let after: Vec<Vec<usize>> = programs
        .iter()
        .map(|p| p.settings.after.iter().filter_map(|d| index(d)).collect())
        .collect();
    match order::find_cycle(&names, &after) {
        Some(cycle) => Err(usage(format!("the start order has a cycle: {cycle}"))),
        None => Ok(()),
    }
}

/// A program's stderr is either its own or its stdout's; and no program
/// writes raw output into init's own log file.
fn check_outputs(programs: &[ProgramSpec], log: &LogTarget) -> Result<(), UsageError> {
    for program in programs {
        let (name, s) = (program.name.as_str(), &program.settings);
        if s.redirect_stderr && s.stderr.place.is_own() {
            return Err(usage(format!(
                "--option '{name}.redirect_stderr': stderr goes where stdout does, \
                 so {name}.stderr_logfile={} does not apply",
                s.stderr.place
            )));
        }
        for (key, output) in [("stdout_logfile", &s.stdout), ("stderr_logfile", &s.stderr)] {
            let Place::File(path) = &output.place else {
                continue;
            };
            let bad = |why: String| {
                Err(usage(format!(
                    "--option '{name}.{key}={}': {why}",
                    path.display()
                )))
            };
            if matches!(log, LogTarget::File(own) if own == path) {
                return bad(format!(
                    "that is init's own log; leave {key} unset to log there"
                ));
            }
            // One file, one rotation: the streams that share it agree.
            let mut every = programs
                .iter()
                .flat_map(|p| [&p.settings.stdout, &p.settings.stderr]);
            if let Some(other) = every.find(|o| {
                o.place == output.place
                    && (o.max_bytes, o.backups) != (output.max_bytes, output.backups)
            }) {
                return bad(format!(
                    "another stream shares the file and rotates it at {} bytes with {} backups, \
                     not {} with {}",
                    other.max_bytes, other.backups, output.max_bytes, output.backups
                ));
            }
        }
    }
    Ok(())
}

fn parse_program(value: &str, defaults: &Settings) -> Result<ProgramSpec, UsageError> {
    let Some((name, command)) = value.split_once('=') else {
        return Err(usage(format!("--program '{value}': expected NAME=COMMAND")));
    };
    let name = ProgramName::new(name).map_err(|e| usage(format!("--program '{value}': {e}")))?;
    let command = expand::expand_for(name.as_str(), command)
        .map_err(|e| usage(format!("--program '{value}': {e}")))?;
    let words = shellwords::split(&command)
        .map_err(|e| usage(format!("--program '{value}': {e} in COMMAND")))?;
    if words.first().is_none_or(|w| w.is_empty()) {
        return Err(usage(format!("--program '{value}': the COMMAND is empty")));
    }
    Ok(ProgramSpec {
        name,
        kind: ProgramKind::Command(words),
        settings: defaults.clone(),
    })
}

fn parse_init_script(
    value: &str,
    cwd: &Path,
    defaults: &Settings,
) -> Result<ProgramSpec, UsageError> {
    if value.is_empty() {
        return Err(usage("--init-script: the PATH is empty"));
    }
    let script = cwd.join(value);
    let Some(file_name) = script.file_name().and_then(|n| n.to_str()) else {
        return Err(usage(format!("--init-script '{value}': not a file name")));
    };
    Ok(ProgramSpec {
        name: ProgramName::for_script(file_name),
        kind: ProgramKind::InitScript(script),
        settings: defaults.clone(),
    })
}

fn log_level(m: &Matches) -> Result<Level, UsageError> {
    let named = match m.opt_str(LOG_LEVEL) {
        Some(text) => Some(Level::parse(&text).map_err(|e| usage(format!("--{LOG_LEVEL}: {e}")))?),
        None => None,
    };
    match (m.opt_present(VERBOSE), named) {
        (true, Some(level)) if level != Level::Debug => Err(usage(format!(
            "-v means --log-level debug, which --log-level {} contradicts",
            level.name()
        ))),
        (true, _) => Ok(Level::Debug),
        (false, Some(level)) => Ok(level),
        (false, None) => Level::parse(DEFAULT_LOG_LEVEL).map_err(usage),
    }
}

fn seconds(m: &Matches, name: &str, default: &str) -> Result<Seconds, UsageError> {
    let text = m.opt_str(name);
    let text = text.as_deref().unwrap_or(default);
    Seconds::parse(text).map_err(|e| usage(format!("--{name}: {e}")))
}

fn number(m: &Matches, name: &str, default: &str, max: u64) -> Result<u64, UsageError> {
    let text = m.opt_str(name).unwrap_or_else(|| default.to_string());
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

    pub(super) fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn c_args(list: &[&str]) -> Vec<CString> {
        list.iter().map(|a| CString::new(*a).unwrap()).collect()
    }

    fn run(list: &[&str]) -> Config {
        match parse(&args(list), Path::new("/work")) {
            Ok(Request::Run(c)) => *c,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    fn err(list: &[&str]) -> String {
        match parse(&args(list), Path::new("/work")) {
            Err(e) => e.0,
            Ok(other) => panic!("{list:?} parsed: {other:?}"),
        }
    }

    /// The command after `--`, as the table holds it.
    fn main_of(c: &Config) -> Option<Vec<CString>> {
        c.programs.iter().find_map(|p| match &p.kind {
            ProgramKind::Main(argv) => Some(argv.clone()),
            _ => None,
        })
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
        assert!(!c.log.quiet);
        assert_eq!(c.log.level, Level::Info);
        assert_eq!(main_of(&c), Some(c_args(&["true"])));
        // Last in the table, in its role, with the global defaults.
        let main = c.programs.last().unwrap();
        assert_eq!(main.name.as_str(), "main");
        assert_eq!(main.kind.role(), crate::values::Role::Main);
        assert_eq!(main.settings, Settings::defaults(&c.policy));
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
            "--log-level",
            "debug",
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
        assert!(c.log.quiet);
        assert_eq!(c.log.level, Level::Debug);
        assert_eq!(main_of(&c), None);
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
        assert!(c.log.quiet);
        assert_eq!(c.log.level, Level::Debug);
        assert!(c.policy.exitcodes.contains(1) && !c.policy.exitcodes.contains(0));
        assert_eq!(c.programs[0].name.as_str(), "a");
        // A value is taken as it is, even when it looks like an option.
        assert_eq!(c.log.target, LogTarget::File("/work/-q".into()));
        assert_eq!(c.policy.startsecs.to_string(), "0");
        assert!(err(&["-g", "-1.5x", "--", "x"]).contains("'-1.5x'"));
        let c = run(&["-p", "x-=y", "--program=b=c d"]);
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["x-", "b"]);
        // -p takes "-x=y" as its value; the NAME '-x' is then refused.
        assert!(err(&["-p", "-x=y"]).contains("may not begin with '-'"));
    }

    /// getopts panics when asked for a name it was not given.
    #[test]
    fn every_option_name_is_in_the_table() {
        let names = [
            PROGRAM,
            OPTION,
            INIT_SCRIPT,
            EXITCODES,
            STARTSECS,
            BACKOFF_MAX,
            GRACE,
            LOG,
            LOG_MAX_BYTES,
            LOG_BACKUPS,
            LOG_LEVEL,
            CONTROL,
            QUIET,
            VERBOSE,
            CHECK,
            HELP,
            VERSION,
        ];
        let m = options().parse(Vec::<String>::new()).unwrap();
        for name in names {
            assert!(TABLE.iter().any(|row| row.long == name), "{name}");
            assert!(!m.opt_present(name));
        }
        assert_eq!(names.len(), TABLE.len());
    }

    #[test]
    fn log_levels_and_standard_stream_spellings() {
        for (args, level) in [
            (&["--log-level", "warn"][..], Level::Warn),
            (&["--log-level=error"], Level::Error),
            (&["-v", "--log-level", "debug"], Level::Debug),
        ] {
            let mut list = args.to_vec();
            list.extend(["--", "x"]);
            assert_eq!(run(&list).log.level, level, "{args:?}");
        }
        for spelling in ["-", "/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"] {
            let c = run(&["-l", spelling, "--", "x"]);
            assert_eq!(c.log.target, LogTarget::Stderr, "{spelling}");
        }
        for spelling in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            let c = run(&["-l", spelling, "--", "x"]);
            assert_eq!(c.log.target, LogTarget::Stdout, "{spelling}");
        }
        assert_eq!(
            run(&["-l", "/dev/null", "--", "x"]).log.target,
            LogTarget::File("/dev/null".into())
        );
    }

    #[test]
    fn a_control_socket_only_where_there_are_programs() {
        assert_eq!(run(&["--", "x"]).control, None);
        assert_eq!(
            run(&["-i", "/h/p.sh"]).control,
            Some(DEFAULT_CONTROL.into())
        );
        assert_eq!(run(&["-p", "a=x", "--control", "none"]).control, None);
        assert_eq!(
            run(&["--control", "c.sock", "--", "x"]).control,
            Some("/work/c.sock".into())
        );
        assert!(err(&["--control", "", "--", "x"]).contains("PATH is empty"));
    }

    #[test]
    fn flags_may_repeat() {
        let c = run(&["-vv", "-q", "--quiet", "--", "x"]);
        assert!(c.log.quiet);
        assert_eq!(c.log.level, Level::Debug);
        assert!(matches!(
            parse(&args(&["--check", "--check", "--", "x"]), Path::new("/")),
            Ok(Request::Check(_))
        ));
    }

    #[test]
    fn a_trailing_double_dash_is_no_main_command() {
        let c = run(&["-p", "a=x", "--"]);
        assert_eq!(main_of(&c), None);
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
        assert!(matches!(
            parse(&args(&["-h"]), Path::new("/")),
            Ok(Request::Help)
        ));
        assert!(parse(&args(&["--help", "--bogus"]), Path::new("/")).is_err());
        assert!(matches!(
            parse(&args(&["-V"]), Path::new("/")),
            Ok(Request::Version)
        ));
        assert!(matches!(
            parse(&args(&["--version"]), Path::new("/")),
            Ok(Request::Version)
        ));
    }

    #[test]
    fn help_lists_every_option_of_the_table() {
        let help = help_text();
        for row in TABLE {
            let (short, long, hint) = (row.short, row.long, row.hint);
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
            if let Some(default) = row.default {
                assert!(line.ends_with(&format!("[{default}]")), "{line}");
            }
        }
        let listed = help
            .lines()
            .filter(|l| l.trim_start().starts_with('-') && l.contains("--"))
            .count();
        // Every flag line, plus the `-- COMMAND` line.
        assert_eq!(listed, TABLE.len() + 1, "{help}");
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
        use std::os::unix::ffi::OsStringExt;
        let mut a = args(&["-q", "--", "echo", "--", "-x"]);
        a.push(OsString::from_vec(vec![0xff, 0xfe]));
        match parse(&a, Path::new("/")) {
            Ok(Request::Run(c)) => {
                let main = main_of(&c).unwrap();
                assert_eq!(main[..3], c_args(&["echo", "--", "-x"])[..]);
                assert_eq!(main[3].as_bytes(), [0xff, 0xfe]);
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
            (&["-p", "all=x"], "reserved"),
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
            (
                &["-g", "1", "-g", "2", "--", "x"],
                "'--grace' is given more than once",
            ),
            (
                &["-x", "1", "--exitcodes", "2", "--", "x"],
                "'--exitcodes' is given more than once",
            ),
            // Every value is checked before asking what there is to run.
            (&["-g", "abc"], "--grace: 'abc'"),
            (&["--log-level", "loud", "--", "x"], "--log-level: 'loud'"),
            (&["-v", "--log-level", "warn", "--", "x"], "contradicts"),
            (&["-x", "nope"], "--exitcodes: 'nope'"),
        ];
        for (list, needle) in cases {
            let e = err(list);
            assert!(e.contains(needle), "{list:?}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn usage_error_has_two_lines_pointing_to_help() {
        let e = parse(&args(&["--bogus"]), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 2);
        assert!(e.ends_with("Try 'cocalc-init --help' for more information."));
        // Even when the value quoted holds a newline or an escape.
        let e = parse(&args(&["-p", "a\nb\x1b[2J"]), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.contains(r"'a\nb\u{1b}[2J'"), "{e}");
    }
}

/// Property tests: any argv gives a configuration or a usage error —
/// never a panic — and what parses describes itself.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::check;
    use proptest::prelude::*;

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
        "-o",
        "--option",
        "a.startretries=2",
        "n.stopsignal=QUIT",
        "n.environment=A=\"1,2\"",
        "n.user=root",
        "main.directory=/",
        "n.essential=true",
        ",",
        "-pq",
        "-qv",
        "-x1",
        "--grace=0",
        "\u{0}",
        "a\nb=x",
        "\t",
    ];

    /// One argument: a piece, sometimes two run together, or any text.
    fn arg() -> impl Strategy<Value = String> {
        let joined = (
            prop::sample::select(PIECES),
            prop::option::weighted(0.25, prop::sample::select(PIECES)),
        )
            .prop_map(|(a, b)| format!("{a}{}", b.unwrap_or("")));
        // A NUL cannot be in an argument; the piece "\u{0}" stands for an
        // empty one.
        prop_oneof![9 => joined, 1 => any::<String>()].prop_map(|a| a.replace('\u{0}', ""))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn any_argv_parses_or_is_a_usage_error(argv in prop::collection::vec(arg(), 0..8)) {
            let argv: Vec<OsString> = argv.into_iter().map(OsString::from).collect();
            match parse(&argv, Path::new("/w")) {
                Ok(Request::Run(c)) | Ok(Request::Check(c)) => {
                    prop_assert!(!c.programs.is_empty(), "{argv:?}");
                    let _ = check::describe(&c);
                }
                Ok(Request::Help | Request::Version) => {}
                Err(e) => prop_assert!(
                    !e.0.is_empty() && !e.0.chars().any(char::is_control),
                    "{argv:?}: {e:?}"
                ),
            }
        }

        #[test]
        fn split_words_read_back_through_quoting(line in "[a '\"\\\\$\té\n|*#]{0,12}") {
            if let Ok(words) = shellwords::split(&line) {
                let quoted: Vec<String> = words.iter().map(|w| check::shell_quote(w)).collect();
                prop_assert_eq!(shellwords::split(&quoted.join(" ")).unwrap(), words, "{:?}", line);
            }
        }
    }
}
