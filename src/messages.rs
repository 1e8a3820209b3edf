//! Every log message's wording, in one place. Where supervisord 4 has a
//! message for the same event, the words are its words, so that habits
//! such as `grep 'exited: project_init_sh'` keep working.
//!
//! A message is a value that writes itself (`impl Display`), not a
//! `String`: the logger formats it only after its level check, so a debug
//! line that `-v` does not keep costs no formatting and no allocation —
//! on hot paths such as a reap or a forwarded signal too, without a guard
//! at each call site. Only the lines written to stderr outside the logger
//! are built as `String`s.

use std::fmt::{self, Display};
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::unistd::Pid;

use crate::config::MAIN_NAME;
use crate::settings::Ready;
use crate::signame::signal_name;
use crate::spawn::SpawnError;
use crate::status::ExitKind;
use crate::values::{Seconds, Stream};

pub fn started(pid: Pid) -> impl Display {
    text(move |f| {
        write!(
            f,
            "cocalc-init {} started with pid {pid}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

pub fn skipped(script: &Path) -> impl Display {
    text(move |f| write!(f, "skipped: {} does not exist", script.display()))
}

pub fn spawned(name: &str, pid: Pid) -> impl Display {
    text(move |f| write!(f, "spawned: '{name}' with pid {pid}"))
}

pub fn spawnerr(error: &SpawnError) -> impl Display {
    text(move |f| write!(f, "spawnerr: {error}"))
}

/// An init script with Windows line endings, said at each start: it is
/// run as it is (init never changes the user's file).
pub fn crlf_script(name: &str, script: &Path) -> impl Display {
    text(move |f| {
        write!(
            f,
            "{name}: {} has Windows line endings (CRLF): bash reads a carriage return at the end of every line, so commands fail and 'exit 0' exits 2; {}",
            script.display(),
            crate::spawn::CONVERT
        )
    })
}

/// Another process (another init, most likely) holds the log file.
pub fn log_shared(path: &Path, holder: Option<u32>) -> impl Display {
    text(move |f| {
        write!(f, "another process writes to the log {}", path.display())?;
        if let Some(pid) = holder {
            write!(f, " (pid {pid})")?;
        }
        f.write_str(
            ": is a second init running? their lines will be mixed; give each init its own -l FILE",
        )
    })
}

/// `tail main`: there is nothing to show.
pub fn tail_main() -> String {
    format!(
        "{MAIN_NAME}: ERROR (its output is not captured: the main command keeps init's \
         standard output and error, the terminal)"
    )
}

/// `tail -f` when as many follow as may.
pub fn too_many_followers(most: usize) -> String {
    format!("ERROR too many followers ({most} at most): this answer is not followed")
}

/// A scheduled program's next run.
pub fn scheduled<'a>(name: &'a str, at: &'a str) -> impl Display + 'a {
    text(move |f| write!(f, "scheduled: {name} next run at {at}"))
}

/// The wall clock jumped past a cron program's time (a suspended VM, NTP):
/// one run now for the times passed.
pub fn clock_jumped(name: &str) -> impl Display + '_ {
    text(move |f| {
        write!(
            f,
            "scheduled: {name} runs now: the wall clock moved past its time (one run for the times passed)"
        )
    })
}

/// A cron time that came while the last run still runs.
pub fn skipped_running<'a>(name: &'a str, since: &'a str) -> impl Display + 'a {
    text(move |f| write!(f, "skipped: {name} still running since {since}"))
}

/// A follower of `tail -f` missed lines: its marker.
pub fn lines_dropped(count: u64) -> String {
    format!("… {count} lines dropped …")
}

pub fn success(name: &str, startsecs: Seconds) -> impl Display {
    text(move |f| {
        write!(
            f,
            "success: {name} entered RUNNING state, process has stayed up for > than {startsecs} seconds (startsecs)"
        )
    })
}

pub fn exited(name: &str, how: ExitKind, expected: bool) -> impl Display {
    let word = if expected { "expected" } else { "not expected" };
    text(move |f| write!(f, "exited: {name} ({how}; {word})"))
}

pub fn exited_main(how: ExitKind) -> impl Display {
    text(move |f| write!(f, "exited: {MAIN_NAME} ({how})"))
}

pub fn backoff(name: &str, after: Duration) -> impl Display {
    text(move |f| {
        write!(
            f,
            "backoff: {name} starts again in {} seconds",
            seconds(after)
        )
    })
}

/// A program up because its readiness was seen (not by `startsecs`).
pub fn success_ready<'a>(name: &'a str, ready: &'a Ready) -> impl Display + 'a {
    text(move |f| {
        write!(f, "success: {name} entered RUNNING state, ")?;
        match ready {
            Ready::Notify => f.write_str("process reported ready"),
            Ready::Tcp(addr) => write!(f, "tcp:{addr} accepts connections"),
            Ready::Exists(path) => write!(f, "{} exists", path.display()),
            Ready::Startsecs | Ready::Exited => f.write_str("ready"),
        }
    })
}

/// A notify datagram from a process that is not of the socket's program.
pub fn notify_ignored(sender: Pid, owner: &str) -> impl Display {
    text(move |f| {
        write!(
            f,
            "notify: ignored a datagram from pid {sender}: not a process of {owner}"
        )
    })
}

pub fn notify_dropped() -> impl Display {
    text(|f| {
        f.write_str(
            "notify: dropped a datagram over 4096 bytes or without its sender's credentials",
        )
    })
}

/// A start held back by `after`: said once each time a start must wait.
pub fn waiting_after<'a>(name: &'a str, on: &'a [String]) -> impl Display + 'a {
    text(move |f| write!(f, "waiting: {name} starts after {}", Joined(on.iter())))
}

/// supervisord's words when `startretries` are used up.
pub fn gave_up(name: &str) -> impl Display {
    text(move |f| {
        write!(
            f,
            "gave up: {name} entered FATAL state, too many start retries too quickly"
        )
    })
}

/// An essential program is down for good: init stops everything.
pub fn essential_down(name: &str, fatal: bool, how: Option<ExitKind>) -> impl Display {
    text(move |f| {
        write!(f, "essential: {name} is down for good (")?;
        match (fatal, how) {
            (true, _) => f.write_str("FATAL")?,
            (false, Some(how)) => write!(f, "{how}; not restarted")?,
            (false, None) => f.write_str("not restarted")?,
        }
        f.write_str("): stopping everything")
    })
}

pub fn stopped(name: &str, how: ExitKind) -> impl Display {
    text(move |f| write!(f, "stopped: {name} ({how})"))
}

pub fn exit_request(sig: i32) -> impl Display {
    text(move |f| write!(f, "received {} indicating exit request", signal_name(sig)))
}

pub fn waiting(names: &[&str]) -> impl Display {
    text(move |f| write!(f, "waiting for {} to die", Joined(names.iter())))
}

pub fn killing(name: &str, pid: Pid) -> impl Display {
    text(move |f| write!(f, "killing '{name}' ({pid}) with SIGKILL"))
}

pub fn killing_leftovers(count: usize) -> impl Display {
    text(move |f| match count {
        1 => f.write_str("killing 1 leftover process with SIGKILL"),
        n => write!(f, "killing {n} leftover processes with SIGKILL"),
    })
}

pub fn reaped_unknown(pid: Pid, how: ExitKind) -> impl Display {
    text(move |f| write!(f, "reaped unknown pid {pid} ({how})"))
}

/// A signal that people send on purpose (HUP, USR1, USR2), said at INFO
/// with where it went; HUP, supervisord's "reload", gets a word on that.
pub fn received_forwarded<'a, I>(sig: i32, targets: I) -> impl Display
where
    I: Iterator<Item = &'a str> + Clone,
{
    text(move |f| {
        write!(f, "received {}: ", signal_name(sig))?;
        if targets.clone().next().is_none() {
            f.write_str("no program is running to forward it to")?;
        } else {
            write!(f, "forwarded to {}", Joined(targets.clone()))?;
        }
        if sig == libc::SIGHUP {
            f.write_str(" (cocalc-init does not reload; see man page)")?;
        }
        Ok(())
    })
}

/// `targets`: the names of the programs the signal went to.
pub fn forwarded<'a, I>(sig: i32, targets: I) -> impl Display
where
    I: Iterator<Item = &'a str> + Clone,
{
    text(move |f| {
        if targets.clone().next().is_none() {
            write!(
                f,
                "received {}: no program is running to forward it to",
                signal_name(sig)
            )
        } else {
            write!(
                f,
                "forwarded {} to {}",
                signal_name(sig),
                Joined(targets.clone())
            )
        }
    })
}

pub fn exiting(status: u8) -> impl Display {
    text(move |f| write!(f, "exiting with status {status}"))
}

pub fn runtime_error(what: &str, error: &dyn fmt::Display) -> impl Display {
    text(move |f| write!(f, "error: {what}: {error}"))
}

/// A signal init could not send, for a reason other than the target
/// being gone. `target` is kill(2)'s: a pid, -pgid, or -1.
pub fn cannot_signal(sig: i32, target: Pid, error: &io::Error) -> impl Display {
    text(move |f| {
        write!(f, "error: cannot send {} to ", signal_name(sig))?;
        match target.as_raw() {
            -1 => f.write_str("every process")?,
            t if t < 0 => write!(f, "process group {}", -t)?,
            t => write!(f, "pid {t}")?,
        }
        write!(f, ": {error}")
    })
}

/// A program's pipe that could not be read: it is closed.
pub fn read_failed(name: &str, stream: Stream, error: &io::Error) -> impl Display {
    text(move |f| write!(f, "error: reading the {} of {name}: {error}", stream.word()))
}

/// No control channel, and why.
pub fn control_unavailable(path: &Path, why: &str) -> String {
    format!(
        "control: no control socket at {}: {why}; supervising without it",
        path.display()
    )
}

/// A client whose uid is neither init's nor root's.
pub fn control_refused(uid: u32, pid: i32) -> impl Display {
    text(move |f| write!(f, "control: refused a client with uid {uid} (pid {pid})"))
}

/// A request received: `control: restart sshd (pid 812, uid 0)`.
pub fn control_request(line: &str, pid: i32, uid: u32) -> impl Display {
    text(move |f| write!(f, "control: {line} (pid {pid}, uid {uid})"))
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

/// A program's output file cannot be written (said once, until it can).
pub fn output_file_unwritable(file: &Path, error: &io::Error) -> impl Display {
    text(move |f| {
        write!(
            f,
            "cannot write the output file {}: {error}; its lines go to this log until it works again",
            file.display()
        )
    })
}

pub fn output_file_writable_again(file: &Path) -> impl Display {
    text(move |f| write!(f, "writing the output file {} again", file.display()))
}

/// Program output dropped while init's stdout or stderr was full.
/// init's stdout or stderr cannot be written at all.
pub fn output_gone(what: &'static str, error: &io::Error) -> impl Display {
    text(move |f| {
        write!(
            f,
            "cannot write init's {what}: {error}; program output sent there is dropped from now on"
        )
    })
}

/// `what`: "standard output" or "standard error".
pub fn output_dropped(what: &'static str, lines: u64, bytes: u64) -> impl Display {
    text(move |f| {
        write!(
            f,
            "init's {what} was full: {lines} lines ({bytes} bytes) of program output sent there were dropped"
        )
    })
}

/// Seconds in their shortest form: `1`, `0.5`.
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A message that writes itself when, and only when, the logger keeps it.
struct Text<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> Display for Text<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

fn text<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(write: F) -> Text<F> {
    Text(write)
}

/// Names joined by `, `, written without a joined copy.
#[derive(Clone)]
struct Joined<I>(I);

impl<I> Display for Joined<I>
where
    I: Iterator + Clone,
    I::Item: Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.clone().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            name.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_end_lines() {
        assert_eq!(
            started(Pid::from_raw(1)).to_string(),
            format!(
                "cocalc-init {} started with pid 1",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(exiting(143).to_string(), "exiting with status 143");
        assert_eq!(
            exited_main(ExitKind::Signal(9)).to_string(),
            "exited: main (terminated by SIGKILL)"
        );
    }

    #[test]
    fn supervisord_wording() {
        assert_eq!(
            exited("project_init_sh", ExitKind::Code(0), true).to_string(),
            "exited: project_init_sh (exit status 0; expected)"
        );
        assert_eq!(
            exited("x", ExitKind::Signal(11), false).to_string(),
            "exited: x (terminated by SIGSEGV; not expected)"
        );
        assert_eq!(
            exited_main(ExitKind::Code(3)).to_string(),
            "exited: main (exit status 3)"
        );
        assert_eq!(
            success("sshd", Seconds::parse("1").unwrap()).to_string(),
            "success: sshd entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)"
        );
        assert_eq!(
            exit_request(15).to_string(),
            "received SIGTERM indicating exit request"
        );
        assert_eq!(waiting(&["a", "b"]).to_string(), "waiting for a, b to die");
        assert_eq!(
            killing("main", Pid::from_raw(7)).to_string(),
            "killing 'main' (7) with SIGKILL"
        );
        assert_eq!(
            killing_leftovers(3).to_string(),
            "killing 3 leftover processes with SIGKILL"
        );
        assert_eq!(
            spawned("a", Pid::from_raw(9)).to_string(),
            "spawned: 'a' with pid 9"
        );
        assert_eq!(
            forwarded(10, ["sshd", "main"].into_iter()).to_string(),
            "forwarded SIGUSR1 to sshd, main"
        );
        assert_eq!(
            forwarded(1, [].into_iter()).to_string(),
            "received SIGHUP: no program is running to forward it to"
        );
        assert_eq!(
            gave_up("web").to_string(),
            "gave up: web entered FATAL state, too many start retries too quickly"
        );
        assert_eq!(
            essential_down("db", false, Some(ExitKind::Code(3))).to_string(),
            "essential: db is down for good (exit status 3; not restarted): stopping everything"
        );
        assert_eq!(
            essential_down("db", true, None).to_string(),
            "essential: db is down for good (FATAL): stopping everything"
        );
        assert_eq!(
            reaped_unknown(Pid::from_raw(42), ExitKind::Code(0)).to_string(),
            "reaped unknown pid 42 (exit status 0)"
        );
        assert_eq!(
            control_request("restart sshd", 812, 0).to_string(),
            "control: restart sshd (pid 812, uid 0)"
        );
        let eperm = io::Error::from_raw_os_error(1);
        assert_eq!(
            cannot_signal(15, Pid::from_raw(-7), &eperm).to_string(),
            "error: cannot send SIGTERM to process group 7: Operation not permitted (os error 1)"
        );
        assert_eq!(
            cannot_signal(9, Pid::from_raw(-1), &eperm).to_string(),
            "error: cannot send SIGKILL to every process: Operation not permitted (os error 1)"
        );
        assert_eq!(
            backoff("a", Duration::from_millis(500)).to_string(),
            "backoff: a starts again in 0.5 seconds"
        );
        assert_eq!(
            backoff("a", Duration::from_secs(4)).to_string(),
            "backoff: a starts again in 4 seconds"
        );
    }
}
