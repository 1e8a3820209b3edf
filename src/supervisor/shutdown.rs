//! The shutdown sequence: the stop signal to every program's group, the
//! main command's group and every other process init reaches (as PID 1:
//! everything; otherwise its groups and the orphans it adopted, as they
//! arrive), "waiting for … to die" notices, and after the grace SIGKILL
//! again and again until no child is left.
//!
//! Who gets which signal is decided by [`Stop`], from plain data (pids,
//! groups, what was already sent), and returned as a list of [`Kill`]s;
//! the supervisor reads `/proc`, logs, and sends the list in one place,
//! [`Supervisor::apply`].

use std::time::{Instant, SystemTime};

use nix::unistd::Pid;

use super::{NOTICE_EVERY, Phase, Supervisor, deadline_after};
use crate::logging;
use crate::messages;
use crate::procs;
use crate::program::{AfterStop, State};
use crate::signals::{SIGCONT, SIGKILL, SIGTERM};
use crate::table::ProgramId;
use crate::values::Role;

/// Whom a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Process(Pid),
    Group(Pid),
    /// Every process init may signal (as PID 1: the whole container).
    Everyone,
}

impl Target {
    /// The argument kill(2) takes for it.
    pub fn kill_arg(self) -> Pid {
        match self {
            Target::Process(pid) => pid,
            Target::Group(pgid) => Pid::from_raw(-pgid.as_raw()),
            Target::Everyone => Pid::from_raw(-1),
        }
    }
}

/// One signal to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    pub target: Target,
    pub signal: i32,
}

impl Kill {
    /// A stop signal, then SIGCONT: a stopped process would leave the
    /// stop signal pending and sit out the grace until SIGKILL.
    pub fn stop(target: Target, signal: i32) -> [Kill; 2] {
        [
            Kill { target, signal },
            Kill {
                target,
                signal: SIGCONT,
            },
        ]
    }
}

/// What a shutdown has sent, and so what it sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The stop signal: the one init received, or SIGTERM. A program with
    /// its own `stopsignal` gets that instead.
    pub signal: i32,
    /// PID 1: signals go to every process, not to groups one by one.
    everyone: bool,
    /// PID 1 with a program whose stop signal is its own: the stop signal
    /// goes process by process (and to adopted ones as they come), SIGKILL
    /// still to everyone.
    pub per_process: bool,
    /// The groups sent a stop signal (as PID 1: those with a signal of
    /// their own).
    groups: Vec<Pid>,
    /// Not PID 1: adopted processes already looked at.
    seen: Vec<Pid>,
    /// Groups of programs whose stop waits for the programs after them
    /// (reverse start order): nothing is sent to them until released.
    deferred: Vec<Pid>,
}

impl Stop {
    /// Each of `groups` (the running programs' and the main command's,
    /// even one that has just exited: what it left behind is there) its
    /// stop signal, or as PID 1 everyone the shutdown's — unless init has
    /// no child left, when it exits at once and the kernel kills what
    /// remains (a `docker exec` shell, whose parent is outside): kill(-1)
    /// walks every process on the host, so a lone `init -- CMD` skips it.
    ///
    /// As PID 1 with a group whose signal is its own, everyone cannot get
    /// one signal: that group gets its own, and every other process of
    /// `others` (pid, process group), read from /proc, the shutdown's.
    ///
    /// `deferred`: groups that get nothing yet (see [`Stop::release`]); as
    /// PID 1 they too rule out one signal to everyone.
    pub fn begin(
        signal: i32,
        everyone: bool,
        groups: &[(Pid, i32)],
        deferred: &[Pid],
        any_child: bool,
        others: Option<&[(Pid, Option<Pid>)]>,
    ) -> (Stop, Vec<Kill>) {
        let mut stop = Stop {
            signal,
            everyone,
            per_process: false,
            groups: Vec::new(),
            seen: Vec::new(),
            deferred: deferred.to_vec(),
        };
        let mut kills = Vec::new();
        let own_signals = groups.iter().any(|&(_, s)| s != signal) || !deferred.is_empty();
        match (everyone, others) {
            (false, _) => {
                for &(pgid, sig) in groups {
                    stop.stop_group(pgid, sig, &mut kills);
                }
            }
            (true, _) if !any_child => {}
            (true, Some(others)) if own_signals => {
                stop.per_process = true;
                for &(pgid, sig) in groups {
                    stop.stop_group(pgid, sig, &mut kills);
                }
                for &(pid, pgid) in others {
                    stop.seen.push(pid);
                    if !pgid.is_some_and(|g| stop.groups.contains(&g) || stop.deferred.contains(&g))
                    {
                        stop.stop_signal(Target::Process(pid), signal, &mut kills);
                    }
                }
            }
            (true, _) => stop.stop_signal(Target::Everyone, signal, &mut kills),
        }
        (stop, kills)
    }

    /// Not PID 1: the stop signal to children no signalled group reached —
    /// orphans adopted before or during the shutdown, each with its process
    /// group if it still has one. An orphan still in the group of a program
    /// that exited earlier (a server an init script started with `&`) takes
    /// its whole group with it: the group cannot be anyone else's while our
    /// child is in it.
    pub fn adopted(
        &mut self,
        children: &[(Pid, Option<Pid>)],
        program_groups: &[(Pid, i32)],
    ) -> Vec<Kill> {
        let mut kills = Vec::new();
        for &(pid, pgid) in children {
            if (self.everyone && !self.per_process) || self.seen.contains(&pid) {
                continue;
            }
            self.seen.push(pid);
            match pgid {
                // Gone meanwhile.
                None => {}
                Some(pgid) if self.groups.contains(&pgid) || self.deferred.contains(&pgid) => {}
                Some(pgid) => match program_groups.iter().find(|&&(g, _)| g == pgid) {
                    Some(&(pgid, sig)) => self.stop_group(pgid, sig, &mut kills),
                    None => self.stop_signal(Target::Process(pid), self.signal, &mut kills),
                },
            }
        }
        kills
    }

    /// SIGKILL to everything still there: as PID 1 to everyone, otherwise
    /// to every signalled group and every living child. Sent again after
    /// each reap, since a killed process's children arrive as new orphans.
    pub fn kill(&self, children: &[Pid]) -> Vec<Kill> {
        let kill = |target| Kill {
            target,
            signal: SIGKILL,
        };
        if self.everyone {
            return vec![kill(Target::Everyone)];
        }
        let groups = self.groups.iter().map(|&g| kill(Target::Group(g)));
        groups
            .chain(children.iter().map(|&p| kill(Target::Process(p))))
            .collect()
    }

    /// A deferred group whose programs after it are gone: its stop signal now.
    pub fn release(&mut self, pgid: Pid, signal: i32) -> Vec<Kill> {
        self.deferred.retain(|&g| g != pgid);
        let mut kills = Vec::new();
        self.stop_group(pgid, signal, &mut kills);
        kills
    }

    fn stop_group(&mut self, pgid: Pid, signal: i32, kills: &mut Vec<Kill>) {
        if !self.groups.contains(&pgid) {
            self.groups.push(pgid);
            self.stop_signal(Target::Group(pgid), signal, kills);
        }
    }

    fn stop_signal(&self, target: Target, signal: i32, kills: &mut Vec<Kill>) {
        kills.extend(Kill::stop(target, signal));
    }
}

/// Each pid with its process group, if it is still there.
fn with_groups(pids: Vec<Pid>) -> Vec<(Pid, Option<Pid>)> {
    pids.into_iter()
        .map(|pid| (pid, nix::unistd::getpgid(Some(pid)).ok()))
        .collect()
}

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, sig: i32, now: Instant) {
        // No requests from here on: the socket goes, and whoever waits on
        // a stop or a start is told.
        self.end_control(now);
        let grace = self.policy.grace.duration();
        let mut longest = grace;
        let mut groups: Vec<(Pid, i32)> = Vec::new();
        // Reverse start order: a program that others start after stops
        // once they are gone.
        let waits: Vec<bool> = self
            .programs
            .ids()
            .map(|i| self.has_live_dependents(i, true))
            .collect();
        let mut deferred = Vec::new();
        for (program, wait_for_others) in self.programs.iter_mut().zip(waits) {
            if wait_for_others {
                if let Some(pgid) = program.defer_stop(AfterStop::Shutdown) {
                    deferred.push(pgid);
                    continue;
                }
            }
            let wait = program.settings.stopwaitsecs.duration();
            if let Some(pgid) = program.stop(deadline_after(now, wait)) {
                groups.push((pgid, program.stop_signal(sig)));
                longest = longest.max(wait);
            } else if program.role == Role::Main {
                // It has just ended, which is why init ends: what it left
                // in its group is there.
                groups.extend(program.pgid.map(|g| (g, program.stop_signal(sig))));
            }
        }
        let any_child = self.is_pid1 && procs::has_children();
        // Without /proc, everyone gets the shutdown's signal after all.
        let others = if self.is_pid1
            && any_child
            && (!deferred.is_empty() || groups.iter().any(|&(_, s)| s != sig))
        {
            procs::others(self.me)
                .map_err(|e| logging::error(messages::runtime_error("cannot read /proc", &e)))
                .ok()
                .map(with_groups)
        } else {
            None
        };
        let (stop, kills) = Stop::begin(
            sig,
            self.is_pid1,
            &groups,
            &deferred,
            any_child,
            others.as_deref(),
        );
        self.apply(&kills);
        self.phase = Phase::ShuttingDown {
            stop,
            grace_end: deadline_after(now, longest),
            next_notice: deadline_after(now, NOTICE_EVERY),
        };
        // Reaping in this phase also sends the stop signal to the orphans
        // already adopted (`signal_adopted`), once the dead are gone.
        self.reap(&super::Clock::at(now));
        self.notice();
    }

    /// Whether a program that starts after program `i` still runs (its
    /// stop waits for them): not gone, and not yet sent SIGKILL. The main
    /// command counts when it starts after `i` and `with_main` (a
    /// shutdown): `stop all` and `restart all` leave it running.
    pub(super) fn has_live_dependents(&self, i: ProgramId, with_main: bool) -> bool {
        let Some(name) = self.programs.get(i).map(|p| p.name.as_str()) else {
            return false;
        };
        super::decide::stop_waits(
            name,
            self.programs
                .iter()
                .map(|p| (p.settings.after.as_slice(), p.role, p.is_live_for_order())),
            with_main,
        )
    }

    /// Deferred stops whose programs after them are gone: sent now, each with
    /// its own grace, which may lengthen the shutdown's.
    pub(super) fn send_deferred_stops(&mut self, now: Instant) {
        for i in self.programs.ids() {
            let deferred = self.programs.get(i).and_then(|p| p.deferred_stop);
            if deferred.is_none() || self.has_live_dependents(i, !self.phase.is_supervising()) {
                continue;
            }
            self.release(i, now);
        }
    }

    /// Sends program `i` the stop it was holding.
    pub(super) fn release(&mut self, i: ProgramId, now: Instant) {
        let Some(program) = self.programs.get_mut(i) else {
            return;
        };
        let wait = program.settings.stopwaitsecs.duration();
        let kill_at = deadline_after(now, wait);
        let Some(pgid) = program.send_deferred_stop(now, kill_at, SystemTime::now()) else {
            return;
        };
        match &mut self.phase {
            Phase::ShuttingDown {
                stop, grace_end, ..
            } => {
                let sig = program.stop_signal(stop.signal);
                *grace_end = (*grace_end).max(kill_at);
                let kills = stop.release(pgid, sig);
                self.apply(&kills);
            }
            _ => {
                let sig = program.stop_signal(SIGTERM);
                self.apply(&Kill::stop(Target::Group(pgid), sig));
            }
        }
    }

    /// Not PID 1: the stop signal to adopted children, see [`Stop::adopted`].
    /// Out of line: the reap that calls it at a shutdown is the one every
    /// orphan's exit takes too.
    #[inline(never)]
    pub(super) fn signal_adopted(&mut self) {
        let children = with_groups(self.unknown_children());
        let sig = match &self.phase {
            Phase::ShuttingDown { stop, .. } => stop.signal,
            _ => return,
        };
        let program_groups: Vec<(Pid, i32)> = self
            .programs
            .iter()
            .filter_map(|p| p.pgid.map(|g| (g, p.stop_signal(sig))))
            .collect();
        let Phase::ShuttingDown { stop, .. } = &mut self.phase else {
            return;
        };
        let kills = stop.adopted(&children, &program_groups);
        self.apply(&kills);
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
                logging::error(messages::runtime_error("cannot read /proc", &e));
                Vec::new()
            }
        }
    }

    fn is_known(&self, pid: Pid) -> bool {
        self.programs.iter().any(|p| p.pid() == Some(pid))
    }

    /// "waiting for NAME1, NAME2 to die", if any program is still running.
    pub(super) fn notice(&mut self) {
        let names: Vec<&str> = self
            .programs
            .iter()
            .filter(|p| matches!(p.state, State::Stopping { .. }))
            .map(|p| p.name.as_str())
            .collect();
        if !names.is_empty() {
            logging::info(messages::waiting(&names));
        }
    }

    /// Stops whose time is up (by request, or a shutdown's program whose
    /// own stopwaitsecs is over): SIGKILL to their groups.
    pub(super) fn kill_due(&mut self, now: Instant) {
        let mut kills = Vec::new();
        let shutting_down = !self.phase.is_supervising();
        for program in &mut self.programs {
            if let Some(pid) = program.kill_due(now) {
                logging::warn(messages::killing(program.name.as_str(), pid));
                self.killed_any |= shutting_down;
                kills.push(Kill {
                    target: Target::Group(pid),
                    signal: SIGKILL,
                });
            }
        }
        if !kills.is_empty() {
            self.apply(&kills);
        }
    }

    /// The grace is over: SIGKILL to whatever is left, said in the log
    /// (each program once: one whose own stopwaitsecs ended has been).
    pub(super) fn kill_all(&mut self) {
        for program in &self.programs {
            if let State::Stopping {
                pid,
                kill_at: Some(_),
                ..
            } = program.state
            {
                logging::warn(messages::killing(program.name.as_str(), pid));
                self.killed_any = true;
            }
        }
        let leftovers = self.unknown_children();
        if !leftovers.is_empty() {
            logging::warn(messages::killing_leftovers(leftovers.len()));
            self.killed_any = true;
        }
        self.rekill();
    }

    /// SIGKILL to every process still there, see [`Stop::kill`]. Out of
    /// line, as [`Supervisor::signal_adopted`].
    #[inline(never)]
    pub(super) fn rekill(&mut self) {
        let stop = match &self.phase {
            Phase::ShuttingDown { stop, .. } | Phase::Killing { stop, .. } => stop,
            Phase::Supervising => return,
        };
        // Without /proc there is no list: `unknown_children` has said so
        // when the grace ended, and the groups were reached.
        let children = if self.is_pid1 {
            Vec::new()
        } else {
            procs::children().unwrap_or_default()
        };
        let kills = stop.kill(&children);
        self.apply(&kills);
    }

    /// Sends each signal, in order.
    pub(super) fn apply(&mut self, kills: &[Kill]) {
        for kill in kills {
            self.send(kill.target.kill_arg(), kill.signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::SIGTERM;

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    // Written out, not Kill::stop: the tests say what must be sent.
    fn stop_then_cont(target: Target, signal: i32) -> [Kill; 2] {
        [
            Kill { target, signal },
            Kill {
                target,
                signal: SIGCONT,
            },
        ]
    }

    #[test]
    fn as_pid1_everyone_gets_the_stop_signal_once_if_there_is_anyone() {
        let (stop, kills) = Stop::begin(2, true, &[(pid(7), 2)], &[], true, None);
        assert_eq!(kills, stop_then_cont(Target::Everyone, 2));
        let (_, kills) = Stop::begin(2, true, &[(pid(7), 2)], &[], false, None);
        assert!(kills.is_empty());
        // Adopted processes are already covered; SIGKILL goes to everyone.
        let mut stop = stop;
        assert!(stop.adopted(&[(pid(9), Some(pid(9)))], &[]).is_empty());
        assert_eq!(
            stop.kill(&[pid(9)]),
            [Kill {
                target: Target::Everyone,
                signal: SIGKILL
            }]
        );
    }

    #[test]
    fn not_pid1_each_group_gets_the_stop_signal_once() {
        let (stop, kills) = Stop::begin(
            SIGTERM,
            false,
            &[(pid(7), SIGTERM), (pid(8), SIGTERM), (pid(7), SIGTERM)],
            &[],
            true,
            None,
        );
        let mut want = stop_then_cont(Target::Group(pid(7)), SIGTERM).to_vec();
        want.extend(stop_then_cont(Target::Group(pid(8)), SIGTERM));
        assert_eq!(kills, want);
        assert_eq!(stop.signal, SIGTERM);
    }

    #[test]
    fn adopted_orphans_get_the_stop_signal_once_by_group_or_alone() {
        let (mut stop, _) = Stop::begin(SIGTERM, false, &[(pid(7), SIGTERM)], &[], true, None);
        let children = [
            // In a signalled group: already reached.
            (pid(20), Some(pid(7))),
            // In the group of a program that exited before: the group.
            (pid(21), Some(pid(5))),
            // A second member of that group: reached with it.
            (pid(22), Some(pid(5))),
            // In a group of its own making: the process alone.
            (pid(23), Some(pid(23))),
            // Gone before its group could be read.
            (pid(24), None),
        ];
        let kills = stop.adopted(&children, &[(pid(5), SIGTERM), (pid(7), SIGTERM)]);
        let mut want = stop_then_cont(Target::Group(pid(5)), SIGTERM).to_vec();
        want.extend(stop_then_cont(Target::Process(pid(23)), SIGTERM));
        assert_eq!(kills, want);
        // Seen once: the next reap sends nothing again.
        assert!(
            stop.adopted(&children, &[(pid(5), SIGTERM), (pid(7), SIGTERM)])
                .is_empty()
        );
        // SIGKILL: every signalled group, then every living child.
        let kill = |target| Kill {
            target,
            signal: SIGKILL,
        };
        assert_eq!(
            stop.kill(&[pid(23), pid(30)]),
            [
                kill(Target::Group(pid(7))),
                kill(Target::Group(pid(5))),
                kill(Target::Process(pid(23))),
                kill(Target::Process(pid(30))),
            ]
        );
    }

    #[test]
    fn targets_are_kill_arguments() {
        assert_eq!(Target::Process(pid(5)).kill_arg(), pid(5));
        assert_eq!(Target::Group(pid(5)).kill_arg(), pid(-5));
        assert_eq!(Target::Everyone.kill_arg(), pid(-1));
    }

    #[test]
    fn a_program_with_its_own_stop_signal_gets_it() {
        let quit = 3;
        // Not PID 1: each group its own.
        let (_, kills) = Stop::begin(
            SIGTERM,
            false,
            &[(pid(7), quit), (pid(8), SIGTERM)],
            &[],
            true,
            None,
        );
        let mut want = stop_then_cont(Target::Group(pid(7)), quit).to_vec();
        want.extend(stop_then_cont(Target::Group(pid(8)), SIGTERM));
        assert_eq!(kills, want);
        // PID 1: no kill(-1), which would send it TERM as well; every group
        // its signal and every other process the shutdown's.
        let others = [
            (pid(7), Some(pid(7))),
            (pid(70), Some(pid(7))),
            (pid(8), Some(pid(8))),
            (pid(30), Some(pid(30))),
            (pid(31), None),
        ];
        let (_, kills) = Stop::begin(
            SIGTERM,
            true,
            &[(pid(7), quit), (pid(8), SIGTERM)],
            &[],
            true,
            Some(&others),
        );
        let mut want = stop_then_cont(Target::Group(pid(7)), quit).to_vec();
        want.extend(stop_then_cont(Target::Group(pid(8)), SIGTERM));
        want.extend(stop_then_cont(Target::Process(pid(30)), SIGTERM));
        want.extend(stop_then_cont(Target::Process(pid(31)), SIGTERM));
        assert_eq!(kills, want);
        // PID 1 with no signal of its own: everyone, once.
        let (_, kills) = Stop::begin(
            SIGTERM,
            true,
            &[(pid(7), SIGTERM)],
            &[],
            true,
            Some(&others),
        );
        assert_eq!(kills, stop_then_cont(Target::Everyone, SIGTERM));
    }

    #[test]
    fn an_adopted_orphan_in_a_programs_group_gets_that_programs_signal() {
        let (mut stop, _) = Stop::begin(SIGTERM, false, &[], &[], true, None);
        let kills = stop.adopted(&[(pid(40), Some(pid(7)))], &[(pid(7), 3)]);
        assert_eq!(kills, stop_then_cont(Target::Group(pid(7)), 3));
    }

    #[test]
    fn a_deferred_group_gets_nothing_until_released() {
        // Not PID 1: the deferred group is left out, then released.
        let (mut stop, kills) =
            Stop::begin(SIGTERM, false, &[(pid(8), SIGTERM)], &[pid(7)], true, None);
        assert_eq!(kills, stop_then_cont(Target::Group(pid(8)), SIGTERM));
        // An orphan of the deferred group is not signalled either.
        assert!(
            stop.adopted(&[(pid(70), Some(pid(7)))], &[(pid(7), SIGTERM)])
                .is_empty()
        );
        assert_eq!(
            stop.release(pid(7), 3),
            stop_then_cont(Target::Group(pid(7)), 3)
        );
        // PID 1: no kill(-1), which would reach the deferred group.
        let others = [(pid(7), Some(pid(7))), (pid(30), Some(pid(30)))];
        let (_, kills) = Stop::begin(
            SIGTERM,
            true,
            &[(pid(8), SIGTERM)],
            &[pid(7)],
            true,
            Some(&others),
        );
        let mut want = stop_then_cont(Target::Group(pid(8)), SIGTERM).to_vec();
        want.extend(stop_then_cont(Target::Process(pid(30)), SIGTERM));
        assert_eq!(kills, want);
    }
}
