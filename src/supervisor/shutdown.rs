//! The shutdown sequence: the stop signal to every program's group, the
//! main command's group and every other process init reaches (as PID 1:
//! everything; otherwise its groups and the orphans it adopted, as they
//! arrive), "waiting for … to die" notices, and after the grace SIGKILL
//! again and again until no child is left.

use std::time::Instant;

use nix::unistd::Pid;

use super::{MAIN_NAME, NOTICE_EVERY, Phase, REKILL_EVERY, Supervisor, group, later};
use crate::logging;
use crate::messages;
use crate::procs;
use crate::program::{Program, State};
use crate::signals::{SIGCONT, SIGKILL};

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
                self.send_stop(Pid::from_raw(-1), sig);
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
        self.send_stop(group(pgid), sig);
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
            let Ok(pgid) = nix::unistd::getpgid(Some(pid)) else {
                // Gone meanwhile.
                continue;
            };
            if self.signalled_groups.contains(&pgid) {
                continue;
            }
            if self.programs.iter().any(|p| p.pgid == Some(pgid)) {
                self.signal_group(pgid, sig);
            } else {
                self.send_stop(pid, sig);
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
                logging::error(&messages::runtime_error("cannot read /proc", &e));
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
            logging::info(&messages::waiting(&names));
        }
    }

    /// The grace is over: SIGKILL to whatever is left.
    pub(super) fn kill_all(&mut self, now: Instant) {
        let mut groups = Vec::new();
        for program in &self.programs {
            if let State::Stopping { pid } = program.state {
                logging::warn(&messages::killing(program.name.as_str(), pid));
                groups.push(pid);
            }
        }
        if let Some(main) = self.main.as_ref().filter(|m| m.exit.is_none()) {
            logging::warn(&messages::killing(MAIN_NAME, main.pid));
            groups.push(main.pid);
        }
        self.killed_any |= !groups.is_empty();
        for pgid in groups {
            self.send(group(pgid), SIGKILL);
        }
        let leftovers = self.unknown_children();
        if !leftovers.is_empty() {
            logging::warn(&messages::killing_leftovers(leftovers.len()));
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
            self.send(Pid::from_raw(-1), SIGKILL);
            return;
        }
        for pgid in self.signalled_groups.clone() {
            self.send(group(pgid), SIGKILL);
        }
        // Without /proc there is no list: `unknown_children` has said so
        // when the grace ended, and the groups above were reached.
        for pid in procs::children().unwrap_or_default() {
            self.send(pid, SIGKILL);
        }
    }

    /// Sends the stop signal to `target` (a kill(2) target: pid, -pgid or
    /// -1), then SIGCONT: a stopped process would leave the stop signal
    /// pending and sit out the grace until SIGKILL.
    fn send_stop(&mut self, target: Pid, sig: i32) {
        self.send(target, sig);
        self.send(target, SIGCONT);
    }
}
