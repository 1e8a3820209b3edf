//! The main loop: one thread, one blocking `poll` over the signalfd, the
//! program pipes and the control socket, with a timeout computed from the
//! earliest due timer (a restart, a `startsecs` check, a stop's SIGKILL,
//! a control client's limit, the grace, the next "waiting" notice). With
//! nothing due it sleeps in the kernel: idle costs no wake-up.
//!
//! From here on init must not die: every error is logged and survived.
//!
//! Supervisor phases: `Supervising` → `ShuttingDown` (stop signal sent,
//! grace running) → `Killing` (SIGKILL sent, until no child is left) →
//! the loop ends and `run` returns init's exit status.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use crate::config::{CONTROL_VAR, Config, PROGRAM_VAR, ProgramKind, ProgramName};
use crate::control::Control;
use crate::destination::Place;
use crate::logging;
use crate::messages;
use crate::notify::Notify;
use crate::order;
use crate::outlet::{OutletId, Outlets};
use crate::output::{Dest, Pipe, PipeRead, READ_CHUNK};
use crate::program::{Exit, Program, Then};
use crate::settings::{Ready, Settings};
use crate::signals::{self, Action, Reaped, Received, Signals};
use crate::spawn::{self, Isolation};
use crate::status::ExitKind;
use crate::stdio;
use crate::table::{ProgramId, Table};
use crate::values::{Level, Policy, Role, Stream};

mod decide;
mod readiness;
mod requests;
mod shutdown;
mod tail;

use requests::Waiter;
use shutdown::{Kill, Stop, Target};
use tail::Follower;

/// How long raw output still held for init's stdout or stderr may wait
/// for room at the end.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// How often "waiting for … to die" may repeat during the grace.
const NOTICE_EVERY: Duration = Duration::from_secs(3);
/// After SIGKILL, look again this often for processes that arrived without
/// a SIGCHLD telling us (a grandchild adopted on its parent's death).
const REKILL_EVERY: Duration = Duration::from_secs(1);

/// What each fd of a wait is, so that adding a source cannot shift
/// another's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Signals,
    Pipe(usize),
    Notify(usize),
    Probe(usize),
    /// An outlet that holds output back until its fd has room.
    Outlet(OutletId),
    /// The control socket's listener and clients, in its own order.
    Control,
}

/// What the last wait found ready, of what is not one of a list's items
/// (a pipe, a notify socket and a probe each carry their own flag, which
/// moves with them when a list changes in a turn).
#[derive(Debug, Default)]
struct Woken {
    signals: bool,
    /// Outlets whose fd has room.
    outlets: Vec<OutletId>,
    /// For the fds `Control::poll_fds` gave, in its order.
    control: Vec<bool>,
}

impl Woken {
    fn clear(&mut self) {
        self.signals = false;
        self.outlets.clear();
        self.control.clear();
    }

    fn set(&mut self, source: Source, ready: bool) {
        match source {
            Source::Signals => self.signals = ready,
            Source::Outlet(id) => {
                if ready {
                    self.outlets.push(id);
                }
            }
            Source::Control => self.control.push(ready),
            // Their flags are their own: see `wait`.
            Source::Pipe(_) | Source::Notify(_) | Source::Probe(_) => {}
        }
    }
}

/// A connect under way for a `ready=tcp` program.
struct Probe {
    program: ProgramId,
    fd: std::os::fd::OwnedFd,
    /// The last wait found it done (writable).
    ready: Cell<bool>,
}

enum Phase {
    Supervising,
    /// The stop signal is sent; the grace runs: until the longest of
    /// `-g` and the programs' `stopwaitsecs`.
    ShuttingDown {
        stop: Stop,
        grace_end: Instant,
        next_notice: Instant,
    },
    /// SIGKILL is sent, again until no child is left.
    Killing {
        stop: Stop,
        next_kill: Instant,
    },
}

impl Phase {
    fn is_supervising(&self) -> bool {
        matches!(self, Phase::Supervising)
    }
}

pub struct Supervisor {
    policy: Policy,
    signals: Signals,
    programs: Table,
    /// Init's exit status when not the main command's exit decides it: an
    /// essential program ended init, or the main command could not start.
    end_status: Option<u8>,
    /// A spawn made before the log existed (the main command's), to be
    /// taken in at the start of `run`.
    launched: Option<(ProgramId, Result<spawn::Spawned, spawn::SpawnError>)>,
    subreaper_error: Option<Errno>,
    /// The log copies its lines to standard error.
    log_on_stderr: bool,
    /// init's environment, for every child.
    env: Vec<&'static CStr>,
    pipes: Vec<Pipe>,
    phase: Phase,
    me: Pid,
    is_pid1: bool,
    /// False once `waitpid` said ECHILD, until the next spawn.
    have_children: bool,
    /// The grace ended with something still running.
    killed_any: bool,
    /// Targets a signal could not be sent to for a reason other than their
    /// being gone: each is logged once.
    refused: Vec<Pid>,
    /// An error of poll or of the signalfd has been logged and not cleared.
    wait_failing: bool,
    /// The read buffer for pipes, made at the first read.
    buf: Vec<u8>,
    /// What the last wait found ready, by source.
    woken: Woken,
    /// The notify sockets of the `ready=notify` programs, one each.
    notify: Vec<NotifySocket>,
    /// Connects under way for `ready=tcp` programs.
    probes: Vec<Probe>,
    /// The control socket, while supervising.
    control: Option<Control>,
    /// Replies that wait for programs to stop or start.
    waiters: Vec<Waiter>,
    /// `tail -f` clients.
    followers: Vec<Follower>,
    /// `-i` scripts that did not exist at start: (name, path, settings),
    /// for `status`, and for `start` once the script is there.
    skipped: Vec<(ProgramName, PathBuf, Settings)>,
    /// Signals read in one turn (capacity only between turns).
    received: Vec<Received>,
    /// Where program output goes raw: files, init's stdout and stderr.
    outlets: Outlets,
    /// The poll list and what each of its fds is, empty between waits:
    /// kept for their allocations, so that a turn makes none.
    poll_fds: Vec<PollFd<'static>>,
    poll_sources: Vec<Source>,
}

/// A turn's time, read from the clock the first time a handler asks: a
/// turn that only reaps an orphan reads none.
#[derive(Default)]
struct Clock(Cell<Option<Instant>>);

impl Clock {
    /// A clock already read.
    fn at(now: Instant) -> Clock {
        Clock(Cell::new(Some(now)))
    }

    fn now(&self) -> Instant {
        match self.0.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.0.set(Some(now));
                now
            }
        }
    }
}

/// An init script that did not exist at start: kept for `status`, and
/// for `start` once it is there.
type Skipped = (ProgramName, PathBuf, Settings);

/// The programs of the command line, in its order, each prepared to
/// start; the init scripts that do not exist (said in the log) apart.
fn build_programs(
    specs: Vec<crate::config::ProgramSpec>,
    env: &[&CStr],
    me: Pid,
    notify: &mut Vec<NotifySocket>,
) -> (Table, Vec<Skipped>) {
    let now = Instant::now();
    let mut programs = Table::default();
    let mut skipped = Vec::new();
    for spec in specs {
        let index = programs.next_id();
        match spec.kind {
            ProgramKind::Command(words) => {
                // Words from the command line hold no NUL byte.
                let argv = words
                    .into_iter()
                    .filter_map(|w| CString::new(w).ok())
                    .collect();
                let cwd = spec
                    .settings
                    .directory
                    .as_ref()
                    .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
                let program = Program::new(spec.name, argv, cwd, spec.settings, now);
                programs.push(prepare(program, index, env, me, notify));
            }
            ProgramKind::InitScript(script) => {
                // A scheduled one is looked for at each of its times.
                if !script.exists() && spec.settings.schedule.is_none() {
                    logging::info(messages::skipped(&script));
                    skipped.push((spec.name, script, spec.settings));
                    continue;
                }
                if let Some(program) = init_script(spec.name, &script, spec.settings, now) {
                    programs.push(prepare(program, index, env, me, notify));
                }
            }
            // Made by `launch`, which takes it out of the list.
            ProgramKind::Main(_) => {}
        }
    }
    (programs, skipped)
}

/// How long a client waits for a stop's answer: as long as the longest
/// stop can take, a grace or the sum along a chain of `after`.
fn longest_grace(programs: &Table, skipped: &[Skipped], policy: &Policy) -> f64 {
    let every: Vec<(&str, &Settings)> = programs
        .iter()
        .map(|p| (p.name.as_str(), &p.settings))
        .chain(skipped.iter().map(|(n, _, s)| (n.as_str(), s)))
        .collect();
    let waits: Vec<f64> = every
        .iter()
        .map(|(_, s)| s.stopwaitsecs.duration().as_secs_f64())
        .collect();
    let after: Vec<Vec<usize>> = every
        .iter()
        .map(|(_, s)| {
            s.after
                .iter()
                .filter_map(|d| every.iter().position(|(n, _)| n == d))
                .collect()
        })
        .collect();
    order::longest_chain(&waits, &after).max(policy.grace.duration().as_secs_f64())
}

/// An empty poll list's allocation, for a list that borrows the fds of
/// another turn: std collects a mapped `into_iter` in place, so no turn
/// allocates a list anew.
// The filter_map changes the lifetime: no element is ever mapped.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<'a>(mut fds: Vec<PollFd<'_>>) -> Vec<PollFd<'a>> {
    fds.clear();
    fds.into_iter().filter_map(|_| None).collect()
}

/// What init launched before its log existed, so that the main command's
/// start does not wait on init's own bookkeeping (opening the log): the
/// outcomes, for the supervisor to log in order.
pub struct Launch {
    /// init's own pid, asked once.
    pub me: Pid,
    /// Not PID 1: the error if init could not become a child subreaper.
    subreaper: Option<Errno>,
    /// The main command, and its spawn unless its `after` holds it back.
    main: Option<(Program, Option<Result<spawn::Spawned, spawn::SpawnError>>)>,
    env: Vec<&'static CStr>,
}

/// Becomes a child subreaper (not PID 1) and starts the main command.
/// Signals must already be blocked, so that its exit is not missed.
pub fn launch(config: &mut Config) -> Launch {
    let me = Pid::this();
    let mut subreaper = None;
    if me.as_raw() != 1 {
        // Orphans of our programs come to us, not to the real init, so
        // that we can reap them and reach them at shutdown. Before the
        // main command starts: its orphans are ours from the first.
        subreaper = nix::sys::prctl::set_child_subreaper(true).err();
    }
    let mut env = crate::glibc::environment();
    // Children find their init: a `cocalc-init restart x` run inside one
    // needs no --control.
    let control_var = config.control.as_ref().and_then(|path| {
        CString::new([CONTROL_VAR.as_bytes(), b"=", path.as_os_str().as_bytes()].concat()).ok()
    });
    if let Some(var) = control_var {
        env.retain(|e| spawn::var_name(e.to_bytes()) != CONTROL_VAR.as_bytes());
        // Made once and kept for init's whole life, like the rest of the
        // environment it joins.
        env.push(Box::leak(var.into_boxed_c_str()));
    }
    // A main command with an `after` starts later, from the loop.
    let at = config
        .programs
        .iter()
        .position(|p| p.kind.role() == Role::Main);
    let main = at.map(|at| config.programs.remove(at)).and_then(|spec| {
        let ProgramKind::Main(argv) = spec.kind else {
            return None;
        };
        let cwd = spec
            .settings
            .directory
            .as_ref()
            .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
        let mut program =
            Program::new(spec.name, argv, cwd, spec.settings, Instant::now()).with_role(Role::Main);
        program.env = environment(&program, &env, config.control.is_some(), None);
        let spawned = program
            .settings
            .after
            .is_empty()
            .then(|| spawn_child(&program, &env));
        Some((program, spawned))
    });
    Launch {
        me,
        subreaper,
        main,
        env,
    }
}

/// Starts a program's process, as its role has it: the main command keeps
/// init's terminal and foreground group; a program gets pipes for its output.
fn spawn_child(program: &Program, base: &[&CStr]) -> Result<spawn::Spawned, spawn::SpawnError> {
    let own: Vec<&CStr>;
    let env: &[&CStr] = match &program.env {
        Some(vars) => {
            own = vars.iter().map(CString::as_c_str).collect();
            &own
        }
        None => base,
    };
    let isolation = match program.role {
        Role::Main => Isolation::Main,
        Role::Program => Isolation::Program {
            merge_stderr: program.settings.redirect_stderr,
        },
    };
    spawn::spawn(
        &program.argv,
        program.cwd.as_deref(),
        isolation,
        env,
        program.settings.user.as_ref(),
    )
}

impl Supervisor {
    /// `log_on_stderr`: whether log lines reach standard error.
    pub fn new(
        config: Config,
        signals: Signals,
        launch: Launch,
        log_on_stderr: bool,
    ) -> Supervisor {
        let me = launch.me;
        let mut notify = Vec::new();
        let (mut programs, skipped) = build_programs(config.programs, &launch.env, me, &mut notify);
        let launched = launch.main.and_then(|(main, spawned)| {
            let id = programs.push(main);
            spawned.map(|spawned| (id, spawned))
        });
        let longest_grace = longest_grace(&programs, &skipped, &config.policy);
        let control = config.control.as_deref().and_then(|path| {
            Control::open(path, &longest_grace.to_string())
                .map_err(|e| logging::error(&e.0))
                .ok()
        });
        let mut env = launch.env;
        if control.is_none() && config.control.is_some() {
            // No socket after all: no child is pointed at one. (The main
            // command, started before the socket was made, was told.)
            let ours = |e: &[u8]| spawn::var_name(e) == CONTROL_VAR.as_bytes();
            env.retain(|e| !ours(e.to_bytes()));
            for program in &mut programs {
                if let Some(vars) = program.env.as_mut() {
                    vars.retain(|e| !ours(e.to_bytes()));
                }
            }
        }
        Supervisor {
            policy: config.policy,
            signals,
            programs,
            end_status: None,
            launched,
            subreaper_error: launch.subreaper,
            log_on_stderr,
            env,
            pipes: Vec::new(),
            phase: Phase::Supervising,
            me,
            is_pid1: me.as_raw() == 1,
            have_children: false,
            killed_any: false,
            refused: Vec::new(),
            wait_failing: false,
            buf: Vec::new(),
            woken: Woken::default(),
            notify,
            probes: Vec::new(),
            control,
            waiters: Vec::new(),
            followers: Vec::new(),
            skipped,
            received: Vec::new(),
            outlets: Outlets::default(),
            poll_fds: Vec::new(),
            poll_sources: Vec::new(),
        }
    }

    /// Runs until shutdown is complete; returns init's exit status.
    pub fn run(mut self) -> u8 {
        if let Some(e) = self.subreaper_error.take() {
            logging::error(messages::runtime_error(
                "cannot become a child subreaper",
                &std::io::Error::from(e),
            ));
        }
        if let Some((id, spawned)) = self.launched.take() {
            let now = Instant::now();
            if self.on_spawned(id, spawned, now).is_some() {
                self.check_ends_init(id, now);
            }
        }
        self.schedule_first(Instant::now());
        self.start_due(Instant::now());
        loop {
            if !self.phase.is_supervising() && !self.have_children {
                // What is pending goes out with the last lines, in one write.
                break;
            }
            // Before sleeping: nothing waits in memory while init is idle.
            logging::flush();
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            self.wait(timeout);
            self.turn();
        }
        // Every process is gone, so every pipe is at its end: log the rest.
        for pipe in &mut self.pipes {
            let history = self.programs.history_mut(pipe.program);
            pipe.drain(&mut self.buf, &mut self.outlets, history);
        }
        // A reader a moment late still gets the last raw output.
        self.outlets
            .finish(deadline_after(Instant::now(), FINAL_FLUSH));
        let main_exit = self
            .programs
            .iter()
            .find(|p| p.role == Role::Main)
            .and_then(Program::last_exit);
        let status = decide::exit_status(self.end_status, main_exit, self.killed_any);
        logging::info(messages::exiting(status));
        logging::flush();
        status
    }

    /// One turn, after a wait, in the one order that is decided here:
    /// 1. signals, read (a shutdown may begin; SIGCHLD is only noted);
    /// 2. pipes, each read once: what a program printed is logged before
    ///    its exit line;
    /// 3. control requests, notify datagrams, probe results, outlets with
    ///    room;
    /// 4. the reaping SIGCHLD asked for, after the pipes, so that a
    ///    program's last lines stand above its exit line; then `tail -f`
    ///    followers get the lines of the turn, a dying program's last
    ///    ones included;
    /// 5. timers (restarts due, startsecs passed, SIGKILLs, the grace),
    ///    which see every exit of this turn;
    /// 6. waiting replies, last, which see every state change of the turn.
    #[inline(always)]
    fn turn(&mut self) {
        let clock = Clock::default();
        let mut reap = false;
        if self.woken.signals {
            reap = self.on_signals(&clock);
        }
        if !self.pipes.is_empty() {
            self.on_pipes();
        }
        if self.control.is_some() {
            self.on_control(clock.now());
        }
        if !self.notify.is_empty() {
            self.on_notify();
        }
        if !self.probes.is_empty() {
            self.on_probes(clock.now());
        }
        if !self.woken.outlets.is_empty() {
            self.on_outlets();
        }
        if reap {
            self.reap(&clock);
        }
        if !self.followers.is_empty() {
            self.feed_followers();
        }
        // At most one clock read a turn: what came due while this turn's
        // events were handled is handled at the next, which the timeout
        // (from a fresh read) makes at once.
        if self.has_timers() {
            self.on_timers(clock.now());
        }
        if !self.waiters.is_empty() {
            self.settle_waiters(clock.now());
        }
    }

    /// Each pipe the wait found readable, read once; those at their end
    /// removed. Out of line: a turn that only reaps an orphan (the common
    /// one as PID 1) pays nothing for it.
    #[inline(never)]
    fn on_pipes(&mut self) {
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        self.pipes.retain_mut(|pipe| {
            !pipe.take_ready() || {
                let history = self.programs.history_mut(pipe.program);
                pipe.read(&mut self.buf, &mut self.outlets, history) == PipeRead::Open
            }
        });
    }

    /// Whether anything can come due: a program's timer, the control
    /// socket's clients, or a shutdown under way.
    fn has_timers(&self) -> bool {
        !self.phase.is_supervising() || self.control.is_some() || self.programs.has_timers()
    }

    /// Reads and acts on every pending signal. True if one was SIGCHLD.
    fn on_signals(&mut self, clock: &Clock) -> bool {
        self.received.clear();
        if let Err(e) = self.signals.read_pending(&mut self.received) {
            self.wait_failed("reading signals", e);
        }
        let mut reap = false;
        let mut next = 0;
        while let Some(&received) = self.received.get(next) {
            next += 1;
            if received.sender == self.me.as_raw() {
                // Raised by our own write (a closed stderr gives SIGPIPE):
                // not to be passed on to the programs.
                continue;
            }
            match signals::classify(received.signal) {
                Action::Reap => reap = true,
                Action::Shutdown(sig) if self.phase.is_supervising() => {
                    logging::warn(messages::exit_request(sig));
                    self.begin_shutdown(sig, clock.now());
                }
                Action::Shutdown(sig) | Action::Forward(sig) => self.forward(sig),
            }
        }
        reap
    }

    /// Whether the program NAME is up, for `after`: an init script that
    /// was skipped for not existing counts as up, as in `status`.
    fn is_up(&self, name: &str) -> bool {
        match self.programs.iter().find(|p| p.name.as_str() == name) {
            Some(program) => program.is_up(),
            None => self.skipped.iter().any(|(n, ..)| n.as_str() == name),
        }
    }

    /// Starts every program that is due and whose `after` is up.
    /// Confirmations come first,
    /// and the pass repeats while one start made another program up
    /// (startsecs 0), so that a chain starts in one turn.
    fn start_due(&mut self, now: Instant) {
        // Only a program waiting or starting can have anything to do here.
        let waiting = |p: &Program| {
            matches!(
                p.state,
                crate::program::State::Waiting { .. }
                    | crate::program::State::Scheduled { .. }
                    | crate::program::State::Starting { .. }
            )
        };
        if !self.phase.is_supervising() || !self.programs.iter().any(waiting) {
            return;
        }
        for program in &mut self.programs {
            if program.confirm(now) {
                logging::info(messages::success(
                    program.name.as_str(),
                    program.settings.startsecs,
                ));
            }
        }
        let mut gave_up = Vec::new();
        for _ in 0..=self.programs.len() {
            let mut more = false;
            for i in self.programs.ids() {
                let blocked: Vec<String> = match self.programs.get(i) {
                    Some(p) if p.is_due(now) => order::not_up(&p.settings.after, |n| self.is_up(n))
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    _ => continue,
                };
                let Some(program) = self.programs.get_mut(i) else {
                    continue;
                };
                if !blocked.is_empty() {
                    if program.waiting_for.is_empty() {
                        logging::info(messages::waiting_after(program.name.as_str(), &blocked));
                    }
                    program.waiting_for = blocked;
                    continue;
                }
                program.waiting_for.clear();
                if let Some(script) = program.script.as_deref() {
                    if !script.exists() {
                        // A scheduled init script not written yet: said
                        // at each time, as at start, and tried at the next.
                        logging::info(messages::skipped(script));
                        if let Some(at) = program.plan_next(now, SystemTime::now()) {
                            log_then(program.name.as_str(), Then::Scheduled(at));
                        }
                        continue;
                    }
                    if spawn::has_crlf_lines(script) {
                        logging::warn(messages::crlf_script(program.name.as_str(), script));
                    }
                }
                let spawned = spawn_child(program, &self.env);
                match self.on_spawned(i, spawned, now) {
                    Some(Then::Fatal | Then::Down) => gave_up.push(i),
                    Some(Then::Restart(_) | Then::Scheduled(_)) => {}
                    None => more |= self.programs.get(i).is_some_and(Program::is_up),
                }
            }
            if !more {
                break;
            }
        }
        for i in gave_up {
            self.check_ends_init(i, now);
        }
    }

    /// Takes in program `i`'s spawn: its start, or what followed a failed
    /// one (None when it started).
    fn on_spawned(
        &mut self,
        i: ProgramId,
        spawned: Result<spawn::Spawned, spawn::SpawnError>,
        now: Instant,
    ) -> Option<Then> {
        let program = self.programs.get_mut(i)?;
        match spawned {
            Ok(child) => {
                program.started(child.pid, now);
                self.have_children = true;
                logging::info(messages::spawned(program.name.as_str(), child.pid));
                for (file, stream, output) in [
                    (child.stdout, Stream::Stdout, &program.settings.stdout),
                    (child.stderr, Stream::Stderr, &program.settings.stderr),
                ] {
                    let dest = match output.place {
                        Place::Log => Dest::Log,
                        Place::Discard => Dest::Discard,
                        _ => self.outlets.id_for(output).map_or(Dest::Log, Dest::Outlet),
                    };
                    if let Some(file) = file {
                        self.pipes
                            .push(Pipe::new(i, program.name.as_str(), stream, dest, file));
                    }
                }
                // startsecs 0: confirmed at once.
                if program.confirm(now) {
                    logging::info(messages::success(
                        program.name.as_str(),
                        program.settings.startsecs,
                    ));
                }
                None
            }
            Err(e) if program.role == Role::Main => {
                // It ends init, with the status a shell gives a command
                // that cannot run; said on the terminal too, where the log
                // does not go.
                logging::error(messages::spawnerr(&e));
                if !self.log_on_stderr {
                    stdio::write(messages::main_cannot_run(&e).as_bytes());
                }
                self.end_status = Some(e.shell_status());
                Some(program.spawn_failed(now, SystemTime::now(), &self.policy))
            }
            Err(e) => {
                logging::warn(messages::spawnerr(&e));
                let then = program.spawn_failed(now, SystemTime::now(), &self.policy);
                log_then(program.name.as_str(), then);
                Some(then)
            }
        }
    }

    /// A `cron=` program's first run waits for its first time: planned, and
    /// said (an `every=` one runs at start, as any program).
    fn schedule_first(&mut self, now: Instant) {
        let wall = SystemTime::now();
        for program in &mut self.programs {
            if program.cron() && matches!(program.state, crate::program::State::Waiting { .. }) {
                if let Some(at) = program.plan_next(now, wall) {
                    log_then(program.name.as_str(), Then::Scheduled(at));
                }
            }
        }
    }

    /// Scheduled programs: their times against a wall clock that may have
    /// jumped, and a cron time that came while the last run still runs
    /// (skipped, said).
    fn scheduled_timers(&mut self, now: Instant) {
        if !self.programs.iter().any(|p| p.settings.schedule.is_some()) {
            return;
        }
        let wall = SystemTime::now();
        for program in &mut self.programs {
            if program.follow_the_clock(now, wall) {
                logging::info(messages::clock_jumped(program.name.as_str()));
            }
            if let Some(since) = program.skip_due(now, wall) {
                logging::warn(messages::skipped_running(
                    program.name.as_str(),
                    &crate::schedule::local_text(since, crate::stamp::zone()),
                ));
            }
        }
    }

    /// Whether program `index`'s end ends init: the main command's always,
    /// with its status; an essential program's once it is down for good,
    /// with its status, as a SIGTERM would.
    fn check_ends_init(&mut self, index: ProgramId, now: Instant) {
        let Some(program) = self.programs.get(index) else {
            return;
        };
        if !self.phase.is_supervising() || program.pid().is_some() {
            return;
        }
        match program.role {
            Role::Main => {}
            Role::Program if program.settings.essential && program.is_down_for_good() => {
                let how = program.last_exit();
                let fatal = program.state == crate::program::State::Fatal;
                let status = decide::essential_status(how, fatal);
                logging::warn(messages::essential_down(program.name.as_str(), fatal, how));
                self.end_status = Some(status);
            }
            Role::Program => return,
        }
        self.begin_shutdown(signals::SIGTERM, now);
    }

    fn on_timers(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Supervising => {
                // Without programs (tini-style) no program timer can be due.
                if !self.programs.is_empty() {
                    self.scheduled_timers(now);
                    self.send_deferred_stops(now);
                    // Probes first: a program up now lets those after it start.
                    self.probe_due(now);
                    self.start_due(now);
                    self.kill_due(now);
                }
                if let Some(control) = self.control.as_mut() {
                    control.on_timers(now);
                }
            }
            Phase::ShuttingDown { grace_end, .. } => {
                let at_end = now >= *grace_end;
                // Stops deferred for the programs after them: released as
                // those go, and at the latest when the grace is over.
                self.send_deferred_stops(now);
                if at_end {
                    let deferred: Vec<ProgramId> = self
                        .programs
                        .ids()
                        .filter(|&i| {
                            self.programs
                                .get(i)
                                .is_some_and(|p| p.deferred_stop.is_some())
                        })
                        .collect();
                    for &i in &deferred {
                        self.release(i, now);
                    }
                    let Phase::ShuttingDown { stop, .. } = &self.phase else {
                        return;
                    };
                    if !deferred.is_empty() {
                        return;
                    }
                    self.phase = Phase::Killing {
                        stop: stop.clone(),
                        next_kill: deadline_after(now, REKILL_EVERY),
                    };
                    self.kill_all();
                    return;
                }
                let Phase::ShuttingDown { next_notice, .. } = &mut self.phase else {
                    return;
                };
                let notice = now >= *next_notice;
                if notice {
                    *next_notice = deadline_after(now, NOTICE_EVERY);
                }
                // Programs whose own stopwaitsecs is over; a stop deferred for
                // one of them goes at once.
                self.kill_due(now);
                self.send_deferred_stops(now);
                if notice {
                    self.notice();
                }
            }
            Phase::Killing { next_kill, .. } => {
                if now >= *next_kill {
                    *next_kill = deadline_after(now, REKILL_EVERY);
                    self.rekill();
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Supervising => self
                .programs
                .earliest()
                .into_iter()
                .chain(self.control.as_ref().and_then(Control::deadline))
                .min(),
            Phase::ShuttingDown {
                grace_end,
                next_notice,
                ..
            } => self
                .programs
                .iter()
                // Only a stop's SIGKILL: nothing starts or is probed now.
                .filter(|p| matches!(p.state, crate::program::State::Stopping { .. }))
                .filter_map(Program::deadline)
                .fold(*grace_end.min(next_notice), Instant::min)
                .into(),
            Phase::Killing { next_kill, .. } => Some(*next_kill),
        }
    }

    /// Blocks until a signal, pipe data, a control client, a notify
    /// datagram, a probe's connect or the timeout; afterwards `woken` says
    /// which sources are ready.
    fn wait(&mut self, timeout: Option<Duration>) {
        // Round up: a timeout cut to whole milliseconds would wake us just
        // before the deadline and spin through the last millisecond.
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(d) => {
                PollTimeout::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = recycle(std::mem::take(&mut self.poll_fds));
        let sources = &mut self.poll_sources;
        sources.clear();
        fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
        sources.push(Source::Signals);
        for (i, pipe) in self.pipes.iter().enumerate() {
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
            sources.push(Source::Pipe(i));
        }
        for (k, notify) in self.notify.iter().enumerate() {
            fds.push(PollFd::new(notify.socket.as_fd(), PollFlags::POLLIN));
            sources.push(Source::Notify(k));
        }
        for (i, probe) in self.probes.iter().enumerate() {
            fds.push(PollFd::new(probe.fd.as_fd(), PollFlags::POLLOUT));
            sources.push(Source::Probe(i));
        }
        self.outlets.blocked(|id, fd| {
            fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            sources.push(Source::Outlet(id));
        });
        if let Some(control) = self.control.as_mut() {
            control.poll_fds(&mut fds);
        }
        sources.resize(fds.len(), Source::Control);
        let result = poll(&mut fds, timeout);
        self.woken.clear();
        if result.is_ok() {
            // Positions are those the list was made from, unchanged until
            // now; from here on each item carries its own flag.
            for (fd, &source) in fds.iter().zip(&self.poll_sources) {
                let ready = fd.revents().is_some_and(|r| !r.is_empty());
                match source {
                    Source::Pipe(i) => {
                        if let Some(pipe) = self.pipes.get(i) {
                            pipe.mark_ready(ready);
                        }
                    }
                    Source::Notify(k) => {
                        if let Some(socket) = self.notify.get(k) {
                            socket.ready.set(ready);
                        }
                    }
                    Source::Probe(i) => {
                        if let Some(probe) = self.probes.get(i) {
                            probe.ready.set(ready);
                        }
                    }
                    _ => self.woken.set(source, ready),
                }
            }
        }
        // What `take` left there is an empty Vec::new(): nothing to free.
        std::mem::forget(std::mem::replace(&mut self.poll_fds, recycle(fds)));
        match result {
            Ok(_) => self.wait_failing = false,
            Err(Errno::EINTR) => {}
            Err(e) => {
                self.wait_failed("poll", e);
                // Do not spin on a persistent failure.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Outlets whose fd has room again: what they hold goes out.
    fn on_outlets(&mut self) {
        for &id in &self.woken.outlets {
            self.outlets.on_room(id);
        }
    }

    /// Logs a failure to wait or to read signals, once until waiting works
    /// again.
    fn wait_failed(&mut self, what: &str, e: Errno) {
        if !self.wait_failing {
            self.wait_failing = true;
            logging::error(messages::runtime_error(what, &std::io::Error::from(e)));
        }
    }

    /// Reaps every child that has exited: SIGCHLDs coalesce, so one signal
    /// may stand for many children.
    fn reap(&mut self, clock: &Clock) {
        loop {
            match signals::reap_one() {
                Reaped::Child(pid, how) => self.on_exit(pid, how, clock),
                Reaped::NoneEnded => {
                    self.have_children = true;
                    break;
                }
                Reaped::NoChildren => {
                    self.have_children = false;
                    break;
                }
                Reaped::Failed(e) => {
                    logging::error(messages::runtime_error("waitpid", &std::io::Error::from(e)));
                    break;
                }
            }
        }
        match self.phase {
            Phase::ShuttingDown { ref stop, .. } if !self.is_pid1 || stop.per_process => {
                self.signal_adopted();
            }
            Phase::Killing { .. } if self.have_children => self.rekill(),
            _ => {}
        }
    }

    /// Whose exit it is. An orphan's (the common case as PID 1) costs a
    /// compare and a scan: the handlers of the others are kept out of
    /// line, so that reaping one pays for none of their set-up.
    fn on_exit(&mut self, pid: Pid, how: ExitKind, clock: &Clock) {
        if let Some(index) = self.programs.by_pid(pid) {
            self.program_exited(index, pid, how, clock.now());
        } else {
            logging::debug(messages::reaped_unknown(pid, how));
        }
    }

    #[inline(never)]
    fn program_exited(&mut self, index: ProgramId, pid: Pid, how: ExitKind, now: Instant) {
        self.drop_probes(index);
        // What the program wrote before it died goes above its exit line.
        // (The main command has no pipe: its output is init's own.)
        for pipe in self.pipes.iter_mut().filter(|p| p.program == index) {
            if self.buf.len() < READ_CHUNK {
                self.buf.resize(READ_CHUNK, 0);
            }
            let history = self.programs.history_mut(index);
            pipe.drain(&mut self.buf, &mut self.outlets, history);
        }
        let stop_signal = match &self.phase {
            Phase::ShuttingDown { stop, .. } | Phase::Killing { stop, .. } => stop.signal,
            Phase::Supervising => signals::SIGTERM,
        };
        let Some(program) = self.programs.get_mut(index) else {
            return;
        };
        // A program whose shutdown stop was deferred ended by itself: what it
        // left in its group gets the stop signal now, not at SIGKILL.
        let deferred_group = program
            .pgid
            .filter(|_| program.deferred_stop == Some(crate::program::AfterStop::Shutdown));
        let own_signal = program.stop_signal(stop_signal);
        let outcome = program.exited(how, now, SystemTime::now(), &self.policy);
        if let (Some(pgid), Phase::ShuttingDown { stop, .. }) = (deferred_group, &mut self.phase) {
            let kills = stop.release(pgid, own_signal);
            self.apply(&kills);
        }
        let Some(program) = self.programs.get(index) else {
            return;
        };
        let name = program.name.as_str();
        match outcome {
            // Its end is init's: said as such, no code judged.
            Some(_) if program.role == Role::Main => logging::info(messages::exited_main(how)),
            Some(Exit::Expected { then }) => {
                logging::info(messages::exited(name, how, true));
                log_then(name, then);
            }
            Some(Exit::Unexpected { then }) => {
                logging::warn(messages::exited(name, how, false));
                log_then(name, then);
            }
            Some(Exit::Stopped) => {
                let clean = match how {
                    ExitKind::Code(code) => program.settings.exitcodes.contains(code),
                    ExitKind::Signal(sig) => sig == program.stop_signal(stop_signal),
                };
                let level = if clean { Level::Info } else { Level::Warn };
                logging::line(level, messages::stopped(name, how));
            }
            None => logging::debug(messages::reaped_unknown(pid, how)),
        }
        self.check_ends_init(index, now);
    }

    /// Passes a signal on to every running program's process group, the
    /// main command's included.
    fn forward(&mut self, sig: i32) {
        let kills: Vec<Kill> = self
            .programs
            .iter()
            .filter_map(Program::pid)
            .map(|pid| Kill {
                target: Target::Group(pid),
                signal: sig,
            })
            .collect();
        // Sent first, said after: the log line does not delay the signal.
        self.apply(&kills);
        let names = self
            .programs
            .iter()
            .filter(|p| p.pid().is_some())
            .map(|p| p.name.as_str());
        if signals::is_sent_on_purpose(sig) {
            logging::info(messages::received_forwarded(sig, names));
        } else {
            logging::debug(messages::forwarded(sig, names));
        }
    }

    /// kill(2) to `target` (a pid, -pgid, or -1). A target that is gone is
    /// no error here; any other refusal is logged once for that target.
    fn send(&mut self, target: Pid, sig: i32) {
        match signals::send(target, sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                if !self.refused.contains(&target) {
                    self.refused.push(target);
                    logging::warn(messages::cannot_signal(sig, target, &e.into()));
                }
            }
        }
    }
}

/// What follows an exit or a failed spawn, said in the log: the backoff
/// before a restart that waits, or the giving up.
fn log_then(name: &str, then: Then) {
    match then {
        Then::Restart(after) if !after.is_zero() => {
            logging::info(messages::backoff(name, after));
        }
        Then::Fatal => logging::info(messages::gave_up(name)),
        Then::Scheduled(at) => logging::info(messages::scheduled(
            name,
            &crate::schedule::local_text(at, crate::stamp::zone()),
        )),
        Then::Restart(_) | Then::Down => {}
    }
}

/// The program with its own environment, where its settings make one.
/// A `ready=notify` program's socket: the socket itself says whose a
/// datagram is, the sender's credentials that it is no other program's.
struct NotifySocket {
    program: ProgramId,
    socket: Notify,
    /// The last wait found a datagram there.
    ready: Cell<bool>,
}

/// Program `index` made ready to start: its environment, and for
/// `ready=notify` its own notify socket (named in `NOTIFY_SOCKET`). A
/// socket that cannot be opened is said once; the program then stays
/// STARTING.
fn prepare(
    mut program: Program,
    index: ProgramId,
    base: &[&CStr],
    me: Pid,
    sockets: &mut Vec<NotifySocket>,
) -> Program {
    let mut name = None;
    if program.settings.ready == Ready::Notify {
        match Notify::open(me, program.name.as_str()) {
            Ok(socket) => {
                name = Some(socket.name.clone());
                sockets.push(NotifySocket {
                    program: index,
                    socket,
                    ready: Cell::new(false),
                });
            }
            Err(e) => logging::error(messages::runtime_error(
                &format!(
                    "cannot open the notify socket of {}: it stays STARTING",
                    program.name
                ),
                &std::io::Error::from(e),
            )),
        }
    }
    program.env = environment(&program, base, true, name.as_deref());
    program
}

/// A program's environment, where its settings, its name or its notify
/// socket change init's. A main command is named only where there is a
/// control socket: tini-style, it gets init's environment untouched.
fn environment(
    program: &Program,
    base: &[&CStr],
    with_control: bool,
    notify: Option<&str>,
) -> Option<Vec<CString>> {
    let mut extra = Vec::new();
    if program.role == Role::Program || with_control {
        extra.push((PROGRAM_VAR, program.name.as_str()));
    }
    extra.extend(notify.map(|name| ("NOTIFY_SOCKET", name)));
    spawn::environment_for(base, &program.settings, &extra)
}

/// The program that runs an init script: `bash SCRIPT` (`sh` where there
/// is no bash) in the script's folder, or its `directory`. bash is looked
/// up once, and only when there is a script to run.
fn init_script(
    name: ProgramName,
    script: &Path,
    settings: Settings,
    now: Instant,
) -> Option<Program> {
    static SHELL: OnceLock<CString> = OnceLock::new();
    let c_script = CString::new(script.as_os_str().as_bytes()).ok()?;
    let shell = SHELL
        .get_or_init(|| {
            spawn::resolve("bash".as_ref(), None)
                .ok()
                .and_then(|p| CString::new(p.into_os_string().into_vec()).ok())
                .unwrap_or_else(|| c"sh".into())
        })
        .clone();
    let cwd = settings
        .directory
        .as_deref()
        .or_else(|| script.parent())
        .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok());
    let mut program = Program::new(name, vec![shell, c_script], cwd, settings, now);
    program.script = Some(script.to_path_buf());
    Some(program)
}

/// `now + d`, saturating at some 136 years: `Instant + Duration` panics
/// on overflow, and `-g 1e18` means "wait", not "kill at once".
fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}
