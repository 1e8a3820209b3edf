//! The supervisor's decisions that need no process: what init exits with,
//! what an essential program's end makes of it, and whether a stop waits
//! for the programs that start after. Pure functions of plain values, so
//! that each is tested as a table of cases, nothing spawned.

use crate::status::ExitKind;
use crate::values::Role;

/// Init's exit status at the end: an essential program's end decides
/// first, then the main command's own status; with neither, 0, or 1 when
/// the grace ended with something still running (SIGKILL was needed).
pub fn exit_status(essential: Option<u8>, main_exit: Option<ExitKind>, killed_any: bool) -> u8 {
    match (essential, main_exit) {
        (Some(status), _) => status,
        (None, Some(how)) => how.shell_status(),
        (None, None) => u8::from(killed_any),
    }
}

/// The status an essential program's end gives init: its own, as a shell
/// reports it. A FATAL program failed even when its last code was 0 (a
/// restart policy of "on failure" must see a failure), and one that never
/// ran (its spawn failed) failed too.
pub fn essential_status(how: Option<ExitKind>, fatal: bool) -> u8 {
    match how.map(ExitKind::shell_status) {
        Some(0) if fatal => 1,
        Some(status) => status,
        None => 1,
    }
}

/// Whether the stop of the program NAME waits: a program that starts
/// after it (`after` names it) still runs — the main command only when
/// `with_main` (a shutdown: `stop all` and `restart all` leave it
/// running). `others`: each child's `after`, role, and whether it still
/// runs for the stop order.
pub fn stop_waits<'a>(
    name: &str,
    mut others: impl Iterator<Item = (&'a [String], Role, bool)>,
    with_main: bool,
) -> bool {
    let after_it = |after: &[String]| after.iter().any(|n| n == name);
    others.any(|(after, role, live)| live && after_it(after) && (with_main || role != Role::Main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_table() {
        let cases = [
            // (essential, main's exit, killed any) → status
            (Some(3), Some(ExitKind::Code(0)), false, 3),
            (Some(1), None, true, 1),
            (None, Some(ExitKind::Code(7)), true, 7),
            (None, Some(ExitKind::Signal(15)), false, 143),
            (None, None, false, 0),
            (None, None, true, 1),
        ];
        for (essential, main, killed, want) in cases {
            assert_eq!(
                exit_status(essential, main, killed),
                want,
                "{essential:?} {main:?} {killed}"
            );
        }
    }

    #[test]
    fn essential_status_table() {
        let cases = [
            // (last exit, FATAL) → status
            (Some(ExitKind::Code(3)), false, 3),
            (Some(ExitKind::Code(0)), false, 0),
            (Some(ExitKind::Code(0)), true, 1),
            (Some(ExitKind::Code(2)), true, 2),
            (Some(ExitKind::Signal(9)), false, 137),
            (None, true, 1),
            (None, false, 1),
        ];
        for (how, fatal, want) in cases {
            assert_eq!(essential_status(how, fatal), want, "{how:?} {fatal}");
        }
    }

    #[test]
    fn a_stop_waits_for_the_programs_after_it_in_reverse_order() {
        let a_only = vec!["a".to_string()];
        let none: Vec<String> = Vec::new();
        let (p, m) = (Role::Program, Role::Main);
        // A child's `after`, role, and whether it still runs.
        type Child<'a> = (&'a [String], Role, bool);
        let cases: [(&[Child], bool, bool); 8] = [
            // (others, with_main) → waits
            (&[(&a_only, p, true)], false, true),
            (&[(&a_only, p, false)], false, false),
            (&[(&none, p, true)], false, false),
            (&[(&a_only, m, true)], true, true),
            (&[(&a_only, m, true)], false, false),
            (&[(&a_only, m, false)], true, false),
            (&[(&none, p, true), (&a_only, p, true)], false, true),
            (&[], true, false),
        ];
        for (others, with_main, want) in cases {
            let got = stop_waits("a", others.iter().copied(), with_main);
            assert_eq!(got, want, "{others:?} {with_main}");
        }
    }
}
