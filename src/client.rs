//! The other face of the binary: `cocalc-init status|start|stop|restart|
//! signal|wait|tail`, run inside the container. It connects to a running init's
//! control socket, sends one request line, prints the answer, and exits
//! with a status fit for a Kubernetes exec probe:
//! 0 done, or every named program up; 3 a named program is not up (or a
//! start waits for its `after`); 1 an error reply (wins over 3); 2 a usage
//! error; 4 no init answers.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::DEFAULT_CONTROL;
use crate::verbs::{self, Command, Outcome, VERBS, Verb};

pub const DONE: u8 = 0;
pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_UP: u8 = 3;
pub const NO_INIT: u8 = 4;

/// How long to wait for init's greeting, and beyond the grace for a reply.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// How long `wait` waits unless `--timeout` says.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether argv (after the program name) asks for a client verb: its
/// first word that is not an option is one.
pub fn is_client(args: &[OsString]) -> bool {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.to_str() {
            Some("--control" | "--timeout") => {
                words.next();
            }
            Some(w) if w.starts_with("--control=") || w.starts_with("--timeout=") => {}
            Some(w) => return VERBS.contains(&w),
            None => return false,
        }
    }
    false
}

/// Runs a client command line; returns the exit status.
pub fn run(args: &[OsString]) -> u8 {
    let (control, timeout, words) = match read_args(args) {
        Ok(read) => read,
        Err(e) => return usage(&e),
    };
    let command = match verbs::parse(&words) {
        Ok(command) => command,
        Err(e) => return usage(&e),
    };
    let limit = match (timeout, command.verb) {
        (None, _) => None,
        (Some(text), Verb::Wait) => match text
            .parse::<f64>()
            .ok()
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
        {
            Some(limit) => Some(limit),
            None => return usage(&format!("--timeout: '{text}' is not a number of seconds")),
        },
        (Some(_), _) => return usage("--timeout is for wait only"),
    };
    let signal_word = match command.verb {
        Verb::Signal(_) => words.get(1).copied(),
        _ => None,
    };
    let limit = match command.verb {
        Verb::Wait => Some(limit.unwrap_or(WAIT_TIMEOUT)),
        _ => None,
    };
    // Each line printed as it comes: `tail -f` never ends by itself.
    let follow = matches!(command.verb, Verb::Tail { follow: true, .. });
    let mut out = io::stdout().lock();
    let mut worst = Worst::new(matches!(command.verb, Verb::Tail { .. }));
    let each = |line: String| {
        worst.see(&line);
        let _ = writeln!(out, "{}", Outcome::read(&line).1);
        if follow {
            let _ = out.flush();
        }
    };
    match exchange(&control, &command.line(signal_word), limit, follow, each) {
        Ok(()) => {
            let _ = io::stdout().flush();
            worst.status()
        }
        Err(Failure::NoInit(e)) => {
            say(&format!(
                "no init answers at {}: {e} (an init started without -p or -i has no control \
                 socket, unless --control names one)",
                control.display()
            ));
            NO_INIT
        }
        Err(Failure::Denied) => {
            say(&format!(
                "permission denied: {} is init's own",
                control.display()
            ));
            ERROR
        }
        Err(Failure::TimedOut) => not_up(&control, &command, limit),
        Err(Failure::Broken(e)) => {
            say(&format!("{}: {e}", control.display()));
            ERROR
        }
    }
}

/// The socket (`--control`; inside a program, its init's; else the
/// default), `--timeout`'s text, and the words of the request.
fn read_args(args: &[OsString]) -> Result<(PathBuf, Option<&str>, Vec<&str>), String> {
    let mut control = match std::env::var_os(crate::config::CONTROL_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_CONTROL),
    };
    let mut timeout: Option<&str> = None;
    let mut words: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(arg) = arg.to_str() else {
            return Err(format!(
                "argument '{}' is not valid UTF-8",
                arg.to_string_lossy()
            ));
        };
        if arg == "--control" {
            let path = rest.next().ok_or("option '--control' needs a value")?;
            control = PathBuf::from(path);
        } else if let Some(path) = arg.strip_prefix("--control=") {
            control = PathBuf::from(path);
        } else if arg == "--timeout" {
            let t = rest.next().and_then(|t| t.to_str());
            timeout = Some(t.ok_or("option '--timeout' needs a value")?);
        } else if let Some(t) = arg.strip_prefix("--timeout=") {
            timeout = Some(t);
        } else if arg.starts_with('-') && words.first() == Some(&"tail") {
            // tail's own -f and -n, read with its names.
            words.push(arg);
        } else if arg.starts_with('-') {
            return Err(format!(
                "unknown option '{arg}': a verb takes only --control (and wait --timeout, \
                 tail -f and -n)"
            ));
        } else {
            words.push(arg);
        }
    }
    Ok((control, timeout, words))
}

/// A wait ran out: who is not up, and why, from the status of the names
/// waited for.
fn not_up(control: &std::path::Path, command: &Command, limit: Option<Duration>) -> u8 {
    let line = Command {
        verb: Verb::Status,
        names: command.names.clone(),
    }
    .line(None);
    let rows = ask(control, &line, None).unwrap_or_default();
    let down: Vec<&str> = rows
        .iter()
        .map(|row| Outcome::read(row))
        .filter(|(outcome, _)| *outcome != Some(Outcome::Done))
        .map(|(_, text)| text)
        .collect();
    say(&format!(
        "not up after {} s: {}",
        limit.unwrap_or(WAIT_TIMEOUT).as_secs_f64(),
        down.iter()
            .map(|row| row.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    NOT_UP
}

enum Failure {
    NoInit(io::Error),
    Denied,
    Broken(io::Error),
    /// `wait`'s time ran out.
    TimedOut,
}

/// Sends the request line; the answer's lines. `limit`: how long the
/// answer may take (`wait`); otherwise the init's grace and a margin.
fn ask(
    control: &std::path::Path,
    line: &str,
    limit: Option<Duration>,
) -> Result<Vec<String>, Failure> {
    let mut lines = Vec::new();
    exchange(control, line, limit, false, |l| lines.push(l))?;
    Ok(lines)
}

/// Sends the request line; each line of the answer to `each` as it
/// comes. `limit`: as for [`ask`]; `forever`: no limit at all (`tail -f`,
/// which ends when init or the user does).
fn exchange(
    control: &std::path::Path,
    line: &str,
    limit: Option<Duration>,
    forever: bool,
    mut each: impl FnMut(String),
) -> Result<(), Failure> {
    let stream = match UnixStream::connect(control) {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(Failure::Denied),
        Err(e) => return Err(Failure::NoInit(e)),
    };
    let broken = Failure::Broken;
    stream
        .set_read_timeout(Some(ANSWER_MARGIN))
        .map_err(broken)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(Failure::Broken)?);
    let mut greeting = String::new();
    // Nothing at all (closed, or no word in time): no init answers.
    match reader.read_line(&mut greeting) {
        Ok(0) => {
            return Err(Failure::NoInit(io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed without a word",
            )));
        }
        Ok(_) => {}
        Err(e) => return Err(Failure::NoInit(e)),
    }
    // `cocalc-init VERSION grace SECS`, or a refusal (`ERROR …`).
    if !greeting.starts_with("cocalc-init ") {
        each(greeting.trim_end().to_string());
        return Ok(());
    }
    let grace = greeting
        .split_whitespace()
        .nth(3)
        .and_then(|g| g.parse::<f64>().ok())
        .and_then(|g| Duration::try_from_secs_f64(g).ok())
        .unwrap_or(Duration::ZERO);
    let patience = limit.unwrap_or(grace.saturating_add(ANSWER_MARGIN));
    // A zero timeout would mean "block for ever", which only `forever` is.
    let timeout = (!forever).then(|| patience.max(Duration::from_millis(1)));
    stream.set_read_timeout(timeout).map_err(Failure::Broken)?;
    (&stream)
        .write_all(format!("{line}\n").as_bytes())
        .map_err(Failure::Broken)?;
    // Bytes, not text: a followed program's line is sent as it printed it,
    // and shown here with U+FFFD for what is not UTF-8.
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                each(String::from_utf8_lossy(text).into_owned());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if limit.is_some()
                    && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Err(Failure::TimedOut);
            }
            Err(e) => return Err(Failure::Broken(e)),
        }
    }
}

/// The exit status an answer means, from the outcome init sent with each
/// line: an error wins, then "not up"; a line without one is a refusal
/// sent before any request was read (`ERROR too many clients`). An empty
/// answer is an error, but for `tail` (a program that printed nothing).
struct Worst {
    worst: Option<Outcome>,
    empty_is_done: bool,
}

impl Worst {
    fn new(empty_is_done: bool) -> Worst {
        Worst {
            worst: None,
            empty_is_done,
        }
    }

    fn see(&mut self, line: &str) {
        let outcome = Outcome::read(line).0.unwrap_or(Outcome::Error);
        self.worst = self.worst.max(Some(outcome));
    }

    fn status(&self) -> u8 {
        match self.worst {
            None if self.empty_is_done => DONE,
            Some(Outcome::Error) | None => ERROR,
            Some(Outcome::NotUp) => NOT_UP,
            Some(Outcome::Done) => DONE,
        }
    }
}

/// [`Worst`] of a whole answer.
#[cfg(test)]
fn exit_status(lines: &[String]) -> u8 {
    let mut worst = Worst::new(false);
    for line in lines {
        worst.see(line);
    }
    worst.status()
}

fn say(message: &str) {
    let _ = writeln!(io::stderr(), "cocalc-init: {message}");
}

fn usage(message: &str) -> u8 {
    say(message);
    let _ = writeln!(
        io::stderr(),
        "Try 'cocalc-init --help' for more information."
    );
    USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_verb_is_the_first_word_that_is_no_option() {
        assert!(is_client(&args(&["status"])));
        assert!(is_client(&args(&["--control", "/x", "stop", "a"])));
        assert!(is_client(&args(&["--control=/x", "restart", "a"])));
        assert!(!is_client(&args(&["-p", "status=x"])));
        assert!(!is_client(&args(&["--", "status"])));
        assert!(!is_client(&args(&[])));
    }

    #[test]
    fn exit_statuses_come_from_the_outcomes_init_sent() {
        let tagged =
            |v: &[(Outcome, &str)]| v.iter().map(|(o, text)| o.tag(text)).collect::<Vec<_>>();
        let up = tagged(&[
            (Outcome::Done, "sshd   RUNNING   pid 12, uptime 0:05:12"),
            (
                Outcome::Done,
                "p_sh   EXITED    skipped: /h/p.sh does not exist",
            ),
        ]);
        assert_eq!(exit_status(&up), DONE);
        let mut down = up.clone();
        down.extend(tagged(&[(Outcome::NotUp, "web    STARTING  pid 9")]));
        assert_eq!(exit_status(&down), NOT_UP);
        let mut both = down.clone();
        both.extend(tagged(&[(Outcome::Error, "nope: ERROR (no such program)")]));
        assert_eq!(exit_status(&both), ERROR);
        // The words do not decide: a program named ERROR is no error, and a
        // line that reads like one is what its outcome says.
        let named = tagged(&[(Outcome::Done, "ERROR    RUNNING   pid 3")]);
        assert_eq!(exit_status(&named), DONE);
        let start_held = tagged(&[(Outcome::NotUp, "web: waiting for db")]);
        assert_eq!(exit_status(&start_held), NOT_UP);
        // Sent before any request was read: no outcome, an error.
        assert_eq!(exit_status(&["ERROR too many clients".to_string()]), ERROR);
        assert_eq!(exit_status(&[]), ERROR);
    }
}
