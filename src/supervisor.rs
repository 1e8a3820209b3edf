//! The main loop: one thread, one blocking `poll` over the signalfd and the
//! program pipes, with a timeout computed from the earliest due timer
//! (a restart, a `startsecs` check, the grace, the next "waiting" notice).
//! With nothing due it sleeps in the kernel: idle costs no wake-up.
//!
//! From here on init must not die: every error is logged and survived.
//!
//! Supervisor phases: `Supervising` → `ShuttingDown` (stop signal sent,
//! grace running) → `Killing` (SIGKILL sent, until no child is left) →
//! the loop ends and `run` returns init's exit status.

use alloc::ffi::CString;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use crate::config::{Config, MAIN_NAME, Policy, ProgramKind};
use crate::logfile::{Level, Logger, Stream};
use crate::messages;
use crate::output::LineBuffer;
use crate::path;
use crate::program::{Exit, Program};
use crate::signals::{self, Action, Received, Signals};
use crate::spawn::{self, Isolation};
use crate::status::ExitKind;
use crate::stderr;
use crate::sys::{self, Fd, Pid};
use crate::time::Instant;

mod shutdown;

/// How often "waiting for … to die" may repeat during the grace.
const NOTICE_EVERY: Duration = Duration::from_secs(3);
/// After SIGKILL, look again this often for processes that arrived without
/// a SIGCHLD telling us (a grandchild adopted on its parent's death).
const REKILL_EVERY: Duration = Duration::from_secs(1);
/// One read from a pipe takes at most this much, so that one chatty
/// program cannot starve the others.
const READ_CHUNK: usize = 64 * 1024;
/// On a program's exit its pipes are drained of at most this many reads
/// (1 MiB) before the `exited:` line; the rest follows as it is read.
const DRAIN_READS: usize = 16;

struct MainCommand {
    pid: Pid,
    exit: Option<ExitKind>,
}

/// A read end of a program's stdout or stderr. It lives until EOF, which
/// may be long after the program itself (a grandchild can hold it open).
struct Pipe {
    name: String,
    program: usize,
    stream: Stream,
    fd: Fd,
    lines: LineBuffer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Supervising,
    ShuttingDown {
        signal: i32,
        grace_end: Instant,
        next_notice: Instant,
    },
    Killing {
        next_kill: Instant,
    },
}

pub struct Supervisor {
    policy: Policy,
    log: Logger,
    signals: Signals,
    programs: Vec<Program>,
    main: Option<MainCommand>,
    main_start: Option<Result<spawn::Spawned, spawn::SpawnError>>,
    subreaper_error: Option<sys::Error>,
    pipes: Vec<Pipe>,
    phase: Phase,
    me: Pid,
    is_pid1: bool,
    /// False once `waitpid` said ECHILD, until the next spawn.
    have_children: bool,
    /// Not PID 1: process groups sent the stop signal in this shutdown.
    signalled_groups: Vec<Pid>,
    /// Not PID 1: adopted children already sent the stop signal.
    signalled: Vec<Pid>,
    killed_any: bool,
    /// The read buffer for pipes (capacity only: never zero-filled).
    buf: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    /// Signals read in one turn (capacity only between turns).
    received: Vec<Received>,
}

enum PipeRead {
    Open,
    Closed,
}

/// What is done before the log exists, so that the main command's start
/// does not wait on init's own bookkeeping (opening the log, reading the
/// time zone): the outcomes, for the supervisor to log in order.
pub struct Early {
    /// init's own pid, asked once.
    pub me: Pid,
    /// Not PID 1: the error if init could not become a child subreaper.
    subreaper: Option<sys::Error>,
    /// The main command's spawn, if there is one.
    main: Option<Result<spawn::Spawned, spawn::SpawnError>>,
}

/// Becomes a child subreaper (not PID 1) and starts the main command.
/// Signals must already be blocked, so that its exit is not missed.
pub fn start_early(config: &mut Config) -> Early {
    let me = Pid::this();
    let mut subreaper = None;
    if me.as_raw() != 1 {
        // Orphans of our programs come to us, not to the real init, so
        // that we can reap them and reach them at shutdown. Before the
        // main command starts: its orphans are ours from the first.
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            subreaper = Some(sys::Error::last());
        }
    }
    let main = config
        .main
        .take()
        .map(|argv| spawn::spawn(&argv, None, Isolation::Main));
    Early {
        me,
        subreaper,
        main,
    }
}

impl Supervisor {
    pub fn new(config: Config, log: Logger, signals: Signals, early: Early) -> Supervisor {
        let me = early.me;
        let now = Instant::now();
        // Looked up once, and only when there is an init script to run.
        let mut shell: Option<CString> = None;
        let mut log = log;
        let mut programs = Vec::with_capacity(config.programs.len());
        for spec in config.programs {
            match spec.kind {
                ProgramKind::Command(words) => {
                    // Words from the command line hold no NUL byte.
                    let argv = words
                        .iter()
                        .filter_map(|w| sys::cstring(w.as_bytes()).ok())
                        .collect();
                    programs.push(Program::new(spec.name, argv, None, now));
                }
                ProgramKind::InitScript(script) => {
                    let c_script = sys::cstring(&script).ok().filter(|c| sys::exists(c));
                    let Some(c_script) = c_script else {
                        log.info(&messages::skipped(&script));
                        continue;
                    };
                    let shell = shell
                        .get_or_insert_with(|| {
                            spawn::resolve(b"bash", None).unwrap_or_else(|_| c"sh".into())
                        })
                        .clone();
                    let cwd = path::parent(&script).and_then(|p| sys::cstring(p).ok());
                    programs.push(Program::new(spec.name, vec![shell, c_script], cwd, now));
                }
            }
        }
        Supervisor {
            policy: config.policy,
            log,
            signals,
            programs,
            main: None,
            main_start: early.main,
            subreaper_error: early.subreaper,
            pipes: Vec::new(),
            phase: Phase::Supervising,
            me,
            is_pid1: me.as_raw() == 1,
            have_children: false,
            signalled_groups: Vec::new(),
            signalled: Vec::new(),
            killed_any: false,
            // Taken at the first read: a lone main command has no pipes.
            buf: Vec::new(),
            pollfds: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Runs until shutdown is complete; returns init's exit status.
    pub fn run(mut self) -> u8 {
        if let Some(e) = self.subreaper_error.take() {
            self.log.line(
                Level::Error,
                &messages::runtime_error("cannot become a child subreaper", &e),
            );
        }
        if let Some(status) = self.start_main() {
            self.log.info(&messages::exiting(status));
            self.log.flush();
            return status;
        }
        self.start_due(Instant::now());
        loop {
            if self.phase != Phase::Supervising && !self.have_children {
                // What is pending goes out with the last lines, in one write.
                break;
            }
            // Before sleeping: nothing waits in memory while init is idle.
            self.log.flush();
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            self.wait(timeout);
            let now = Instant::now();
            let mut reap = false;
            if self.is_ready(0) {
                let mut pending = core::mem::take(&mut self.received);
                self.signals.read_pending(&mut pending);
                for received in pending.drain(..) {
                    if received.sender == self.me.as_raw() {
                        // Raised by our own write (a closed stderr gives
                        // SIGPIPE): not to be passed on to the programs.
                        continue;
                    }
                    match signals::classify(received.signal) {
                        Action::Reap => reap = true,
                        Action::Shutdown(sig) if self.phase == Phase::Supervising => {
                            self.log.warn(&messages::exit_request(sig));
                            self.begin_shutdown(sig, now);
                        }
                        Action::Shutdown(sig) | Action::Forward(sig) => self.forward(sig),
                    }
                }
                // Kept, empty, for its capacity: the loop allocates nothing.
                self.received = pending;
            }
            // Pipes are read once each per turn, in order, then removed at EOF.
            let mut closed = Vec::new();
            for i in 0..self.pipes.len() {
                if !self.is_ready(i + 1) {
                    continue;
                }
                if let Some(pipe) = self.pipes.get_mut(i) {
                    if let PipeRead::Closed = read_pipe(pipe, &mut self.buf, &mut self.log, 1) {
                        closed.push(i);
                    }
                }
            }
            for i in closed.into_iter().rev() {
                if i < self.pipes.len() {
                    self.pipes.remove(i);
                }
            }
            if reap {
                self.reap(now);
            }
            self.on_timers(Instant::now());
        }
        // Every process is gone, so every pipe is at its end: log the rest.
        for pipe in &mut self.pipes {
            read_pipe(pipe, &mut self.buf, &mut self.log, DRAIN_READS);
            finish(pipe, &mut self.log);
        }
        let status = match &self.main {
            Some(MainCommand {
                exit: Some(how), ..
            }) => how.shell_status(),
            _ => u8::from(self.killed_any),
        };
        self.log.info(&messages::exiting(status));
        self.log.flush();
        status
    }

    /// Logs the main command's start (made by [`start_early`]), if any.
    /// `Some(status)` when it could not run.
    fn start_main(&mut self) -> Option<u8> {
        match self.main_start.take()? {
            Ok(child) => {
                self.log.info(&messages::spawned(MAIN_NAME, child.pid));
                self.main = Some(MainCommand {
                    pid: child.pid,
                    exit: None,
                });
                self.have_children = true;
                None
            }
            Err(e) => {
                self.log.line(Level::Error, &messages::spawnerr(&e));
                if !self.log.copies_to_stderr() {
                    stderr::write(messages::main_cannot_run(&e).as_bytes());
                }
                Some(e.shell_status())
            }
        }
    }

    fn start_due(&mut self, now: Instant) {
        if self.phase != Phase::Supervising {
            return;
        }
        for i in 0..self.programs.len() {
            let Some(program) = self.programs.get_mut(i) else {
                continue;
            };
            if program.confirm(now, &self.policy) {
                self.log.info(&messages::success(
                    program.name.as_str(),
                    self.policy.startsecs,
                ));
            }
            if !program.is_due(now) {
                continue;
            }
            match spawn::spawn(&program.argv, program.cwd.as_deref(), Isolation::Program) {
                Ok(child) => {
                    program.started(child.pid, now);
                    self.have_children = true;
                    self.log
                        .info(&messages::spawned(program.name.as_str(), child.pid));
                    let name = program.name.as_str().to_string();
                    for (fd, stream) in [
                        (child.stdout, Stream::Stdout),
                        (child.stderr, Stream::Stderr),
                    ] {
                        if let Some(fd) = fd {
                            self.pipes.push(Pipe {
                                name: name.clone(),
                                program: i,
                                stream,
                                fd,
                                lines: LineBuffer::default(),
                            });
                        }
                    }
                    // startsecs 0: confirmed at once.
                    if program.confirm(now, &self.policy) {
                        self.log.info(&messages::success(
                            program.name.as_str(),
                            self.policy.startsecs,
                        ));
                    }
                }
                Err(e) => {
                    self.log.warn(&messages::spawnerr(&e));
                    let after = program.spawn_failed(now, &self.policy);
                    self.log
                        .info(&messages::backoff(program.name.as_str(), after));
                }
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        match self.phase.clone() {
            Phase::Supervising => self.start_due(now),
            Phase::ShuttingDown {
                signal,
                grace_end,
                next_notice,
            } => {
                if now >= grace_end {
                    self.kill_all(now);
                } else if now >= next_notice {
                    self.notice();
                    self.phase = Phase::ShuttingDown {
                        signal,
                        grace_end,
                        next_notice: later(now, NOTICE_EVERY),
                    };
                }
            }
            Phase::Killing { next_kill } => {
                if now >= next_kill {
                    self.rekill();
                    self.phase = Phase::Killing {
                        next_kill: later(now, REKILL_EVERY),
                    };
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Supervising => self
                .programs
                .iter()
                .filter_map(|p| p.deadline(&self.policy))
                .min(),
            Phase::ShuttingDown {
                grace_end,
                next_notice,
                ..
            } => Some(*grace_end.min(next_notice)),
            Phase::Killing { next_kill } => Some(*next_kill),
        }
    }

    /// Blocks until a signal, pipe data or the timeout; afterwards
    /// `pollfds` says which of [signalfd, pipes…] are ready. The array is
    /// kept between turns: a busy loop allocates nothing here.
    fn wait(&mut self, timeout: Option<Duration>) {
        self.pollfds.clear();
        self.pollfds.push(libc::pollfd {
            fd: self.signals.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for pipe in &self.pipes {
            self.pollfds.push(libc::pollfd {
                fd: pipe.fd.raw(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Round up: a timeout cut to whole milliseconds would wake us just
        // before the deadline and spin through the last millisecond.
        let ms = match timeout {
            None => -1,
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        let n = self.pollfds.len() as libc::nfds_t;
        // SAFETY: pollfds is a valid array of n pollfd structs.
        let rc = unsafe { libc::poll(self.pollfds.as_mut_ptr(), n, ms) };
        if rc < 0 {
            for fd in &mut self.pollfds {
                fd.revents = 0;
            }
            let e = sys::Error::last();
            if e != sys::Error::Os(libc::EINTR) {
                self.log
                    .line(Level::Error, &messages::runtime_error("poll", &e));
                // Do not spin on a persistent failure: sleep 100 ms.
                // SAFETY: poll on no fds is a plain sleep.
                unsafe { libc::poll(core::ptr::null_mut(), 0, 100) };
            }
        }
    }

    fn is_ready(&self, index: usize) -> bool {
        self.pollfds.get(index).is_some_and(|f| f.revents != 0)
    }

    /// Reaps every child that has exited: SIGCHLDs coalesce, so one signal
    /// may stand for many children.
    fn reap(&mut self, now: Instant) {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: a valid pointer to a local int.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                if let Some(how) = ExitKind::from_wait_status(status) {
                    self.on_exit(Pid::from_raw(pid), how, now);
                }
                continue;
            }
            if pid == 0 {
                self.have_children = true;
                break;
            }
            let e = sys::Error::last();
            match e.errno() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => self.have_children = false,
                _ => self
                    .log
                    .line(Level::Error, &messages::runtime_error("waitpid", &e)),
            }
            break;
        }
        match self.phase {
            Phase::ShuttingDown { signal, .. } if !self.is_pid1 => self.signal_adopted(signal),
            Phase::Killing { .. } if self.have_children => self.rekill(),
            _ => {}
        }
    }

    fn on_exit(&mut self, pid: Pid, how: ExitKind, now: Instant) {
        if let Some(main) = self
            .main
            .as_mut()
            .filter(|m| m.pid == pid && m.exit.is_none())
        {
            main.exit = Some(how);
            self.log.info(&messages::exited_main(how));
            if self.phase == Phase::Supervising {
                self.begin_shutdown(libc::SIGTERM, now);
            }
            return;
        }
        let Some(index) = self.programs.iter().position(|p| p.pid() == Some(pid)) else {
            self.log.debug(&messages::reaped_unknown(pid, how));
            return;
        };
        // What the program wrote before it died goes above its exit line.
        for pipe in self.pipes.iter_mut().filter(|p| p.program == index) {
            read_pipe(pipe, &mut self.buf, &mut self.log, DRAIN_READS);
            finish(pipe, &mut self.log);
        }
        let stop_signal = match self.phase {
            Phase::ShuttingDown { signal, .. } => signal,
            _ => libc::SIGTERM,
        };
        let Some(program) = self.programs.get_mut(index) else {
            return;
        };
        let name = program.name.as_str().to_string();
        let name = name.as_str();
        match program.exited(how, now, &self.policy) {
            Some(Exit::Expected) => self.log.info(&messages::exited(name, how, true)),
            Some(Exit::Unexpected { after }) => {
                self.log.warn(&messages::exited(name, how, false));
                if !after.is_zero() {
                    self.log.info(&messages::backoff(name, after));
                }
            }
            Some(Exit::Stopped) => {
                let clean = match how {
                    ExitKind::Code(code) => self.policy.exitcodes.contains(code),
                    ExitKind::Signal(sig) => sig == stop_signal,
                };
                let level = if clean { Level::Info } else { Level::Warn };
                self.log.line(level, &messages::stopped(name, how));
            }
            None => self.log.debug(&messages::reaped_unknown(pid, how)),
        }
    }

    /// Passes a signal on to every running program's process group and to
    /// the main command's.
    fn forward(&mut self, sig: i32) {
        let mut targets: Vec<&str> = Vec::new();
        for program in &self.programs {
            if let Some(pid) = program.pid() {
                kill_group(pid, sig);
                targets.push(program.name.as_str());
            }
        }
        if let Some(main) = self.main.as_ref().filter(|m| m.exit.is_none()) {
            kill_group(main.pid, sig);
            targets.push(MAIN_NAME);
        }
        if self.log.verbose() {
            let message = messages::forwarded(sig, &targets);
            self.log.debug(&message);
        }
    }
}

/// `now + d`, saturating at some 136 years: `Instant + Duration` panics
/// on overflow, and `-g 1e18` means "wait", not "kill at once".
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// kill(2) with its own kind of target: a pid, -pgid, or -1 for every
/// process init may signal. A target that is gone is no error here.
fn kill(target: i32, sig: i32) {
    // SAFETY: kill with plain integers.
    unsafe { libc::kill(target, sig) };
}

/// Signals a whole process group.
fn kill_group(pgid: Pid, sig: i32) {
    kill(-pgid.as_raw(), sig);
}

/// Reads up to `reads` chunks from a pipe, logging complete lines.
fn read_pipe(pipe: &mut Pipe, buf: &mut Vec<u8>, log: &mut Logger, reads: usize) -> PipeRead {
    if buf.capacity() < READ_CHUNK {
        buf.reserve_exact(READ_CHUNK);
    }
    for _ in 0..reads {
        match sys::read_into_spare(pipe.fd.raw(), buf) {
            Ok(0) => {
                finish(pipe, log);
                return PipeRead::Closed;
            }
            Ok(_) => {
                log.tick();
                let (name, stream) = (&pipe.name, pipe.stream);
                pipe.lines
                    .feed(buf, &mut |line| log.output(name, stream, line));
            }
            Err(sys::Error::Os(libc::EAGAIN)) => return PipeRead::Open,
            Err(_) => {
                finish(pipe, log);
                return PipeRead::Closed;
            }
        }
    }
    PipeRead::Open
}

fn finish(pipe: &mut Pipe, log: &mut Logger) {
    let (name, stream) = (&pipe.name, pipe.stream);
    pipe.lines
        .finish(&mut |line| log.output(name, stream, line));
}
