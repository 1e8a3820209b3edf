//! `cocalc-init tail [-f] [-n LINES] NAME...|all`: a program's recent
//! output from its history in init's memory, and with `-f` each new line
//! as it is logged. Several programs (or `all`) are interleaved by time,
//! each line with its program's name.

use std::time::Instant;

use super::Supervisor;
use crate::config::ALL_NAME;
use crate::control::Control;
use crate::history::Line;
use crate::messages;
use crate::table::{ProgramId, Table};
use crate::values::Role;
use crate::verbs::Outcome;

/// [`Outcome::Done`]'s tag, as bytes: a followed line's start.
const TAG_DONE: &[u8] = b"0\t";

/// A `tail -f` client: the programs it follows, and for each the number
/// of the next line it is to get.
pub struct Follower {
    client: u64,
    /// `all`: programs that come later (a script started after it was
    /// written) are followed too.
    every: bool,
    /// Lines carry the program's name.
    named: bool,
    next: Vec<(ProgramId, u64)>,
    /// How many of the table's programs `every` has looked at.
    looked_at: usize,
}

/// A line as `tail` shows it, in pieces to copy: its tag, the log's
/// stamp, the program's name where several are shown, the stream, the
/// text (its newline is the writer's).
fn parts<'a>(line: &'a Line, name: Option<&'a str>) -> [&'a [u8]; 8] {
    let (name, gap) = match name {
        Some(name) => (name.as_bytes(), &b" "[..]),
        None => (&b""[..], &b""[..]),
    };
    [
        TAG_DONE,
        &line.stamp,
        b" ",
        name,
        gap,
        line.stream.word().as_bytes(),
        b": ",
        &line.text,
    ]
}

/// Lines of several programs in the order they were logged: by the log's
/// stamp (which sorts as text), then the order the names were given.
fn by_time(lines: &mut [(Line, usize, &str)]) {
    lines.sort_by(|a, b| (&a.0.stamp, a.1, a.0.seq).cmp(&(&b.0.stamp, b.1, b.0.seq)));
}

impl Supervisor {
    /// Answers a tail request: the last `count` lines of the named
    /// programs together; with `follow`, the client then stays a follower.
    pub(super) fn tail_request(
        &mut self,
        client: u64,
        names: &[String],
        follow: bool,
        count: usize,
        now: Instant,
    ) {
        let every = names.iter().any(|n| n == ALL_NAME);
        let (targets, missed) = self.targets(names);
        let mut out = String::new();
        for miss in &missed {
            out.push_str(&miss.tagged());
        }
        let mut shown_ids = Vec::new();
        for id in targets {
            let Some(program) = self.programs.get(id) else {
                continue;
            };
            match program.role {
                Role::Program => shown_ids.push(id),
                // `all` means every program whose output there is.
                Role::Main if every => {}
                Role::Main => {
                    let line = messages::tail_main();
                    out.push_str(&Outcome::Error.tag(&line));
                    out.push('\n');
                }
            }
        }
        let named = every || shown_ids.len() > 1;
        // Interleaved by stamp (the log's, which sorts as text), then the
        // last `count` of them all.
        let mut lines: Vec<(Line, usize, &str)> = Vec::new();
        for (order, &id) in shown_ids.iter().enumerate() {
            if let Some(program) = self.programs.get(id) {
                let name = program.name.as_str();
                lines.extend(
                    program
                        .history
                        .last(count)
                        .into_iter()
                        .map(|l| (l, order, name)),
                );
            }
        }
        by_time(&mut lines);
        let skip = lines.len().saturating_sub(count);
        let mut shown = Vec::new();
        for (line, _, name) in lines.iter().skip(skip) {
            shown.extend(parts(line, named.then_some(*name)).concat());
            shown.push(b'\n');
        }
        // What is not UTF-8 as U+FFFD, as the log has it.
        out.push_str(&String::from_utf8_lossy(&shown));
        let next: Vec<(ProgramId, u64)> = shown_ids
            .iter()
            .filter_map(|&id| Some((id, self.programs.get(id)?.history.pushed())))
            .collect();
        let Some(control) = self.control.as_mut() else {
            return;
        };
        // Nothing to follow (a wrong name, main): answered, not kept.
        if !follow || (!every && shown_ids.is_empty()) {
            return self.reply(client, out, now);
        }
        if control.follow(client, out.clone()) {
            self.followers.push(Follower {
                client,
                every,
                named,
                next,
                looked_at: self.programs.len(),
            });
        } else {
            out.push_str(
                &Outcome::Error.tag(&messages::too_many_followers(crate::control::MAX_FOLLOWERS)),
            );
            out.push('\n');
            self.reply(client, out, now);
        }
    }

    /// Sends each follower the lines logged since it was last sent any;
    /// drops the followers that have gone.
    pub(super) fn feed_followers(&mut self) {
        let Some(control) = self.control.as_mut() else {
            self.followers.clear();
            return;
        };
        self.followers.retain(|f| control.has(f.client));
        for follower in &mut self.followers {
            if follower.every {
                for id in self.programs.ids().skip(follower.looked_at) {
                    if self
                        .programs
                        .get(id)
                        .is_some_and(|p| p.role == Role::Program)
                    {
                        follower.next.push((id, 0));
                    }
                }
                follower.looked_at = self.programs.len();
            }
            feed(&self.programs, control, follower);
        }
    }
}

/// One follower's new lines, if any.
fn feed(programs: &Table, control: &mut Control, follower: &mut Follower) {
    let fresh = |&(id, next): &(ProgramId, u64)| {
        programs.get(id).is_some_and(|p| p.history.pushed() != next)
    };
    if !follower.next.iter().any(fresh) {
        return;
    }
    match follower.next.as_mut_slice() {
        // One program: its lines in their order, copied as they are.
        [(id, next)] if !follower.named => {
            let Some(program) = programs.get(*id) else {
                return;
            };
            let history = &program.history;
            let from = *next;
            *next = history.pushed();
            control.feed(follower.client, history.gone_since(from), |out| {
                history.visit_since(from, |line| out.line(&parts(&line, None)));
            });
        }
        // Several: merged by stamp, each line with its program's name.
        several => {
            let mut gone = 0;
            let mut lines: Vec<(Line, usize, &str)> = Vec::new();
            for (order, (id, next)) in several.iter_mut().enumerate() {
                let Some(program) = programs.get(*id) else {
                    continue;
                };
                let name = program.name.as_str();
                gone += program
                    .history
                    .visit_since(*next, |line| lines.push((line, order, name)));
                *next = program.history.pushed();
            }
            by_time(&mut lines);
            control.feed(follower.client, gone, |out| {
                for (line, _, name) in &lines {
                    out.line(&parts(line, Some(name)));
                }
            });
        }
    }
}
