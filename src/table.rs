//! The program table: every supervised program, reached by a typed id,
//! by name or by pid. Programs are only ever appended ([`Table::push`] is
//! the one way in, and nothing takes one out), so an id, once given, names
//! the same program for init's whole life: pipes, probes, notify sockets
//! and waiting replies keep ids, never positions they must trust.
//!
//! What the loop asks of the table at every turn — whether any program
//! can come due, and when the earliest does — follows from the programs'
//! states alone, so it is kept once worked out, and forgotten at every way
//! a program can change (`push`, `get_mut`, `iter_mut`): a turn that
//! touches no program (an orphan reaped) does not walk the table twice.

use std::cell::Cell;
use std::time::Instant;

use nix::unistd::Pid;

use crate::program::Program;

/// A program of the [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramId(usize);

#[derive(Debug, Default)]
pub struct Table {
    programs: Vec<Program>,
    /// `any` and `earliest` hold: no program has changed since they were
    /// worked out. (Apart, not one `Option` of both: the loop asks at
    /// every turn, and a flag costs less to read than a copy.)
    known: Cell<bool>,
    /// Some program can come due (see [`Program::has_timer`]).
    any: Cell<bool>,
    /// The earliest [`Program::deadline`].
    earliest: Cell<Option<Instant>>,
}

impl Table {
    /// Appends `program`: its id is [`Table::next_id`] as it was.
    pub fn push(&mut self, program: Program) -> ProgramId {
        let id = self.next_id();
        self.known.set(false);
        self.programs.push(program);
        id
    }

    #[inline]
    fn work_out_timers(&self) {
        if !self.known.get() {
            self.any.set(self.programs.iter().any(Program::has_timer));
            let earliest = self.programs.iter().filter_map(Program::deadline).min();
            self.earliest.set(earliest);
            self.known.set(true);
        }
    }

    /// Whether any program can come due.
    pub fn has_timers(&self) -> bool {
        self.work_out_timers();
        self.any.get()
    }

    /// The earliest time a program comes due.
    pub fn earliest(&self) -> Option<Instant> {
        self.work_out_timers();
        self.earliest.get()
    }

    /// The id the next [`Table::push`] gives, for what must be made
    /// knowing it (a notify socket) before the program is in.
    pub fn next_id(&self) -> ProgramId {
        ProgramId(self.programs.len())
    }

    pub fn get(&self, id: ProgramId) -> Option<&Program> {
        self.programs.get(id.0)
    }

    pub fn get_mut(&mut self, id: ProgramId) -> Option<&mut Program> {
        self.known.set(false);
        self.programs.get_mut(id.0)
    }

    pub fn len(&self) -> usize {
        self.programs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Program> {
        self.programs.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Program> {
        self.known.set(false);
        self.programs.iter_mut()
    }

    /// Every id, in the order the programs were given; it borrows nothing,
    /// so the table may change while it runs (ids of programs appended
    /// meanwhile are not among them).
    pub fn ids(&self) -> impl Iterator<Item = ProgramId> + use<> {
        (0..self.programs.len()).map(ProgramId)
    }

    /// A program's output history: changing it changes no timer.
    pub fn history_mut(&mut self, id: ProgramId) -> Option<&mut crate::history::History> {
        self.programs.get_mut(id.0).map(|p| &mut p.history)
    }

    /// The id of the program named `name`.
    pub fn by_name(&self, name: &str) -> Option<ProgramId> {
        self.programs
            .iter()
            .position(|p| p.name.as_str() == name)
            .map(ProgramId)
    }

    /// The id of the program whose process `pid` is.
    pub fn by_pid(&self, pid: Pid) -> Option<ProgramId> {
        self.programs
            .iter()
            .position(|p| p.pid() == Some(pid))
            .map(ProgramId)
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = &'a Program;
    type IntoIter = std::slice::Iter<'a, Program>;
    fn into_iter(self) -> Self::IntoIter {
        self.programs.iter()
    }
}

impl<'a> IntoIterator for &'a mut Table {
    type Item = &'a mut Program;
    type IntoIter = std::slice::IterMut<'a, Program>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProgramName;
    use crate::settings::Settings;
    use std::time::Instant;

    fn program(name: &str) -> Program {
        let settings = Settings::defaults(&crate::values::test_policy());
        Program::new(
            ProgramName::new(name).unwrap(),
            Vec::new(),
            None,
            settings,
            Instant::now(),
        )
    }

    #[test]
    fn ids_are_given_in_order_and_found_again() {
        let mut table = Table::default();
        assert!(table.is_empty());
        assert_eq!(table.next_id(), ProgramId(0));
        let a = table.push(program("a"));
        let b = table.push(program("b"));
        assert_eq!((a, b), (ProgramId(0), ProgramId(1)));
        assert_eq!(table.by_name("b"), Some(b));
        assert_eq!(table.by_name("c"), None);
        assert_eq!(table.get(a).map(|p| p.name.as_str()), Some("a"));
        assert_eq!(table.ids().collect::<Vec<_>>(), [a, b]);
        assert_eq!(table.by_pid(Pid::from_raw(1)), None);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn timers_follow_every_change_of_a_program() {
        let mut table = Table::default();
        assert!(!table.has_timers());
        assert_eq!(table.earliest(), None);
        // Waiting to start: due now.
        let a = table.push(program("a"));
        assert!(table.has_timers());
        let due = table.earliest().unwrap();
        // Asked again, unchanged; changed through get_mut, worked out anew.
        assert_eq!(table.earliest(), Some(due));
        let p = table.get_mut(a).unwrap();
        p.started(Pid::from_raw(42), due);
        p.confirm(due + std::time::Duration::from_secs(60));
        assert!(!table.has_timers(), "running: nothing to come due");
        assert_eq!(table.earliest(), None);
        for p in &mut table {
            p.request_stop(due, std::time::SystemTime::now());
        }
        assert!(table.has_timers(), "stopping: its SIGKILL");
        assert_eq!(table.earliest(), Some(due));
    }
}
