//! Every log message's wording, in one place. Where supervisord 4 has a
//! message for the same event, the words are its words, so that habits
//! such as `grep 'exited: project_init_sh'` keep working.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::unistd::Pid;

use crate::config::{MAIN_NAME, Seconds};
use crate::logging::Stream;
use crate::signals::signal_name;
use crate::spawn::SpawnError;
use crate::status::ExitKind;

pub fn started(pid: Pid) -> String {
    format!(
        "cocalc-init {} started with pid {pid}",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn skipped(script: &Path) -> String {
    format!("skipped: {} does not exist", script.display())
}

pub fn spawned(name: &str, pid: Pid) -> String {
    format!("spawned: '{name}' with pid {pid}")
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
    format!("exited: {name} ({how}; {word})")
}

pub fn exited_main(how: ExitKind) -> String {
    format!("exited: {MAIN_NAME} ({how})")
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
    format!("exiting with status {status}")
}

pub fn runtime_error(what: &str, error: &dyn fmt::Display) -> String {
    format!("error: {what}: {error}")
}

/// A signal init could not send, for a reason other than the target
/// being gone. `target` is kill(2)'s: a pid, -pgid, or -1.
pub fn cannot_signal(sig: i32, target: Pid, error: &io::Error) -> String {
    let whom = match target.as_raw() {
        -1 => "every process".to_string(),
        t if t < 0 => format!("process group {}", -t),
        t => format!("pid {t}"),
    };
    format!("error: cannot send {} to {whom}: {error}", signal_name(sig))
}

/// A program's pipe that could not be read: it is closed.
pub fn read_failed(name: &str, stream: Stream, error: &io::Error) -> String {
    format!("error: reading the {} of {name}: {error}", stream.word())
}

/// No control channel, and why.
pub fn control_unavailable(path: &Path, why: &str) -> String {
    format!(
        "control: no control socket at {}: {why}; supervising without it",
        path.display()
    )
}

/// A client whose uid is neither init's nor root's.
pub fn control_refused(uid: u32, pid: i32) -> String {
    format!("control: refused a client with uid {uid} (pid {pid})")
}

/// A request received: `control: restart sshd (pid 812, uid 0)`.
pub fn control_request(line: &str, pid: i32, uid: u32) -> String {
    format!("control: {line} (pid {pid}, uid {uid})")
}

/// The one stderr line for a main command that cannot be run.
pub fn main_cannot_run(error: &SpawnError) -> String {
    format!("cocalc-init: {error}\n")
}

/// Said in the log file when standard error has no room for its copy.
pub const STDERR_FULL: &str =
    "standard error is full: log lines are not copied there until it has room";

/// Said once on stderr when the log file cannot be written.
pub fn log_unwritable(file: &Path, error: &io::Error) -> String {
    format!(
        "cocalc-init: cannot write the log file {}: {error}; log lines go to stderr until it works again\n",
        file.display()
    )
}

pub fn log_writable_again(file: &Path) -> String {
    format!(
        "cocalc-init: writing the log file {} again\n",
        file.display()
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
    fn start_and_end_lines() {
        assert_eq!(
            started(Pid::from_raw(1)),
            format!(
                "cocalc-init {} started with pid 1",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(exiting(143), "exiting with status 143");
        assert_eq!(
            exited_main(ExitKind::Signal(9)),
            "exited: main (terminated by SIGKILL)"
        );
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
            control_request("restart sshd", 812, 0),
            "control: restart sshd (pid 812, uid 0)"
        );
        let eperm = io::Error::from_raw_os_error(1);
        assert_eq!(
            cannot_signal(15, Pid::from_raw(-7), &eperm),
            "error: cannot send SIGTERM to process group 7: Operation not permitted (os error 1)"
        );
        assert_eq!(
            cannot_signal(9, Pid::from_raw(-1), &eperm),
            "error: cannot send SIGKILL to every process: Operation not permitted (os error 1)"
        );
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
