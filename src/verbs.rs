//! The control verbs, `status`, `start`, `stop`, `restart`, `signal`,
//! `wait`, `tail`: one
//! request line's words → a [`Command`]. Pure, and shared by the client
//! (which checks a command line before sending it) and the supervisor
//! (which checks every line it receives).

use crate::config::{ALL_NAME as ALL, MAIN_NAME};
use crate::signame;

pub const VERBS: [&str; 7] = [
    "status", "start", "stop", "restart", "signal", "wait", "tail",
];

/// How many lines `tail` shows unless `-n` says, as tail(1).
pub const TAIL_LINES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Status,
    Start,
    Stop,
    Restart,
    Signal(i32),
    /// Answered once every named program is up.
    Wait,
    /// The last `lines` lines of output; with `follow`, then each new one.
    Tail {
        follow: bool,
        lines: usize,
    },
}

impl Verb {
    pub fn word(self) -> &'static str {
        match self {
            Verb::Status => "status",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Signal(_) => "signal",
            Verb::Wait => "wait",
            Verb::Tail { .. } => "tail",
        }
    }
}

/// What one line of an answer means, sent as its first field (a digit
/// and a tab): the client's exit status comes from these, never from the
/// words, and the client prints only the text after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Done, or up.
    Done,
    /// Not up (yet), or a start that waits for its `after`.
    NotUp,
    /// Could not be done.
    Error,
}

impl Outcome {
    fn digit(self) -> char {
        match self {
            Outcome::Done => '0',
            Outcome::NotUp => '3',
            Outcome::Error => '1',
        }
    }

    /// The line as sent: `0<TAB>sshd: restarted`.
    pub fn tag(self, text: &str) -> String {
        format!("{}\t{text}", self.digit())
    }

    /// A line as received: its outcome (None for one init sent before any
    /// request was read, such as `ERROR too many clients`) and its text.
    pub fn read(line: &str) -> (Option<Outcome>, &str) {
        let outcome = match line.get(..2) {
            Some("0\t") => Outcome::Done,
            Some("3\t") => Outcome::NotUp,
            Some("1\t") => Outcome::Error,
            _ => return (None, line),
        };
        (Some(outcome), line.get(2..).unwrap_or(""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: Verb,
    /// Program names as given; `all` stands alone. Empty only for `status`
    /// (every program).
    pub names: Vec<String>,
}

impl Command {
    /// The request line that says it.
    pub fn line(&self, signal_word: Option<&str>) -> String {
        let mut words = vec![self.verb.word().to_string()];
        words.extend(signal_word.map(str::to_string));
        if let Verb::Tail { follow, lines } = self.verb {
            words.extend(follow.then(|| "-f".to_string()));
            words.extend(["-n".to_string(), lines.to_string()]);
        }
        words.extend(self.names.iter().cloned());
        words.join(" ")
    }
}

/// Reads a request's words. The error says what is wrong, for `ERROR …`
/// or a usage error.
pub fn parse(words: &[&str]) -> Result<Command, String> {
    let (verb, rest) = match words.split_first() {
        Some((&"status", rest)) => (Verb::Status, rest),
        Some((&"start", rest)) => (Verb::Start, rest),
        Some((&"stop", rest)) => (Verb::Stop, rest),
        Some((&"restart", rest)) => (Verb::Restart, rest),
        Some((&"wait", rest)) => (Verb::Wait, rest),
        Some((&"tail", rest)) => tail_options(rest)?,
        Some((&"signal", rest)) => {
            let Some((sig, rest)) = rest.split_first() else {
                return Err("signal: give a SIGNAL and NAME...|all".into());
            };
            let Some(n) = signame::signal_number(sig) else {
                return Err(format!("signal: '{sig}' is not a signal name or number"));
            };
            (Verb::Signal(n), rest)
        }
        Some((other, _)) => {
            return Err(format!(
                "unknown verb '{other}': status, start, stop, restart, signal, wait or tail"
            ));
        }
        None => return Err("empty request".into()),
    };
    if verb != Verb::Status && rest.is_empty() {
        return Err(format!("{}: give NAME...|all", verb.word()));
    }
    if rest.len() > 1 && rest.contains(&ALL) {
        return Err(format!("{}: 'all' stands alone", verb.word()));
    }
    if let Some(bad) = rest.iter().find(|n| n.is_empty() || n.starts_with('-')) {
        return Err(format!("{}: '{bad}' is not a program name", verb.word()));
    }
    if matches!(verb, Verb::Start | Verb::Stop | Verb::Restart) && rest.contains(&MAIN_NAME) {
        return Err(format!(
            "{}: the main command can only be sent a signal",
            verb.word()
        ));
    }
    Ok(Command {
        verb,
        names: rest.iter().map(|n| n.to_string()).collect(),
    })
}

/// `tail`'s options before its names: `-f` (`--follow`), `-n LINES`
/// (`--lines`, `-nLINES`).
fn tail_options<'a, 'w>(mut rest: &'a [&'w str]) -> Result<(Verb, &'a [&'w str]), String> {
    let (mut follow, mut lines) = (false, TAIL_LINES);
    while let Some((&word, after)) = rest.split_first() {
        let count = match word {
            "-f" | "--follow" => {
                follow = true;
                rest = after;
                continue;
            }
            "-n" | "--lines" => {
                let Some((&count, after)) = after.split_first() else {
                    return Err("tail: -n needs a number of lines".into());
                };
                rest = after;
                count
            }
            _ => match word.strip_prefix("-n") {
                Some(count) if word != "-n" => {
                    rest = after;
                    count
                }
                _ => break,
            },
        };
        lines = count
            .parse()
            .map_err(|_| format!("tail: '{count}' is not a number of lines"))?;
    }
    Ok((Verb::Tail { follow, lines }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_commands() {
        let c = parse(&["restart", "sshd", "web"]).unwrap();
        assert_eq!((c.verb, c.names.len()), (Verb::Restart, 2));
        assert_eq!(parse(&["status"]).unwrap().names.len(), 0);
        assert_eq!(
            parse(&["signal", "HUP", "all"]).unwrap().verb,
            Verb::Signal(1)
        );
        assert_eq!(parse(&["signal", "USR1", "main"]).unwrap().names, ["main"]);
        assert_eq!(parse(&["stop", "a"]).unwrap().line(None), "stop a");
    }

    #[test]
    fn tail_takes_follow_and_a_line_count_before_its_names() {
        let tail = |words: &[&str]| parse(words).map(|c| (c.verb, c.names));
        let t = |follow, lines| Verb::Tail { follow, lines };
        assert_eq!(
            tail(&["tail", "web"]),
            Ok((t(false, 10), vec!["web".into()]))
        );
        assert_eq!(
            tail(&["tail", "-f", "-n", "3", "a", "b"]).unwrap().0,
            t(true, 3)
        );
        assert_eq!(
            tail(&["tail", "-n5", "--follow", "all"]).unwrap().0,
            t(true, 5)
        );
        assert_eq!(tail(&["tail", "--lines", "0", "a"]).unwrap().0, t(false, 0));
        let c = parse(&["tail", "-f", "web"]).unwrap();
        assert_eq!(c.line(None), "tail -f -n 10 web");
        assert_eq!(parse(&c.line(None).split(' ').collect::<Vec<_>>()), Ok(c));
        for (words, needle) in [
            (&["tail", "-n", "x", "a"][..], "'x' is not a number"),
            (&["tail", "-n"][..], "needs a number"),
            (&["tail", "-f"][..], "give NAME"),
            (&["tail", "-x", "a"][..], "'-x' is not a program name"),
        ] {
            let e = parse(words).unwrap_err();
            assert!(e.contains(needle), "{words:?}: {e}");
        }
    }

    #[test]
    fn outcomes_travel_before_the_text() {
        for outcome in [Outcome::Done, Outcome::NotUp, Outcome::Error] {
            let line = outcome.tag("web: restarted");
            assert_eq!(Outcome::read(&line), (Some(outcome), "web: restarted"));
        }
        assert_eq!(
            Outcome::read("ERROR too many clients"),
            (None, "ERROR too many clients")
        );
    }

    #[test]
    fn malformed_requests_say_why() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "empty"),
            (&["reload"], "unknown verb 'reload'"),
            (&["stop"], "give NAME"),
            (&["signal"], "give a SIGNAL"),
            (&["signal", "NOPE", "a"], "'NOPE' is not a signal"),
            (&["signal", "HUP"], "give NAME"),
            (&["start", "all", "a"], "stands alone"),
            (&["stop", "-x"], "'-x' is not a program name"),
            (&["restart", "main"], "only be sent a signal"),
        ];
        for (words, needle) in cases {
            let e = parse(words).unwrap_err();
            assert!(e.contains(needle), "{words:?}: {e}");
        }
    }
}
