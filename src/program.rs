//! One supervised program's life, as a state machine whose transitions are
//! pure functions of (state, event, now). The supervisor performs the side
//! effects (spawn, kill, log) that the returned values call for.
//!
//! ```text
//!   Waiting ──due──▶ Starting ──startsecs──▶ Running
//!      ▲  ▲             │                       │
//!      │  └─spawnerr────┘ (spawn failed)        │
//!      └──── unexpected exit ◀──────────────────┤
//!            expected exit ──▶ Stopped          │
//!   shutdown: Waiting ──▶ Done;  Starting/Running ──▶ Stopping ──exit──▶ Done
//! ```
//!
//! Backoff: a run that lasted at least `startsecs` is restarted at once;
//! every consecutive shorter run (or failed spawn) doubles the wait, from
//! 1 s, capped at `backoff_max`. It never gives up.

use std::ffi::CString;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::config::{Policy, ProgramName};
use crate::status::ExitKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// To be started at `at`.
    Waiting { at: Instant },
    /// Running, not yet past `startsecs`.
    Starting { pid: Pid, since: Instant },
    /// Running past `startsecs`.
    Running { pid: Pid, since: Instant },
    /// Exited with an expected code: stays stopped.
    Stopped,
    /// Sent the shutdown signal; waiting for it to exit.
    Stopping { pid: Pid },
    /// Shut down.
    Done,
}

/// What an exit means, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// An expected code: not restarted.
    Expected,
    /// Anything else: restarted after `after`.
    Unexpected { after: Duration },
    /// Exited during shutdown.
    Stopped,
}

#[derive(Debug)]
pub struct Program {
    pub name: ProgramName,
    pub argv: Vec<CString>,
    pub cwd: Option<CString>,
    pub state: State,
    /// Consecutive runs shorter than `startsecs`, failed spawns included.
    short_runs: u32,
    /// The process group of the latest run, which may outlive its leader.
    pub pgid: Option<Pid>,
}

/// The wait before the next start after `short_runs` consecutive short runs.
pub fn backoff(short_runs: u32, max: Duration) -> Duration {
    match short_runs {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(32)).min(max),
    }
}

impl Program {
    pub fn new(
        name: ProgramName,
        argv: Vec<CString>,
        cwd: Option<CString>,
        now: Instant,
    ) -> Program {
        Program {
            name,
            argv,
            cwd,
            state: State::Waiting { at: now },
            short_runs: 0,
            pgid: None,
        }
    }

    /// The pid of the running process, if any.
    pub fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } | State::Stopping { pid } => {
                Some(pid)
            }
            State::Waiting { .. } | State::Stopped | State::Done => None,
        }
    }

    /// When this program next needs the loop's attention, if ever.
    pub fn deadline(&self, policy: &Policy) -> Option<Instant> {
        match self.state {
            State::Waiting { at } => Some(at),
            State::Starting { since, .. } => since.checked_add(policy.startsecs.duration()),
            _ => None,
        }
    }

    pub fn is_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Waiting { at } if at <= now)
    }

    pub fn started(&mut self, pid: Pid, now: Instant) {
        self.state = State::Starting { pid, since: now };
        self.pgid = Some(pid);
    }

    /// A spawn failed: wait as after a short run. Returns the wait.
    pub fn spawn_failed(&mut self, now: Instant, policy: &Policy) -> Duration {
        self.short_runs = self.short_runs.saturating_add(1);
        let wait = backoff(self.short_runs, policy.backoff_max.duration());
        self.state = State::Waiting {
            at: now.checked_add(wait).unwrap_or(now),
        };
        wait
    }

    /// Starting → Running once `startsecs` have passed; true when it did.
    pub fn confirm(&mut self, now: Instant, policy: &Policy) -> bool {
        if let State::Starting { pid, since } = self.state {
            if now.saturating_duration_since(since) >= policy.startsecs.duration() {
                self.state = State::Running { pid, since };
                self.short_runs = 0;
                return true;
            }
        }
        false
    }

    /// The process exited; `None` when it was not running (a stale pid).
    pub fn exited(&mut self, how: ExitKind, now: Instant, policy: &Policy) -> Option<Exit> {
        let since = match self.state {
            State::Starting { since, .. } | State::Running { since, .. } => since,
            State::Stopping { .. } => {
                self.state = State::Done;
                return Some(Exit::Stopped);
            }
            State::Waiting { .. } | State::Stopped | State::Done => return None,
        };
        if matches!(how, ExitKind::Code(code) if policy.exitcodes.contains(code)) {
            // Expected even when quick: a script that did its work and left
            // with 0 is a success, not a failed start.
            self.state = State::Stopped;
            return Some(Exit::Expected);
        }
        if now.saturating_duration_since(since) >= policy.startsecs.duration() {
            self.short_runs = 0;
        } else {
            self.short_runs = self.short_runs.saturating_add(1);
        }
        let after = backoff(self.short_runs, policy.backoff_max.duration());
        self.state = State::Waiting {
            at: now.checked_add(after).unwrap_or(now),
        };
        Some(Exit::Unexpected { after })
    }

    /// Shutdown: returns the pid to signal, if it is running.
    pub fn stop(&mut self) -> Option<Pid> {
        match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                self.state = State::Stopping { pid };
                Some(pid)
            }
            State::Waiting { .. } => {
                self.state = State::Done;
                None
            }
            State::Stopping { pid } => Some(pid),
            State::Stopped | State::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExitCodes, Seconds};

    fn policy() -> Policy {
        Policy {
            exitcodes: ExitCodes::default(),
            startsecs: Seconds::parse("1").unwrap(),
            backoff_max: Seconds::parse("60").unwrap(),
            grace: Seconds::parse("8").unwrap(),
        }
    }

    fn program(now: Instant) -> Program {
        Program::new(ProgramName::new("p").unwrap(), vec![c"x".into()], None, now)
    }

    const PID: Pid = Pid::from_raw(42);

    #[test]
    fn backoff_doubles_from_one_second_and_caps() {
        let max = Duration::from_secs(60);
        let waits: Vec<u64> = (0..9).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1000, max), max);
        assert_eq!(
            backoff(3, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_new_program_is_due_at_once() {
        let now = Instant::now();
        let p = program(now);
        assert!(p.is_due(now));
        assert_eq!(p.deadline(&policy()), Some(now));
    }

    #[test]
    fn expected_exit_stops_even_when_quick() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(
            p.exited(ExitKind::Code(2), now, &policy()),
            Some(Exit::Expected)
        );
        assert_eq!(p.state, State::Stopped);
        assert_eq!(p.deadline(&policy()), None);
    }

    #[test]
    fn quick_failures_back_off_and_a_long_run_resets() {
        let t0 = Instant::now();
        let mut p = program(t0);
        let policy = policy();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            p.started(PID, now);
            match p.exited(ExitKind::Code(1), now, &policy) {
                Some(Exit::Unexpected { after }) => waits.push(after.as_secs()),
                other => panic!("{other:?}"),
            }
            now += Duration::from_secs(100);
        }
        assert_eq!(waits, [1, 2, 4, 8]);
        p.started(PID, now);
        let later = now + Duration::from_secs(5);
        assert!(p.confirm(later, &policy));
        assert!(matches!(p.state, State::Running { .. }));
        assert_eq!(
            p.exited(ExitKind::Signal(9), later, &policy),
            Some(Exit::Unexpected {
                after: Duration::ZERO
            })
        );
        assert!(p.is_due(later));
    }

    #[test]
    fn a_long_run_that_was_not_yet_confirmed_restarts_at_once() {
        let now = Instant::now();
        let mut p = program(now);
        p.spawn_failed(now, &policy());
        p.started(PID, now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            p.exited(ExitKind::Code(1), later, &policy()),
            Some(Exit::Unexpected {
                after: Duration::ZERO
            })
        );
    }

    #[test]
    fn spawn_failures_share_the_backoff() {
        let now = Instant::now();
        let mut p = program(now);
        let waits: Vec<u64> = (0..3)
            .map(|_| p.spawn_failed(now, &policy()).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4]);
    }

    #[test]
    fn confirm_waits_for_startsecs() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(p.deadline(&policy()), Some(now + Duration::from_secs(1)));
        assert!(!p.confirm(now + Duration::from_millis(999), &policy()));
        assert!(p.confirm(now + Duration::from_secs(1), &policy()));
        assert!(!p.confirm(now + Duration::from_secs(2), &policy()));
    }

    #[test]
    fn shutdown_stops_running_and_cancels_waiting() {
        let now = Instant::now();
        let mut waiting = program(now);
        assert_eq!(waiting.stop(), None);
        assert_eq!(waiting.state, State::Done);
        let mut running = program(now);
        running.started(PID, now);
        assert_eq!(running.stop(), Some(PID));
        assert_eq!(
            running.exited(ExitKind::Signal(15), now, &policy()),
            Some(Exit::Stopped)
        );
        assert_eq!(running.state, State::Done);
        assert_eq!(running.exited(ExitKind::Code(0), now, &policy()), None);
    }
}
