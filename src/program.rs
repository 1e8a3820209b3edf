//! One supervised program's life, as a state machine whose transitions are
//! pure functions of (state, event, now). The supervisor performs the side
//! effects (spawn, kill, log) that the returned values call for.
//!
//! ```text
//!   NotStarted (autostart=false) ──start──▶ Waiting
//!   Waiting ──due──▶ Starting ──startsecs──▶ Running
//!      ▲  ▲             │                       │
//!      │  └─spawnerr────┘ (spawn failed)        │
//!      └──── exit that autorestart restarts ◀───┤
//!            exit it does not restart ──▶ Exited
//!            too many failed starts in a row ──▶ Fatal ──start──▶ Waiting
//!   stop request: Starting/Running ──▶ Stopping ──exit──▶ Stopped
//!                 Waiting/Exited ──▶ Stopped;  restart: … Stopping ──exit──▶ Waiting
//!   start request: Waiting/Exited/Stopped/Fatal ──▶ Waiting (due now, backoff reset)
//!   shutdown: Waiting/Stopped/… ──▶ Done;  Starting/Running ──▶ Stopping ──exit──▶ Done
//! ```
//!
//! What an exit leads to is the program's `autorestart`: by default an
//! expected code stays down and anything else is restarted. Backoff: a
//! run that lasted at least `startsecs` is restarted at once; every
//! consecutive shorter run (or failed spawn) is a failed start and doubles
//! the wait, from 1 s, capped at `backoff_max`. Without `startretries` it
//! never gives up; with N, the N+1st failed start in a row is FATAL.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::unistd::Pid;

use crate::config::ProgramName;
use crate::schedule::{self, Schedule};
use crate::settings::{AutoRestart, Ready, Settings};
use crate::status::ExitKind;
use crate::values::{Policy, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `autostart=false`: not started until asked to.
    NotStarted,
    /// To be started at `at`.
    Waiting { at: Instant },
    /// Running, not yet past `startsecs`.
    Starting { pid: Pid, since: Instant },
    /// Running past `startsecs`.
    Running { pid: Pid, since: Instant },
    /// Exited, and its `autorestart` does not start it again: stays down.
    Exited,
    /// Gave up after `startretries`: stays down until started by request.
    Fatal,
    /// Stopped by request at `at` (wall clock): stays down until started
    /// by request.
    Stopped { at: SystemTime },
    /// Sent its stop signal; waiting for it to exit. `kill_at`: when the
    /// stop turns to SIGKILL (None once it has).
    Stopping {
        pid: Pid,
        after: AfterStop,
        kill_at: Option<Instant>,
    },
    /// Shut down.
    Done,
    /// A scheduled program (`cron=`, `every=`) between runs: its next run
    /// is due at `at`.
    Scheduled { at: Instant },
}

/// What a stopping program does once it has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Shutdown,
    StayStopped,
    Restart,
}

/// What an exit means, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// An expected code.
    Expected { then: Then },
    /// Anything else.
    Unexpected { then: Then },
    /// Exited after its stop signal (a shutdown or a request).
    Stopped,
}

/// What follows an exit or a failed spawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Started again after this wait.
    Restart(Duration),
    /// Stays down: its `autorestart` says so.
    Down,
    /// Stays down: too many failed starts in a row.
    Fatal,
    /// Runs again at its next scheduled time (wall clock).
    Scheduled(SystemTime),
}

/// How the last run ended, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exit { how: ExitKind, expected: bool },
    SpawnFailed,
}

/// The answer to a request of `cocalc-init start|stop|restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Done already: the reply's word ("stopped").
    Done(&'static str),
    /// Send the stop signal to this group, then wait for the exit.
    Signal(Pid),
    /// Already on its way: wait for the exit.
    Wait,
    /// Due now: start it, then reply.
    Spawn,
    /// Cannot be done: the reason, for `ERROR (…)`.
    Refused(&'static str),
}

/// What `cocalc-init status` shows of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// supervisorctl's state word: STARTING, RUNNING, BACKOFF, STOPPING,
    /// STOPPED, EXITED or FATAL.
    pub state: &'static str,
    pub detail: String,
    /// Counts as up for the exit status: RUNNING, or EXITED with an
    /// expected code (see [`Program::is_up`]).
    pub up: bool,
}

#[derive(Debug)]
pub struct Program {
    pub name: ProgramName,
    /// What it is to init: the few rules that differ by role are here.
    pub role: Role,
    pub argv: Vec<CString>,
    pub cwd: Option<CString>,
    /// An init script's file, looked at before each start.
    pub script: Option<PathBuf>,
    /// A scheduled program's next run, on both clocks: due when the
    /// monotonic one says; the wall-clock one is what the log says and
    /// what a clock that jumped is checked against.
    next_run: Option<(Instant, SystemTime)>,
    /// When the current run started (wall clock), and how long the last
    /// one ran.
    run_started: Option<SystemTime>,
    ran_for: Option<Duration>,
    /// The cron time the current (or last) run was started for: the next
    /// time is after it, even when the run began a moment before it (the
    /// monotonic clock's due time is worked out a moment early).
    floor: Option<SystemTime>,
    pub settings: Settings,
    /// Its environment, where its settings change init's.
    pub env: Option<Vec<CString>>,
    /// Due, but held back by these programs of its `after` (not up).
    pub waiting_for: Vec<String>,
    /// `ready=tcp|exists`: when the next probe is due, while starting.
    pub probe_at: Option<Instant>,
    /// Its recent output, for `tail`.
    pub history: crate::history::History,
    /// The last `STATUS=` it sent to the notify socket.
    pub status_text: Option<String>,
    /// A stop (of a shutdown, `stop all`, `restart all`) that waits for
    /// the programs that start after this one to be gone, and what is to
    /// follow it.
    pub deferred_stop: Option<AfterStop>,
    pub state: State,
    /// Consecutive runs shorter than `startsecs`, failed spawns included.
    short_runs: u32,
    /// The process group of the latest run, which may outlive its leader.
    pub pgid: Option<Pid>,
    /// Processes started so far.
    pub starts: u32,
    /// Starts made by supervision after an end (or a failed spawn) since
    /// the program was last started by hand, or last stayed up
    /// [`STABLE`]: what `status` calls its restarts.
    restarts: u32,
    /// The next start is a restart (see `restarts`), not one by hand.
    restarting: bool,
    /// Failed spawns so far.
    pub spawn_failures: u32,
    /// How the last run ended, and when (wall clock) it went down.
    pub ended: Option<(Ended, SystemTime)>,
}

/// How long a run stays up before its program's restarts are forgotten:
/// a crash loop shows its count, a program that recovered a while ago
/// does not. (Kubernetes forgets a crash loop's backoff after as long.)
pub const STABLE: Duration = Duration::from_secs(600);

/// A running process as `status` shows it: `pid 12, uptime 0:05:12`.
pub fn running(pid: Pid, since: Instant, now: Instant) -> String {
    let up = now.saturating_duration_since(since).as_secs();
    format!(
        "pid {pid}, uptime {}:{:02}:{:02}",
        up / 3600,
        up / 60 % 60,
        up % 60
    )
}

/// `1 restart`, `2 restarts`.
fn count(n: u32, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
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
        settings: Settings,
        now: Instant,
    ) -> Program {
        let state = if settings.autostart {
            State::Waiting { at: now }
        } else {
            State::NotStarted
        };
        Program {
            name,
            role: Role::Program,
            argv,
            cwd,
            script: None,
            next_run: None,
            run_started: None,
            ran_for: None,
            floor: None,
            settings,
            env: None,
            waiting_for: Vec::new(),
            probe_at: None,
            history: crate::history::History::default(),
            status_text: None,
            deferred_stop: None,
            state,
            short_runs: 0,
            pgid: None,
            starts: 0,
            restarts: 0,
            restarting: false,
            spawn_failures: 0,
            ended: None,
        }
    }

    /// The same, in another role.
    pub fn with_role(mut self, role: Role) -> Program {
        self.role = role;
        self
    }

    /// Whether an end is followed by another start, as its settings say:
    /// never for the main command, whose end is init's.
    fn may_restart(&self) -> bool {
        self.role == Role::Program
    }

    /// How its last run ended, if it ran and ended.
    pub fn last_exit(&self) -> Option<ExitKind> {
        match self.ended {
            Some((Ended::Exit { how, .. }, _)) => Some(how),
            _ => None,
        }
    }

    /// Whether anything about it can come due: a start, a `startsecs`
    /// check, a probe, a stop's SIGKILL or a stop deferred.
    pub fn has_timer(&self) -> bool {
        self.deferred_stop.is_some()
            || matches!(
                self.state,
                State::Waiting { .. }
                    | State::Scheduled { .. }
                    | State::Starting { .. }
                    | State::Stopping { .. }
            )
            || (self.cron() && self.pid().is_some())
    }

    /// The pid of the running process, if any.
    pub fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Stopping { pid, .. } => Some(pid),
            State::NotStarted
            | State::Waiting { .. }
            | State::Scheduled { .. }
            | State::Exited
            | State::Fatal
            | State::Stopped { .. }
            | State::Done => None,
        }
    }

    /// Down for good: exited and not restarted, or gave up. (Stopped by
    /// request is not: someone asked.)
    pub fn is_down_for_good(&self) -> bool {
        matches!(self.state, State::Exited | State::Fatal)
    }

    /// The stop signal for a stop by request, or at a shutdown by `sig`.
    pub fn stop_signal(&self, sig: i32) -> i32 {
        self.settings.stopsignal.unwrap_or(sig)
    }

    /// When this program next needs the loop's attention, if ever. One
    /// held back by its `after` has none: a change of another program's
    /// state wakes the loop anyway.
    pub fn deadline(&self) -> Option<Instant> {
        // A cron time that comes while a run goes is skipped, when due.
        let skip = match self.state {
            State::Starting { .. } | State::Running { .. } if self.cron() => {
                self.next_run.map(|(at, _)| at)
            }
            _ => None,
        };
        let own = match self.state {
            State::Waiting { at } if self.waiting_for.is_empty() => Some(at),
            State::Scheduled { at } if self.waiting_for.is_empty() => Some(at),
            State::Starting { since, .. } => match self.settings.ready {
                Ready::Startsecs => since.checked_add(self.settings.startsecs.duration()),
                Ready::Tcp(_) | Ready::Exists(_) => self.probe_at,
                Ready::Notify | Ready::Exited => None,
            },
            State::Stopping { kill_at, .. } => kill_at,
            _ => None,
        };
        match (own, skip) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Up: what `after`, `wait` and `status`'s exit status wait for —
    /// RUNNING (ready), or EXITED with an expected code.
    pub fn is_up(&self) -> bool {
        // About to stop, held for the programs after it: not up for them.
        if self.deferred_stop.is_some() {
            return false;
        }
        match self.state {
            State::Running { .. } => true,
            // A scheduled program once a run ended as expected.
            State::Exited | State::Scheduled { .. } => {
                matches!(self.ended, Some((Ended::Exit { expected: true, .. }, _)))
            }
            _ => false,
        }
    }

    pub fn is_due(&self, now: Instant) -> bool {
        matches!(self.state, State::Waiting { at } | State::Scheduled { at } if at <= now)
    }

    /// A `cron=` program (its times come from the wall clock).
    pub fn cron(&self) -> bool {
        matches!(self.settings.schedule, Some(Schedule::Cron(..)))
    }

    /// A scheduled program's next run planned from `now` (both clocks):
    /// the next cron time, or `every` from now. Scheduled, and the wall
    /// time returned, for the log.
    pub fn plan_next(&mut self, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        let next = self.next_time(now, wall)?;
        self.state = State::Scheduled { at: next.0 };
        self.next_run = Some(next);
        Some(next.1)
    }

    fn next_time(&self, now: Instant, wall: SystemTime) -> Option<(Instant, SystemTime)> {
        match self.settings.schedule.as_ref()? {
            Schedule::Every(d) => Some((now.checked_add(*d)?, wall.checked_add(*d)?)),
            cron => {
                let from = self.floor.map_or(wall, |floor| floor.max(wall));
                let next = schedule::next_after(cron, from, crate::stamp::zone())?;
                let wait = next.duration_since(wall).unwrap_or_default();
                Some((now.checked_add(wait)?, next))
            }
        }
    }

    /// A cron program's time came while its last run still runs: the time
    /// is skipped (no second copy, no queue) and the next one planned.
    /// When it started, if so.
    pub fn skip_due(&mut self, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        let (at, _) = self.next_run?;
        if !self.cron() || at > now || self.pid().is_none() {
            return None;
        }
        // Past the skipped time, whatever the clocks say.
        self.floor = self.next_run.map(|(_, skipped)| skipped);
        self.next_run = self.next_time(now, wall);
        Some(self.run_started.unwrap_or(wall))
    }

    /// The wall clock has moved against the monotonic one (a suspended
    /// VM, NTP stepping): a cron program's next time is found again from
    /// the clock as it is, and one whose time has passed is due now (one
    /// run, however many times passed).
    /// True when the jump made a time that passed due now.
    pub fn follow_the_clock(&mut self, now: Instant, wall: SystemTime) -> bool {
        let (State::Scheduled { at }, Some((_, next_wall))) = (self.state, self.next_run) else {
            return false;
        };
        if !self.cron() {
            return false;
        }
        let expected = now
            .checked_add(next_wall.duration_since(wall).unwrap_or_default())
            .unwrap_or(now);
        let drift = if expected > at {
            expected - at
        } else {
            at - expected
        };
        if drift <= Duration::from_secs(1) {
            return false;
        }
        self.state = State::Scheduled { at: expected };
        self.next_run = Some((expected, next_wall));
        next_wall <= wall && at > now
    }

    pub fn started(&mut self, pid: Pid, now: Instant) {
        self.started_at(pid, now, SystemTime::now());
    }

    /// Started at `now`, which the wall clock calls `wall`.
    pub fn started_at(&mut self, pid: Pid, now: Instant, wall: SystemTime) {
        // A run at its time: the next is after that time. (By hand, from
        // now.)
        self.floor = match (self.state, self.next_run) {
            (State::Scheduled { .. }, Some((_, planned))) => Some(planned),
            _ => None,
        };
        self.state = match (self.role, &self.settings.schedule) {
            (Role::Program, None) => State::Starting { pid, since: now },
            // Up once it runs: the main command's end is init's, and a
            // scheduled run is judged by its exit; neither has a failed
            // start to tell from a good run.
            (Role::Main, _) | (Role::Program, Some(_)) => State::Running { pid, since: now },
        };
        self.status_text = None;
        self.probe_at = match self.settings.ready {
            Ready::Tcp(_) | Ready::Exists(_) => now.checked_add(crate::probe::EVERY),
            _ => None,
        };
        self.pgid = Some(pid);
        self.starts = self.starts.saturating_add(1);
        self.count_restart();
        self.run_started = Some(wall);
        // While it runs: a cron program's next time, which a long run
        // may see come (and skip); an `every` one's comes at its end.
        self.next_run = if self.cron() {
            self.next_time(now, wall)
        } else {
            None
        };
    }

    /// A start (or an attempt) made: one restart more, if supervision made it.
    fn count_restart(&mut self) {
        if std::mem::take(&mut self.restarting) {
            self.restarts = self.restarts.saturating_add(1);
        }
    }

    /// Started by hand (a `start` or `restart`): due now, and what the
    /// failed starts and restarts before it counted starts again.
    fn by_hand(&mut self, now: Instant) -> State {
        self.short_runs = 0;
        self.restarts = 0;
        self.restarting = false;
        State::Waiting { at: now }
    }

    /// A spawn failed: a failed start, waited for as after a short run.
    pub fn spawn_failed(&mut self, now: Instant, wall: SystemTime, policy: &Policy) -> Then {
        self.count_restart();
        self.spawn_failures = self.spawn_failures.saturating_add(1);
        self.ended = Some((Ended::SpawnFailed, wall));
        // A scheduled program's next try is its next time.
        if let Some(next) = self.plan_next(now, wall) {
            return Then::Scheduled(next);
        }
        self.failed_start(now, policy)
    }

    /// One more failed start in a row: backoff, or FATAL past
    /// `startretries`.
    fn failed_start(&mut self, now: Instant, policy: &Policy) -> Then {
        if !self.may_restart() {
            self.state = State::Exited;
            return Then::Down;
        }
        self.short_runs = self.short_runs.saturating_add(1);
        if self
            .settings
            .startretries
            .is_some_and(|n| self.short_runs > n)
        {
            self.state = State::Fatal;
            return Then::Fatal;
        }
        self.restart_after(now, policy)
    }

    fn restart_after(&mut self, now: Instant, policy: &Policy) -> Then {
        let wait = backoff(self.short_runs, policy.backoff_max.duration());
        self.restarting = true;
        self.state = State::Waiting {
            at: now.checked_add(wait).unwrap_or(now),
        };
        Then::Restart(wait)
    }

    /// Starting → Running once `startsecs` have passed (`ready=startsecs`);
    /// true when it did.
    pub fn confirm(&mut self, now: Instant) -> bool {
        if self.settings.ready != Ready::Startsecs {
            return false;
        }
        if let State::Starting { pid, since } = self.state {
            if now.saturating_duration_since(since) >= self.settings.startsecs.duration() {
                self.state = State::Running { pid, since };
                self.short_runs = 0;
                return true;
            }
        }
        false
    }

    /// Starting → Running because its readiness was seen (a `READY=1`, a
    /// probe that succeeded); true when it did.
    pub fn became_ready(&mut self) -> bool {
        if let State::Starting { pid, since } = self.state {
            // The failed starts in a row are counted on until the run
            // proves good at its exit: ready, then a crash, is no success.
            self.state = State::Running { pid, since };
            self.probe_at = None;
            return true;
        }
        false
    }

    /// The process exited; `None` when it was not running (a stale pid).
    pub fn exited(
        &mut self,
        how: ExitKind,
        now: Instant,
        wall: SystemTime,
        policy: &Policy,
    ) -> Option<Exit> {
        let expected =
            matches!(how, ExitKind::Code(code) if self.settings.exitcodes.contains(code));
        // Ended by itself while its stop waited for others: as stopped.
        if let (Some(after), Some(_)) = (self.deferred_stop.take(), self.pid()) {
            self.ended = Some((Ended::Exit { how, expected }, wall));
            self.state = match after {
                AfterStop::Shutdown => State::Done,
                AfterStop::StayStopped => State::Stopped { at: wall },
                AfterStop::Restart => self.by_hand(now),
            };
            return Some(Exit::Stopped);
        }
        // Whether the run counts as a start that worked: with startsecs,
        // by how long it lasted; otherwise, whether it got ready.
        let (since, was_ready) = match self.state {
            State::Starting { since, .. } => (since, false),
            State::Running { since, .. } => (since, true),
            State::Stopping { after, .. } => {
                self.ended = Some((Ended::Exit { how, expected }, wall));
                self.state = match after {
                    AfterStop::Shutdown => State::Done,
                    AfterStop::StayStopped => State::Stopped { at: wall },
                    AfterStop::Restart => self.by_hand(now),
                };
                return Some(Exit::Stopped);
            }
            State::NotStarted
            | State::Waiting { .. }
            | State::Scheduled { .. }
            | State::Exited
            | State::Fatal
            | State::Stopped { .. }
            | State::Done => {
                return None;
            }
        };
        self.ended = Some((Ended::Exit { how, expected }, wall));
        self.probe_at = None;
        // A good run: one that lasted startsecs, and with another `ready`
        // also got ready (ready and then a quick crash, as with a port
        // still held by an old instance, backs off like any failed start).
        let ran = now.saturating_duration_since(since);
        if ran >= STABLE {
            self.restarts = 0;
        }
        self.ran_for = Some(ran);
        // A run of a scheduled program: judged, and the next one planned
        // (a failed run's retry is its next time).
        if let Some(next) = self.plan_next(now, wall) {
            let then = Then::Scheduled(next);
            return Some(if expected {
                Exit::Expected { then }
            } else {
                Exit::Unexpected { then }
            });
        }
        let lasted = ran >= self.settings.startsecs.duration();
        let worked = match self.settings.ready {
            Ready::Startsecs => lasted,
            _ => was_ready && lasted,
        };
        let restart = self.may_restart()
            && match self.settings.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Unexpected => !expected,
                AutoRestart::Never => false,
            };
        let then = if !restart {
            // Expected even when quick: a script that did its work and left
            // with 0 is a success, not a failed start.
            self.state = State::Exited;
            Then::Down
        } else if worked {
            self.short_runs = 0;
            self.restart_after(now, policy)
        } else {
            self.failed_start(now, policy)
        };
        Some(if expected {
            Exit::Expected { then }
        } else {
            Exit::Unexpected { then }
        })
    }

    /// Shutdown: returns the pid to signal, if it is running; SIGKILL is
    /// due at `kill_at`.
    pub fn stop(&mut self, kill_at: Instant) -> Option<Pid> {
        // A stop held by `stop all`/`restart all` gives way to this one.
        self.deferred_stop = None;
        match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                self.state = State::Stopping {
                    pid,
                    after: AfterStop::Shutdown,
                    kill_at: Some(kill_at),
                };
                Some(pid)
            }
            // A stop by request under way: its SIGKILL stays as due.
            State::Stopping { pid, kill_at, .. } => {
                self.state = State::Stopping {
                    pid,
                    after: AfterStop::Shutdown,
                    kill_at,
                };
                Some(pid)
            }
            State::NotStarted
            | State::Waiting { .. }
            | State::Scheduled { .. }
            | State::Stopped { .. }
            | State::Fatal => {
                self.state = State::Done;
                None
            }
            State::Exited | State::Done => None,
        }
    }

    /// A stop that must wait (reverse start order): kept, and nothing is
    /// sent yet. The group, if it runs; one that does not run is stopped
    /// at once as the stop would.
    pub fn defer_stop(&mut self, after: AfterStop) -> Option<Pid> {
        let pid = match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => pid,
            _ => return None,
        };
        self.deferred_stop = Some(after);
        Some(pid)
    }

    /// The held stop, now: the group to signal, if it still runs.
    pub fn send_deferred_stop(
        &mut self,
        now: Instant,
        kill_at: Instant,
        wall: SystemTime,
    ) -> Option<Pid> {
        match self.deferred_stop.take()? {
            AfterStop::Shutdown => self.stop(kill_at),
            AfterStop::StayStopped => match self.request_stop(kill_at, wall) {
                Answer::Signal(pid) => Some(pid),
                _ => None,
            },
            AfterStop::Restart => match self.request_restart(now, kill_at) {
                Answer::Signal(pid) => Some(pid),
                _ => None,
            },
        }
    }

    /// For the stop order: still running, and not yet sent SIGKILL.
    pub fn is_live_for_order(&self) -> bool {
        match self.state {
            State::Starting { .. } | State::Running { .. } => true,
            State::Stopping { kill_at, .. } => kill_at.is_some(),
            _ => false,
        }
    }

    /// `cocalc-init stop`: SIGKILL at `kill_at` if the stop signal was not
    /// enough; the program then stays down.
    pub fn request_stop(&mut self, kill_at: Instant, wall: SystemTime) -> Answer {
        self.deferred_stop = None;
        match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                self.state = State::Stopping {
                    pid,
                    after: AfterStop::StayStopped,
                    kill_at: Some(kill_at),
                };
                Answer::Signal(pid)
            }
            State::Stopping {
                after: AfterStop::StayStopped | AfterStop::Restart,
                ..
            } => self.stop_ends_in(AfterStop::StayStopped),
            // Backing off or exited: no restart any more; scheduled: off its
            // schedule until started.
            State::Waiting { .. } | State::Scheduled { .. } | State::Exited => {
                self.state = State::Stopped { at: wall };
                Answer::Done("stopped")
            }
            State::NotStarted | State::Stopped { .. } | State::Fatal => {
                Answer::Refused("not running")
            }
            State::Stopping { .. } | State::Done => Answer::Refused("shutting down"),
        }
    }

    /// `cocalc-init start`: due now, backoff reset.
    pub fn request_start(&mut self, now: Instant) -> Answer {
        self.deferred_stop = None;
        match self.state {
            // Scheduled: a run now, then its schedule again.
            State::NotStarted
            | State::Waiting { .. }
            | State::Scheduled { .. }
            | State::Exited
            | State::Fatal
            | State::Stopped { .. } => {
                self.state = self.by_hand(now);
                Answer::Spawn
            }
            State::Starting { .. } | State::Running { .. } => Answer::Refused("already started"),
            State::Stopping {
                after: AfterStop::StayStopped | AfterStop::Restart,
                ..
            } => self.stop_ends_in(AfterStop::Restart),
            State::Stopping { .. } | State::Done => Answer::Refused("shutting down"),
        }
    }

    /// A stop by request already under way: what follows the exit is now
    /// `then`, and the answer waits for it.
    fn stop_ends_in(&mut self, then: AfterStop) -> Answer {
        if let State::Stopping { after, .. } = &mut self.state {
            *after = then;
        }
        Answer::Wait
    }

    /// `cocalc-init restart`: stop, then start (at once if not running).
    pub fn request_restart(&mut self, now: Instant, kill_at: Instant) -> Answer {
        match self.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                self.state = State::Stopping {
                    pid,
                    after: AfterStop::Restart,
                    kill_at: Some(kill_at),
                };
                Answer::Signal(pid)
            }
            _ => self.request_start(now),
        }
    }

    /// A stop by request whose time is up: the group to SIGKILL, once.
    pub fn kill_due(&mut self, now: Instant) -> Option<Pid> {
        match self.state {
            State::Stopping {
                pid,
                after,
                kill_at: Some(at),
            } if at <= now => {
                self.state = State::Stopping {
                    pid,
                    after,
                    kill_at: None,
                };
                Some(pid)
            }
            _ => None,
        }
    }

    /// What a row of a program that has ended before adds: the restarts
    /// since it was started by hand or last stayed up [`STABLE`], and how
    /// its last run ended, in the log's words, with when:
    /// `, 17 restarts, last exit status 1 at 12:03:04`.
    fn history(&self, now: Instant, when: &impl Fn(SystemTime) -> String) -> String {
        let stable = matches!(
            self.state,
            State::Running { since, .. } if now.saturating_duration_since(since) >= STABLE
        );
        let mut out = String::new();
        if self.restarts > 0 && !stable {
            out.push_str(&format!(", {}", count(self.restarts, "restart")));
        }
        match self.ended {
            Some((Ended::Exit { how, .. }, at)) => {
                out.push_str(&format!(", last {how} at {}", when(at)));
            }
            Some((Ended::SpawnFailed, at)) => {
                out.push_str(&format!(", last spawn error at {}", when(at)));
            }
            None => {}
        }
        out
    }

    /// A SCHEDULED row: the next run, and how the last one ended in the
    /// log's words, when, and for how long; up unless it failed.
    fn scheduled_row(&self) -> (&'static str, String, bool) {
        let zone = crate::stamp::zone();
        let next = match self.next_run {
            _ if !self.waiting_for.is_empty() => {
                format!("due, waiting for {}", self.waiting_for.join(", "))
            }
            Some((_, at)) => format!("next run at {}", schedule::local_text(at, zone)),
            None => "next run not planned".to_string(),
        };
        match self.ended {
            None => ("SCHEDULED", format!("{next}; never run"), true),
            Some((Ended::SpawnFailed, at)) => (
                "SCHEDULED",
                format!(
                    "{next}; last run: spawn error at {}",
                    schedule::local_text(at, zone)
                ),
                false,
            ),
            Some((Ended::Exit { how, expected }, at)) => {
                let took = self.ran_for.map_or(0, |d| d.as_secs());
                (
                    "SCHEDULED",
                    format!(
                        "{next}; last run: {how} at {}, {took} s",
                        schedule::local_text(at, zone)
                    ),
                    expected,
                )
            }
        }
    }

    /// What `status` shows. `when` writes a wall-clock time as the status
    /// line wants it.
    pub fn status(&self, now: Instant, when: impl Fn(SystemTime) -> String) -> Status {
        let (state, mut detail, up) = match self.state {
            State::NotStarted => ("STOPPED", "Not started".to_string(), false),
            State::Fatal => (
                "FATAL",
                format!(
                    "too many start retries too quickly{}",
                    self.history(now, &when)
                ),
                false,
            ),
            State::Waiting { .. } if !self.waiting_for.is_empty() => (
                "STARTING",
                format!("waiting for {}", self.waiting_for.join(", ")),
                false,
            ),
            State::Waiting { at } => match self.ended {
                None => ("STARTING", String::new(), false),
                Some((ended, _)) => {
                    let last = match ended {
                        Ended::Exit { how, expected } => {
                            let word = if expected { "expected" } else { "not expected" };
                            format!("{how}; {word}")
                        }
                        Ended::SpawnFailed => "spawn error".to_string(),
                    };
                    let wait = at.saturating_duration_since(now).as_secs_f64().ceil();
                    (
                        "BACKOFF",
                        format!(
                            "{last}; starts again in {wait} s; {}",
                            count(self.restarts, "restart")
                        ),
                        false,
                    )
                }
            },
            State::Starting { pid, .. } => (
                "STARTING",
                format!("pid {pid}{}", self.history(now, &when)),
                false,
            ),
            State::Running { pid, since } => (
                "RUNNING",
                format!("{}{}", running(pid, since, now), self.history(now, &when)),
                true,
            ),
            State::Exited => match self.ended {
                // Its end is init's: no code is judged, and it was up.
                Some((Ended::Exit { how, .. }, at)) if self.role == Role::Main => {
                    ("EXITED", format!("{} ({how})", when(at)), true)
                }
                Some((Ended::Exit { how, expected }, at)) => {
                    let word = if expected { "expected" } else { "not expected" };
                    ("EXITED", format!("{} ({how}; {word})", when(at)), expected)
                }
                _ => ("EXITED", String::new(), true),
            },
            State::Stopped { at } => (
                "STOPPED",
                format!("{} (stopped by request)", when(at)),
                false,
            ),
            State::Stopping { pid, .. } => ("STOPPING", format!("pid {pid}"), false),
            State::Done => ("STOPPED", "shut down".to_string(), false),
            State::Scheduled { .. } => self.scheduled_row(),
        };
        if let (Some(user), Some(_)) = (&self.settings.user, self.pid()) {
            detail.push_str(&format!(", user {}", user.name));
        }
        if let (Some(text), Some(_)) = (&self.status_text, self.pid()) {
            detail.push_str(&format!("; {text}"));
        }
        Status { state, detail, up }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{AutoRestart, Ready, Settings};
    use crate::values::{ExitCodes, Seconds};

    fn policy() -> Policy {
        crate::values::test_policy()
    }

    fn program(now: Instant) -> Program {
        with(now, |_| {})
    }

    /// A program whose settings `change` made.
    fn with(now: Instant, change: impl FnOnce(&mut Settings)) -> Program {
        let mut settings = Settings::defaults(&policy());
        change(&mut settings);
        Program::new(
            ProgramName::new("p").unwrap(),
            vec![c"x".into()],
            None,
            settings,
            now,
        )
    }

    const PID: Pid = Pid::from_raw(42);
    const WALL: SystemTime = SystemTime::UNIX_EPOCH;

    fn when(_: SystemTime) -> String {
        "Nov 27 04:40 PM".to_string()
    }

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
        assert_eq!(p.deadline(), Some(now));
    }

    #[test]
    fn expected_exit_stops_even_when_quick() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(
            p.exited(ExitKind::Code(2), now, WALL, &policy()),
            Some(Exit::Expected { then: Then::Down })
        );
        assert_eq!(p.state, State::Exited);
        assert_eq!(p.deadline(), None);
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
            match p.exited(ExitKind::Code(1), now, WALL, &policy) {
                Some(Exit::Unexpected {
                    then: Then::Restart(after),
                }) => waits.push(after.as_secs()),
                other => panic!("{other:?}"),
            }
            now += Duration::from_secs(100);
        }
        assert_eq!(waits, [1, 2, 4, 8]);
        p.started(PID, now);
        let later = now + Duration::from_secs(5);
        assert!(p.confirm(later));
        assert!(matches!(p.state, State::Running { .. }));
        assert_eq!(
            p.exited(ExitKind::Signal(9), later, WALL, &policy),
            Some(Exit::Unexpected {
                then: Then::Restart(Duration::ZERO)
            })
        );
        assert!(p.is_due(later));
    }

    #[test]
    fn a_long_run_that_was_not_yet_confirmed_restarts_at_once() {
        let now = Instant::now();
        let mut p = program(now);
        p.spawn_failed(now, WALL, &policy());
        p.started(PID, now);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            p.exited(ExitKind::Code(1), later, WALL, &policy()),
            Some(Exit::Unexpected {
                then: Then::Restart(Duration::ZERO)
            })
        );
    }

    #[test]
    fn spawn_failures_share_the_backoff() {
        let now = Instant::now();
        let mut p = program(now);
        let waits: Vec<u64> = (0..3)
            .map(|_| p.spawn_failed(now, WALL, &policy()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|then| match then {
                Then::Restart(after) => after.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, [1, 2, 4]);
    }

    #[test]
    fn confirm_waits_for_startsecs() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(p.deadline(), Some(now + Duration::from_secs(1)));
        assert!(!p.confirm(now + Duration::from_millis(999)));
        assert!(p.confirm(now + Duration::from_secs(1)));
        assert!(!p.confirm(now + Duration::from_secs(2)));
    }

    #[test]
    fn shutdown_stops_running_and_cancels_waiting() {
        let now = Instant::now();
        let mut waiting = program(now);
        assert_eq!(waiting.stop(now), None);
        assert_eq!(waiting.state, State::Done);
        let mut running = program(now);
        running.started(PID, now);
        assert_eq!(running.stop(now), Some(PID));
        assert_eq!(
            running.exited(ExitKind::Signal(15), now, WALL, &policy()),
            Some(Exit::Stopped)
        );
        assert_eq!(running.state, State::Done);
        assert_eq!(
            running.exited(ExitKind::Code(0), now, WALL, &policy()),
            None
        );
    }

    #[test]
    fn stop_by_request_holds_the_program_down() {
        let now = Instant::now();
        let kill_at = now + Duration::from_secs(8);
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(p.request_stop(kill_at, WALL), Answer::Signal(PID));
        assert_eq!(p.deadline(), Some(kill_at));
        assert_eq!(p.kill_due(now), None);
        assert_eq!(p.kill_due(kill_at), Some(PID));
        assert_eq!(p.kill_due(kill_at), None);
        assert_eq!(
            p.exited(ExitKind::Signal(9), now, WALL, &policy()),
            Some(Exit::Stopped)
        );
        assert_eq!(p.state, State::Stopped { at: WALL });
        assert_eq!(p.deadline(), None);
        assert!(!p.is_due(now + Duration::from_secs(1000)));
        assert_eq!(
            p.request_stop(kill_at, WALL),
            Answer::Refused("not running")
        );
        let s = p.status(now, when);
        assert_eq!((s.state, s.up), ("STOPPED", false));
        assert_eq!(s.detail, "Nov 27 04:40 PM (stopped by request)");
    }

    #[test]
    fn stopping_a_backing_off_program_cancels_its_restart() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        p.exited(ExitKind::Code(1), now, WALL, &policy());
        let s = p.status(now, when);
        assert_eq!((s.state, s.up), ("BACKOFF", false));
        assert_eq!(
            s.detail,
            "exit status 1; not expected; starts again in 1 s; 0 restarts"
        );
        assert_eq!(p.request_stop(now, WALL), Answer::Done("stopped"));
        assert!(matches!(p.state, State::Stopped { .. }));
    }

    #[test]
    fn start_resets_the_backoff_and_is_due_at_once() {
        let now = Instant::now();
        let mut p = program(now);
        for _ in 0..5 {
            p.started(PID, now);
            p.exited(ExitKind::Code(1), now, WALL, &policy());
        }
        assert!(!p.is_due(now));
        assert_eq!(p.request_start(now), Answer::Spawn);
        assert!(p.is_due(now));
        p.started(PID, now);
        assert_eq!(p.request_start(now), Answer::Refused("already started"));
        // After the reset, a quick failure waits 1 s again.
        assert_eq!(
            p.exited(ExitKind::Code(1), now, WALL, &policy()),
            Some(Exit::Unexpected {
                then: Then::Restart(Duration::from_secs(1))
            })
        );
    }

    #[test]
    fn restart_stops_then_is_due_at_once() {
        let now = Instant::now();
        let kill_at = now + Duration::from_secs(8);
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(p.request_restart(now, kill_at), Answer::Signal(PID));
        assert_eq!(p.status(now, when).state, "STOPPING");
        assert_eq!(
            p.exited(ExitKind::Signal(15), now, WALL, &policy()),
            Some(Exit::Stopped)
        );
        assert!(p.is_due(now));
        // Not running: restart is a start.
        let mut held = program(now);
        held.request_stop(kill_at, WALL);
        assert_eq!(held.request_restart(now, kill_at), Answer::Spawn);
    }

    #[test]
    fn shutdown_overrides_a_stop_by_request() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        let kill_at = now + Duration::from_secs(3);
        p.request_restart(now, kill_at);
        // The SIGKILL the stop by request set stays due.
        assert_eq!(p.stop(now + Duration::from_secs(20)), Some(PID));
        assert_eq!(p.deadline(), Some(kill_at));
        p.exited(ExitKind::Signal(15), now, WALL, &policy());
        assert_eq!(p.state, State::Done);
        assert_eq!(p.request_start(now), Answer::Refused("shutting down"));
    }

    #[test]
    fn status_words_are_supervisorctls() {
        let now = Instant::now();
        let mut p = program(now);
        assert_eq!(p.status(now, when).state, "STARTING");
        p.started(PID, now);
        assert_eq!(p.status(now, when).detail, "pid 42");
        p.confirm(now + Duration::from_secs(1));
        let s = p.status(now + Duration::from_secs(312), when);
        assert_eq!(
            (s.state, s.detail.as_str(), s.up),
            ("RUNNING", "pid 42, uptime 0:05:12", true)
        );
        p.exited(ExitKind::Code(0), now, WALL, &policy());
        let s = p.status(now, when);
        assert_eq!(
            (s.state, s.detail.as_str(), s.up),
            ("EXITED", "Nov 27 04:40 PM (exit status 0; expected)", true)
        );
    }

    #[test]
    fn autorestart_true_restarts_after_an_expected_exit() {
        let now = Instant::now();
        let mut p = with(now, |s| s.autorestart = AutoRestart::Always);
        p.started(PID, now);
        let later = now + Duration::from_secs(5);
        p.confirm(later);
        assert_eq!(
            p.exited(ExitKind::Code(0), later, WALL, &policy()),
            Some(Exit::Expected {
                then: Then::Restart(Duration::ZERO)
            })
        );
        assert!(p.is_due(later));
        // A quick expected exit is a failed start: it backs off.
        p.started(PID, later);
        assert_eq!(
            p.exited(ExitKind::Code(0), later, WALL, &policy()),
            Some(Exit::Expected {
                then: Then::Restart(Duration::from_secs(1))
            })
        );
    }

    #[test]
    fn autorestart_false_stays_down_after_any_exit() {
        let now = Instant::now();
        let mut p = with(now, |s| s.autorestart = AutoRestart::Never);
        p.started(PID, now);
        assert_eq!(
            p.exited(ExitKind::Code(1), now, WALL, &policy()),
            Some(Exit::Unexpected { then: Then::Down })
        );
        assert_eq!(p.state, State::Exited);
        assert!(p.is_down_for_good());
        let s = p.status(now, when);
        assert_eq!(
            (s.state, s.detail.as_str(), s.up),
            (
                "EXITED",
                "Nov 27 04:40 PM (exit status 1; not expected)",
                false
            )
        );
    }

    #[test]
    fn startretries_gives_up_after_that_many_failed_starts_plus_one() {
        let now = Instant::now();
        let mut p = with(now, |s| s.startretries = Some(1));
        p.started(PID, now);
        assert_eq!(
            p.exited(ExitKind::Code(1), now, WALL, &policy()),
            Some(Exit::Unexpected {
                then: Then::Restart(Duration::from_secs(1))
            })
        );
        p.started(PID, now);
        assert_eq!(
            p.exited(ExitKind::Code(1), now, WALL, &policy()),
            Some(Exit::Unexpected { then: Then::Fatal })
        );
        assert_eq!(p.state, State::Fatal);
        assert_eq!(p.deadline(), None);
        let s = p.status(now, when);
        // The row says how it got there: the restart it made, and the end.
        let detail = format!(
            "too many start retries too quickly, 1 restart, last exit status 1 at {}",
            when(WALL)
        );
        assert_eq!(
            (s.state, s.detail.as_str(), s.up),
            ("FATAL", detail.as_str(), false)
        );
        // start takes it up again, with the count reset.
        assert_eq!(p.request_start(now), Answer::Spawn);
        p.started(PID, now);
        assert!(matches!(
            p.exited(ExitKind::Code(1), now, WALL, &policy()),
            Some(Exit::Unexpected {
                then: Then::Restart(_)
            })
        ));
        // Zero retries: the first failed spawn is fatal.
        let mut q = with(now, |s| s.startretries = Some(0));
        assert_eq!(q.spawn_failed(now, WALL, &policy()), Then::Fatal);
    }

    #[test]
    fn a_run_past_startsecs_is_restarted_whatever_startretries_says() {
        let now = Instant::now();
        let mut p = with(now, |s| s.startretries = Some(0));
        for n in 1..5 {
            p.started(PID, now);
            let later = now + Duration::from_secs(10 * n);
            assert_eq!(
                p.exited(ExitKind::Code(1), later, WALL, &policy()),
                Some(Exit::Unexpected {
                    then: Then::Restart(Duration::ZERO)
                })
            );
        }
    }

    #[test]
    fn autostart_false_waits_for_a_start_request() {
        let now = Instant::now();
        let mut p = with(now, |s| s.autostart = false);
        assert!(!p.is_due(now));
        assert_eq!(p.deadline(), None);
        let s = p.status(now, when);
        assert_eq!(
            (s.state, s.detail.as_str(), s.up),
            ("STOPPED", "Not started", false)
        );
        assert_eq!(p.request_stop(now, WALL), Answer::Refused("not running"));
        assert_eq!(p.request_start(now), Answer::Spawn);
        assert!(p.is_due(now));
        let mut never = with(now, |s| s.autostart = false);
        assert_eq!(never.stop(now), None);
        assert_eq!(never.state, State::Done);
    }

    #[test]
    fn its_own_settings_decide_expected_codes_and_startsecs() {
        let now = Instant::now();
        let mut p = with(now, |s| {
            s.exitcodes = ExitCodes::parse("3").unwrap();
            s.startsecs = Seconds::parse("5").unwrap();
        });
        p.started(PID, now);
        assert_eq!(p.deadline(), Some(now + Duration::from_secs(5)));
        assert!(!p.confirm(now + Duration::from_secs(4)));
        assert_eq!(
            p.exited(ExitKind::Code(3), now, WALL, &policy()),
            Some(Exit::Expected { then: Then::Down })
        );
        assert_eq!(p.stop_signal(15), 15);
        let q = with(now, |s| s.stopsignal = Some(3));
        assert_eq!(q.stop_signal(15), 3);
    }

    #[test]
    fn ready_and_then_a_quick_crash_backs_off() {
        let now = Instant::now();
        let mut p = with(now, |s| s.ready = Ready::Notify);
        let mut waits = Vec::new();
        for _ in 0..3 {
            p.started(PID, now);
            assert!(p.became_ready());
            match p.exited(ExitKind::Code(1), now, WALL, &policy()) {
                Some(Exit::Unexpected {
                    then: Then::Restart(after),
                }) => waits.push(after.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [1, 2, 4]);
        // Ready and up past startsecs: a good run, restarted at once.
        p.started(PID, now);
        assert!(p.became_ready());
        assert_eq!(
            p.exited(
                ExitKind::Code(1),
                now + Duration::from_secs(5),
                WALL,
                &policy()
            ),
            Some(Exit::Unexpected {
                then: Then::Restart(Duration::ZERO)
            })
        );
    }

    #[test]
    fn a_shutdown_stop_takes_the_place_of_a_held_one() {
        let now = Instant::now();
        let mut p = program(now);
        p.started(PID, now);
        assert_eq!(p.defer_stop(AfterStop::Restart), Some(PID));
        assert!(!p.is_up());
        assert_eq!(p.stop(now), Some(PID));
        assert_eq!(p.deferred_stop, None);
        assert_eq!(
            p.exited(ExitKind::Signal(15), now, WALL, &policy()),
            Some(Exit::Stopped)
        );
        assert_eq!(p.state, State::Done);
    }

    /// Every state a request can find, by name.
    fn states(now: Instant, wall: SystemTime) -> Vec<(&'static str, State)> {
        let pid = Pid::from_raw(7);
        let stopping = |after| State::Stopping {
            pid,
            after,
            kill_at: Some(now),
        };
        vec![
            ("not started", State::NotStarted),
            ("waiting", State::Waiting { at: now }),
            ("starting", State::Starting { pid, since: now }),
            ("running", State::Running { pid, since: now }),
            ("exited", State::Exited),
            ("fatal", State::Fatal),
            ("stopped", State::Stopped { at: wall }),
            ("stopping (stop)", stopping(AfterStop::StayStopped)),
            ("stopping (restart)", stopping(AfterStop::Restart)),
            ("stopping (shutdown)", stopping(AfterStop::Shutdown)),
            ("done", State::Done),
            ("scheduled", State::Scheduled { at: now }),
        ]
    }

    /// What a state is, in a word, after a request: where it goes next.
    fn word(state: State) -> &'static str {
        match state {
            State::NotStarted => "not started",
            State::Waiting { .. } => "waiting",
            State::Starting { .. } => "starting",
            State::Running { .. } => "running",
            State::Exited => "exited",
            State::Fatal => "fatal",
            State::Stopped { .. } => "stopped",
            State::Stopping {
                after: AfterStop::StayStopped,
                ..
            } => "stopping (stop)",
            State::Stopping {
                after: AfterStop::Restart,
                ..
            } => "stopping (restart)",
            State::Stopping {
                after: AfterStop::Shutdown,
                ..
            } => "stopping (shutdown)",
            State::Done => "done",
            State::Scheduled { .. } => "scheduled",
        }
    }

    /// A verb, the call that makes it, and what it should answer and leave.
    type Request = (
        &'static str,
        fn(&mut Program, Instant, SystemTime) -> Answer,
        (Answer, &'static str),
    );

    #[test]
    fn requests_against_every_state() {
        let t = Instant::now();
        let wall = SystemTime::now();
        let pid = Pid::from_raw(7);
        let signal = Answer::Signal(pid);
        let not_running = Answer::Refused("not running");
        let already = Answer::Refused("already started");
        let shutting = Answer::Refused("shutting down");
        let spawn = Answer::Spawn;
        // state → (stop: answer, next), (start: …), (restart: …)
        type Row = (
            &'static str,
            (Answer, &'static str),
            (Answer, &'static str),
            (Answer, &'static str),
        );
        let table: [Row; 12] = [
            (
                "not started",
                (not_running, "not started"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
            (
                "waiting",
                (Answer::Done("stopped"), "stopped"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
            (
                "starting",
                (signal, "stopping (stop)"),
                (already, "starting"),
                (signal, "stopping (restart)"),
            ),
            (
                "running",
                (signal, "stopping (stop)"),
                (already, "running"),
                (signal, "stopping (restart)"),
            ),
            (
                "exited",
                (Answer::Done("stopped"), "stopped"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
            (
                "fatal",
                (not_running, "fatal"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
            (
                "stopped",
                (not_running, "stopped"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
            (
                "stopping (stop)",
                (Answer::Wait, "stopping (stop)"),
                (Answer::Wait, "stopping (restart)"),
                (Answer::Wait, "stopping (restart)"),
            ),
            (
                "stopping (restart)",
                (Answer::Wait, "stopping (stop)"),
                (Answer::Wait, "stopping (restart)"),
                (Answer::Wait, "stopping (restart)"),
            ),
            (
                "stopping (shutdown)",
                (shutting, "stopping (shutdown)"),
                (shutting, "stopping (shutdown)"),
                (shutting, "stopping (shutdown)"),
            ),
            (
                "done",
                (shutting, "done"),
                (shutting, "done"),
                (shutting, "done"),
            ),
            // Scheduled: off its schedule when stopped; a run now when
            // started or restarted.
            (
                "scheduled",
                (Answer::Done("stopped"), "stopped"),
                (spawn, "waiting"),
                (spawn, "waiting"),
            ),
        ];
        for (name, state) in states(t, wall) {
            let row = table.iter().find(|r| r.0 == name).unwrap();
            let requests: [Request; 3] = [
                ("stop", |p, t, w| p.request_stop(t, w), row.1),
                ("start", |p, t, _| p.request_start(t), row.2),
                ("restart", |p, t, _| p.request_restart(t, t), row.3),
            ];
            for (verb, request, (answer, next)) in requests {
                let mut p = program(t);
                p.state = state;
                assert_eq!(request(&mut p, t, wall), answer, "{verb} when {name}");
                assert_eq!(word(p.state), next, "{verb} when {name}");
            }
        }
    }

    #[test]
    fn up_for_after_and_wait_by_state() {
        let t = Instant::now();
        let wall = SystemTime::now();
        let exit = |code, expected| {
            Some((
                Ended::Exit {
                    how: ExitKind::Code(code),
                    expected,
                },
                wall,
            ))
        };
        // (state, how the last run ended, a stop deferred) → up
        let cases = [
            (
                State::Running {
                    pid: Pid::from_raw(7),
                    since: t,
                },
                None,
                false,
                true,
            ),
            (
                State::Running {
                    pid: Pid::from_raw(7),
                    since: t,
                },
                None,
                true,
                false,
            ),
            (
                State::Starting {
                    pid: Pid::from_raw(7),
                    since: t,
                },
                None,
                false,
                false,
            ),
            (State::Exited, exit(0, true), false, true),
            (State::Exited, exit(1, false), false, false),
            (State::Waiting { at: t }, exit(0, true), false, false),
            (State::Fatal, None, false, false),
            (State::Stopped { at: wall }, None, false, false),
            (State::NotStarted, None, false, false),
        ];
        for (state, ended, deferred, up) in cases {
            let mut p = program(t);
            p.state = state;
            p.ended = ended;
            p.deferred_stop = deferred.then_some(AfterStop::Shutdown);
            assert_eq!(p.is_up(), up, "{state:?} {ended:?} deferred {deferred}");
        }
    }

    #[test]
    fn the_main_role_is_never_restarted_and_up_once_it_runs() {
        let t = Instant::now();
        let wall = SystemTime::now();
        let main = || program(t).with_role(Role::Main);
        let mut p = main();
        p.started(Pid::from_raw(9), t);
        assert!(p.is_up(), "up at once: no startsecs");
        assert!(!p.confirm(t + Duration::from_secs(9)), "nothing to confirm");
        // Any end, quick or not, expected or not: it stays down.
        for how in [ExitKind::Code(0), ExitKind::Code(1), ExitKind::Signal(9)] {
            let mut p = main();
            p.started(Pid::from_raw(9), t);
            let exit = p.exited(how, t, wall, &policy()).unwrap();
            assert!(
                matches!(
                    exit,
                    Exit::Expected { then: Then::Down } | Exit::Unexpected { then: Then::Down }
                ),
                "{how:?}"
            );
            assert_eq!(p.state, State::Exited);
            assert_eq!(p.last_exit(), Some(how));
            let status = p.status(t, |_| "12:00:00".into());
            assert_eq!(
                (status.state, status.detail.as_str(), status.up),
                ("EXITED", &*format!("12:00:00 ({how})"), true)
            );
        }
        // A spawn that fails: no backoff, no retry.
        let mut p = main();
        assert_eq!(p.spawn_failed(t, wall, &policy()), Then::Down);
        assert_eq!(p.state, State::Exited);
        assert_eq!(p.last_exit(), None);
        // A program in its place is restarted.
        let mut p = program(t);
        p.started(Pid::from_raw(9), t);
        let exit = p.exited(ExitKind::Code(1), t, wall, &policy()).unwrap();
        assert!(matches!(
            exit,
            Exit::Unexpected {
                then: Then::Restart(_)
            }
        ));
    }

    #[test]
    fn rows_count_restarts_until_a_start_by_hand_or_a_stable_run() {
        let t = Instant::now();
        let mut p = with(t, |s| s.startsecs = Seconds::parse("0").unwrap());
        let row = |p: &Program, now| p.status(now, |_| "T".into()).detail;
        p.started(PID, t);
        p.confirm(t);
        assert_eq!(
            row(&p, t),
            "pid 42, uptime 0:00:00",
            "never ended: nothing to add"
        );
        // A crash loop: each restart counted, the last end said.
        for n in 1..=3 {
            p.exited(ExitKind::Code(1), t, WALL, &policy());
            p.started(PID, t);
            p.confirm(t);
            let s = if n == 1 { "" } else { "s" };
            let want = format!("pid 42, uptime 0:00:00, {n} restart{s}, last exit status 1 at T");
            assert_eq!(row(&p, t), want);
        }
        // Up for STABLE: the count is forgotten, the last end is not.
        let later = t + STABLE;
        assert_eq!(
            row(&p, later),
            "pid 42, uptime 0:10:00, last exit status 1 at T"
        );
        p.exited(ExitKind::Signal(9), later, WALL, &policy());
        p.started(PID, later);
        assert_eq!(
            row(&p, later),
            "pid 42, 1 restart, last terminated by SIGKILL at T"
        );
        // Started by hand: counted from nothing again.
        p.request_restart(later, later);
        p.exited(ExitKind::Signal(15), later, WALL, &policy());
        p.started(PID, later);
        assert_eq!(row(&p, later), "pid 42, last terminated by SIGTERM at T");
        // A failed spawn is a restart too, and said as such.
        p.exited(ExitKind::Code(1), later, WALL, &policy());
        p.spawn_failed(later, WALL, &policy());
        let s = p.status(later, |_| "T".into());
        assert_eq!(s.state, "BACKOFF");
        assert_eq!(s.detail, "spawn error; starts again in 1 s; 1 restart");
    }

    #[test]
    fn a_scheduled_program_runs_is_judged_and_waits_for_its_next_time() {
        let t = Instant::now();
        let every = |s: &mut Settings| s.schedule = Some(schedule::parse_every("60").unwrap());
        let mut p = with(t, every);
        assert!(p.is_due(t), "every: a first run at start");
        p.started(PID, t);
        let later = t + Duration::from_secs(5);
        let exit = p.exited(ExitKind::Code(1), later, WALL, &policy());
        let next = WALL + Duration::from_secs(60);
        assert_eq!(
            exit,
            Some(Exit::Unexpected {
                then: Then::Scheduled(next)
            })
        );
        assert_eq!(
            p.state,
            State::Scheduled {
                at: later + Duration::from_secs(60)
            }
        );
        assert!(
            !p.is_due(later + Duration::from_secs(59)),
            "no retry before its time"
        );
        assert!(p.is_due(later + Duration::from_secs(60)));
        assert!(!p.is_up(), "its last run failed");
        let s = p.status(later, when);
        assert_eq!((s.state, s.up), ("SCHEDULED", false));
        assert!(
            s.detail.contains("; last run: exit status 1 at ") && s.detail.ends_with(", 5 s"),
            "{}",
            s.detail
        );
        // An expected run: up, and said so.
        p.started(PID, later);
        p.exited(ExitKind::Code(0), later, WALL, &policy());
        assert!(p.is_up());
        // A failed spawn waits for the next time too.
        assert!(matches!(
            p.spawn_failed(later, WALL, &policy()),
            Then::Scheduled(_)
        ));
        assert!(matches!(p.state, State::Scheduled { .. }));
        // Shutdown: done, nothing more to run.
        assert_eq!(p.stop(later), None);
        assert_eq!(p.state, State::Done);
    }

    #[test]
    fn a_cron_time_that_comes_during_a_run_is_skipped_and_a_clock_jump_followed() {
        let t = Instant::now();
        let cron = |s: &mut Settings| s.schedule = Some(schedule::parse_cron("* * * * *").unwrap());
        let mut p = with(t, cron);
        let next = p.plan_next(t, WALL).unwrap();
        let wait = next.duration_since(WALL).unwrap();
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        let due = t + wait;
        assert_eq!(p.deadline(), Some(due));
        assert_eq!(p.skip_due(due, next), None, "not running: nothing to skip");
        p.started_at(PID, due, next);
        p.confirm(due + Duration::from_secs(2));
        // Running when the next minute comes: skipped, the one after planned.
        let minute = due + Duration::from_secs(60);
        assert_eq!(p.deadline(), Some(minute));
        assert!(p.skip_due(minute - Duration::from_secs(1), next).is_none());
        assert!(p.skip_due(minute, next + Duration::from_secs(60)).is_some());
        assert_eq!(p.deadline(), Some(minute + Duration::from_secs(60)));
        // After a run, the wall clock jumps ahead by an hour (a suspended
        // VM): the time passed is due at once, one run.
        p.exited(
            ExitKind::Code(0),
            minute,
            next + Duration::from_secs(60),
            &policy(),
        );
        let State::Scheduled { at } = p.state else {
            panic!("{:?}", p.state)
        };
        assert!(at > minute);
        assert!(p.follow_the_clock(minute, next + Duration::from_secs(3600 + 120)));
        assert_eq!(p.state, State::Scheduled { at: minute }, "due now");
        assert!(!p.follow_the_clock(minute, next + Duration::from_secs(3600 + 120)));
    }

    #[test]
    fn a_cron_run_started_a_moment_early_plans_the_time_after_its_own() {
        let t = Instant::now();
        let cron = |s: &mut Settings| s.schedule = Some(schedule::parse_cron("* * * * *").unwrap());
        let mut p = with(t, cron);
        let planned = p.plan_next(t, WALL).unwrap();
        let due = t + planned.duration_since(WALL).unwrap();
        // The wall clock says 5 ms before the planned time.
        let early = planned - Duration::from_millis(5);
        p.started_at(PID, due, early);
        assert_eq!(
            p.state,
            State::Running {
                pid: PID,
                since: due
            },
            "a run is up at once"
        );
        // Not the same minute again: no false skip, no second run.
        assert_eq!(p.skip_due(due, early), None);
        p.exited(ExitKind::Code(0), due, early, &policy());
        let Some((_, next)) = p.next_run else {
            panic!()
        };
        assert_eq!(next, planned + Duration::from_secs(60));
    }

    #[test]
    fn a_scheduled_run_held_by_its_after_does_not_spin() {
        let t = Instant::now();
        let every = |s: &mut Settings| s.schedule = Some(schedule::parse_every("1").unwrap());
        let mut p = with(t, every);
        p.plan_next(t, WALL);
        p.waiting_for = vec!["db".into()];
        assert_eq!(
            p.deadline(),
            None,
            "a change of db wakes the loop, not a timer"
        );
        let s = p.status(t, when);
        assert_eq!(s.state, "SCHEDULED");
        assert!(s.detail.starts_with("due, waiting for db"), "{}", s.detail);
    }
}
