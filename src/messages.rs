//! Every log message's wording, in one place. Where supervisord 4 has a
//! message for the same event, the words are its words, so that habits
//! such as `grep 'exited: project_init_sh'` keep working.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;
use core::time::Duration;

use crate::config::{MAIN_NAME, Seconds};
use crate::path;
use crate::signals::signal_name;
use crate::spawn::SpawnError;
use crate::status::ExitKind;
use crate::sys::{self, Pid};

/// A piece of a message built by [`concat`].
enum Piece<'a> {
    Text(&'a str),
    Number(i64),
}

use Piece::{Number, Text};

/// Joins pieces into one message without core::fmt. The messages every
/// start and exit logs (started, spawned, exited, exiting) are built this
/// way: through `format!` they cost 5,000 of the 77,000 instructions an
/// `init -- /bin/true` ran.
fn concat(pieces: &[Piece<'_>]) -> String {
    let mut out = String::with_capacity(64);
    for piece in pieces {
        match *piece {
            Text(text) => out.push_str(text),
            Number(n) => {
                if n < 0 {
                    out.push('-');
                }
                let mut digits = [0u8; 20];
                let mut at = digits.len();
                let mut rest = n.unsigned_abs();
                loop {
                    at -= 1;
                    if let Some(d) = digits.get_mut(at) {
                        *d = b'0' + (rest % 10) as u8;
                    }
                    rest /= 10;
                    if rest == 0 || at == 0 {
                        break;
                    }
                }
                for &d in digits.get(at..).unwrap_or(&[]) {
                    out.push(char::from(d));
                }
            }
        }
    }
    out
}

/// How a process ended, for [`concat`]: [`ExitKind::lead`] and the code,
/// or the lead and the signal's name (returned, for the pieces to borrow).
fn how_words(how: ExitKind) -> (&'static str, Piece<'static>, String) {
    match how {
        ExitKind::Code(code) => (how.lead(), Number(i64::from(code)), String::new()),
        ExitKind::Signal(sig) => (how.lead(), Text(""), signal_name(sig)),
    }
}

pub fn started(pid: Pid) -> String {
    concat(&[
        Text("cocalc-init "),
        Text(env!("CARGO_PKG_VERSION")),
        Text(" started with pid "),
        Number(i64::from(pid.as_raw())),
    ])
}

pub fn skipped(script: &[u8]) -> String {
    format!("skipped: {} does not exist", path::display(script))
}

pub fn spawned(name: &str, pid: Pid) -> String {
    concat(&[
        Text("spawned: '"),
        Text(name),
        Text("' with pid "),
        Number(i64::from(pid.as_raw())),
    ])
}

pub fn spawnerr(error: &SpawnError) -> String {
    format!("spawnerr: {error}")
}

pub fn success(name: &str, startsecs: Seconds) -> String {
    format!(
        "success: {name} entered RUNNING state, process has stayed up for > than {startsecs} seconds (startsecs)"
    )
}

pub fn exited(name: &str, how: ExitKind, expected: bool) -> String {
    let word = if expected { "expected" } else { "not expected" };
    let (lead, number, signal) = how_words(how);
    concat(&[
        Text("exited: "),
        Text(name),
        Text(" ("),
        Text(lead),
        number,
        Text(&signal),
        Text("; "),
        Text(word),
        Text(")"),
    ])
}

pub fn exited_main(how: ExitKind) -> String {
    let (lead, number, signal) = how_words(how);
    concat(&[
        Text("exited: "),
        Text(MAIN_NAME),
        Text(" ("),
        Text(lead),
        number,
        Text(&signal),
        Text(")"),
    ])
}

pub fn backoff(name: &str, after: Duration) -> String {
    format!("backoff: {name} starts again in {} seconds", seconds(after))
}

pub fn stopped(name: &str, how: ExitKind) -> String {
    format!("stopped: {name} ({how})")
}

pub fn exit_request(sig: i32) -> String {
    format!("received {} indicating exit request", signal_name(sig))
}

pub fn waiting(names: &[&str]) -> String {
    format!("waiting for {} to die", names.join(", "))
}

pub fn killing(name: &str, pid: Pid) -> String {
    format!("killing '{name}' ({pid}) with SIGKILL")
}

pub fn killing_leftovers(count: usize) -> String {
    match count {
        1 => "killing 1 leftover process with SIGKILL".to_string(),
        n => format!("killing {n} leftover processes with SIGKILL"),
    }
}

pub fn reaped_unknown(pid: Pid, how: ExitKind) -> String {
    format!("reaped unknown pid {pid} ({how})")
}

pub fn forwarded(sig: i32, targets: &[&str]) -> String {
    if targets.is_empty() {
        format!(
            "received {}: no program is running to forward it to",
            signal_name(sig)
        )
    } else {
        format!("forwarded {} to {}", signal_name(sig), targets.join(", "))
    }
}

pub fn exiting(status: u8) -> String {
    concat(&[Text("exiting with status "), Number(i64::from(status))])
}

pub fn runtime_error(what: &str, error: &dyn fmt::Display) -> String {
    format!("error: {what}: {error}")
}

/// The one stderr line for a main command that cannot be run.
pub fn main_cannot_run(error: &SpawnError) -> String {
    format!("cocalc-init: {error}\n")
}

/// Said in the log file when standard error has no room for its copy.
pub const STDERR_FULL: &str =
    "standard error is full: log lines are not copied there until it has room";

/// Said once on stderr when the log file cannot be written.
pub fn log_unwritable(file: &[u8], error: &sys::Error) -> String {
    format!(
        "cocalc-init: cannot write the log file {}: {error}; log lines go to stderr until it works again\n",
        path::display(file)
    )
}

pub fn log_writable_again(file: &[u8]) -> String {
    format!(
        "cocalc-init: writing the log file {} again\n",
        path::display(file)
    )
}

/// Seconds in their shortest form: `1`, `0.5`.
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_writes_numbers_as_format_does() {
        for n in [0, 7, 10, 255, -1, -40, 123_456_789, i64::MAX, i64::MIN] {
            assert_eq!(concat(&[Number(n)]), format!("{n}"));
        }
        assert_eq!(concat(&[Text("a"), Number(12), Text("b")]), "a12b");
        for how in [
            ExitKind::Code(0),
            ExitKind::Code(255),
            ExitKind::Signal(9),
            ExitKind::Signal(40),
        ] {
            assert_eq!(exited_main(how), format!("exited: main ({how})"));
            assert_eq!(
                exited("x", how, false),
                format!("exited: x ({how}; not expected)")
            );
        }
        assert_eq!(
            started(Pid::from_raw(1)),
            format!(
                "cocalc-init {} started with pid 1",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(exiting(143), "exiting with status 143");
    }

    #[test]
    fn supervisord_wording() {
        assert_eq!(
            exited("project_init_sh", ExitKind::Code(0), true),
            "exited: project_init_sh (exit status 0; expected)"
        );
        assert_eq!(
            exited("x", ExitKind::Signal(11), false),
            "exited: x (terminated by SIGSEGV; not expected)"
        );
        assert_eq!(
            exited_main(ExitKind::Code(3)),
            "exited: main (exit status 3)"
        );
        assert_eq!(
            success("sshd", Seconds::parse("1").unwrap()),
            "success: sshd entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)"
        );
        assert_eq!(exit_request(15), "received SIGTERM indicating exit request");
        assert_eq!(waiting(&["a", "b"]), "waiting for a, b to die");
        assert_eq!(
            killing("main", Pid::from_raw(7)),
            "killing 'main' (7) with SIGKILL"
        );
        assert_eq!(
            killing_leftovers(3),
            "killing 3 leftover processes with SIGKILL"
        );
        assert_eq!(spawned("a", Pid::from_raw(9)), "spawned: 'a' with pid 9");
        assert_eq!(
            backoff("a", Duration::from_millis(500)),
            "backoff: a starts again in 0.5 seconds"
        );
        assert_eq!(
            backoff("a", Duration::from_secs(4)),
            "backoff: a starts again in 4 seconds"
        );
    }
}
