//! The shutdown sequence: the stop signal to every program's group, the
//! main command's group and every other process init reaches (as PID 1:
//! everything; otherwise its groups and the orphans it adopted, as they
//! arrive), "waiting for … to die" notices, and after the grace SIGKILL
//! again and again until no child is left.

use alloc::vec::Vec;

use super::{MAIN_NAME, NOTICE_EVERY, Phase, REKILL_EVERY, Supervisor, kill, kill_group, later};
use crate::logfile::Level;
use crate::messages;
use crate::procs;
use crate::program::{Program, State};
use crate::sys::Pid;
use crate::time::Instant;

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, sig: i32, now: Instant) {
        let grace_end = later(now, self.policy.grace.duration());
        self.phase = Phase::ShuttingDown {
            signal: sig,
            grace_end,
            next_notice: later(now, NOTICE_EVERY),
        };
        let stopping: Vec<Pid> = self.programs.iter_mut().filter_map(Program::stop).collect();
        if self.is_pid1 {
            // Everything in the container, orphans included, once each —
            // unless init has no child left, when it exits at once and the
            // kernel kills what remains (a `docker exec` shell, whose
            // parent is outside). kill(-1) walks every process on the
            // host, so a lone `init -- CMD` skips it.
            if procs::has_children() {
                send_stop(-1, sig);
            }
        } else {
            // The main command's group even when it has just exited: what
            // it left behind is there.
            let groups = stopping
                .into_iter()
                .chain(self.main.as_ref().map(|m| m.pid));
            for pgid in groups {
                self.signal_group(pgid, sig);
            }
        }
        // Reaping in this phase also sends the stop signal to the orphans
        // already adopted (`signal_adopted`), once the dead are gone.
        self.reap(now);
        self.notice();
    }

    fn signal_group(&mut self, pgid: Pid, sig: i32) {
        send_stop(-pgid.as_raw(), sig);
        if !self.signalled_groups.contains(&pgid) {
            self.signalled_groups.push(pgid);
        }
    }

    /// Not PID 1: sends the stop signal to the children that no signalled
    /// group reached — orphans adopted before or during the shutdown. An
    /// orphan still in the group of a program that exited earlier (a server
    /// an init script started with `&`) takes its whole group with it: the
    /// group cannot be anyone else's while our child is in it.
    pub(super) fn signal_adopted(&mut self, sig: i32) {
        for pid in self.unknown_children() {
            if self.signalled.contains(&pid) {
                continue;
            }
            self.signalled.push(pid);
            // SAFETY: getpgid with a plain pid.
            let pgid = unsafe { libc::getpgid(pid.as_raw()) };
            if pgid < 0 {
                continue;
            }
            let pgid = Pid::from_raw(pgid);
            if self.signalled_groups.contains(&pgid) {
                continue;
            }
            if self.programs.iter().any(|p| p.pgid == Some(pgid)) {
                self.signal_group(pgid, sig);
            } else {
                send_stop(pid.as_raw(), sig);
            }
        }
    }

    /// Children that are neither a program nor the main command.
    fn unknown_children(&mut self) -> Vec<Pid> {
        // As PID 1 a process entered from outside (`docker exec`) is no
        // child but still ours to stop, so only then is /proc always read.
        if !self.is_pid1 && !procs::has_children() {
            return Vec::new();
        }
        let found = if self.is_pid1 {
            procs::others(self.me)
        } else {
            procs::children()
        };
        match found {
            Ok(pids) => pids
                .into_iter()
                .filter(|pid| !self.is_known(*pid))
                .collect(),
            Err(e) => {
                self.log.line(
                    Level::Error,
                    &messages::runtime_error("cannot read /proc", &e),
                );
                Vec::new()
            }
        }
    }

    fn is_known(&self, pid: Pid) -> bool {
        self.programs.iter().any(|p| p.pid() == Some(pid))
            || self
                .main
                .as_ref()
                .is_some_and(|m| m.pid == pid && m.exit.is_none())
    }

    /// "waiting for NAME1, NAME2 to die", if any program is still running.
    pub(super) fn notice(&mut self) {
        let mut names: Vec<&str> = self
            .programs
            .iter()
            .filter(|p| matches!(p.state, State::Stopping { .. }))
            .map(|p| p.name.as_str())
            .collect();
        if self.main.as_ref().is_some_and(|m| m.exit.is_none()) {
            names.push(MAIN_NAME);
        }
        if !names.is_empty() {
            let message = messages::waiting(&names);
            self.log.info(&message);
        }
    }

    /// The grace is over: SIGKILL to whatever is left.
    pub(super) fn kill_all(&mut self, now: Instant) {
        for program in &self.programs {
            if let State::Stopping { pid } = program.state {
                self.log
                    .warn(&messages::killing(program.name.as_str(), pid));
                kill_group(pid, libc::SIGKILL);
                self.killed_any = true;
            }
        }
        if let Some(main) = self.main.as_ref().filter(|m| m.exit.is_none()) {
            self.log.warn(&messages::killing(MAIN_NAME, main.pid));
            kill_group(main.pid, libc::SIGKILL);
            self.killed_any = true;
        }
        let leftovers = self.unknown_children();
        if !leftovers.is_empty() {
            self.log.warn(&messages::killing_leftovers(leftovers.len()));
            self.killed_any = true;
        }
        self.phase = Phase::Killing {
            next_kill: later(now, REKILL_EVERY),
        };
        self.rekill();
    }

    /// SIGKILL to every process still there; again after every reap, since
    /// a killed process's children arrive as new orphans.
    pub(super) fn rekill(&mut self) {
        if self.is_pid1 {
            kill(-1, libc::SIGKILL);
            return;
        }
        for pgid in self.signalled_groups.clone() {
            kill_group(pgid, libc::SIGKILL);
        }
        let children = procs::children().unwrap_or_default();
        for pid in children {
            kill(pid.as_raw(), libc::SIGKILL);
        }
    }
}

/// Sends the stop signal to `target` (a `kill` argument: pid, -pgid or
/// -1), then SIGCONT: a stopped process would leave the stop signal
/// pending and sit out the grace until SIGKILL.
fn send_stop(target: i32, sig: i32) {
    kill(target, sig);
    kill(target, libc::SIGCONT);
}
