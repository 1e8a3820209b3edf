//! Requests from the control socket, acted on and answered: what
//! `cocalc-init status|start|stop|restart|signal` asks of the supervisor.
//!
//! `status` and `signal` are answered at once. `stop`, `start` and
//! `restart` answer once the action is done — the process reaped, the new
//! one spawned — so a [`Waiter`] keeps the reply until every program it
//! names has got there.

use std::time::{Instant, SystemTime};

use super::{Kill, Supervisor, Target};
use crate::config::ALL_NAME;
use crate::control::Request;
use crate::logging;
use crate::messages;
use crate::program::{self, AfterStop, Answer, State};
use crate::signals::SIGTERM;
use crate::stamp;
use crate::table::ProgramId;
use crate::values::Role;
use crate::verbs::{self, Outcome, Verb};

/// A reply waiting for programs to stop or start.
pub struct Waiter {
    client: u64,
    items: Vec<Item>,
}

/// One line of a reply, known or still to come.
enum Item {
    Line(Outcome, String),
    /// Done when the program is no longer stopping.
    Stopped {
        program: ProgramId,
    },
    /// Done when the program is up (`wait`).
    Up {
        program: ProgramId,
    },
    /// Done when the program has started again (or failed to).
    Started {
        program: ProgramId,
        word: &'static str,
        starts: u32,
        failures: u32,
        /// A start held back by its `after` is answered "waiting for" at
        /// once; not within `restart all`, whose order makes that wait
        /// part of the restart.
        answer_waiting: bool,
        /// The names of its `after` that the same request starts: a wait
        /// for those is part of the request (`restart a b` with b after a
        /// answers once both are back, not "b: waiting for a").
        chained: Vec<String>,
    },
}

/// A name a request gave that is no program of the table.
pub(super) enum Miss {
    /// An init script skipped at start for not existing: where it is.
    Skipped(String, std::path::PathBuf),
    Unknown(String),
}

impl Miss {
    fn line(&self) -> String {
        match self {
            Miss::Skipped(name, path) => format!("{name}: ERROR ({})", messages::skipped(path)),
            Miss::Unknown(name) => format!("{name}: ERROR (no such program)"),
        }
    }

    /// Its line of the answer: `NAME: ERROR (…)`.
    fn item(&self) -> Item {
        Item::Line(Outcome::Error, self.line())
    }

    /// The same, as sent, with its newline.
    pub(super) fn tagged(&self) -> String {
        let mut line = Outcome::Error.tag(&self.line());
        line.push('\n');
        line
    }
}

/// A stop of `stop all` or `restart all` that waits for the programs
/// after program `i` to be gone: kept, and answered once it is done.
/// None where it is not running (stopped at once instead).
fn deferred_answer(
    program: &mut crate::program::Program,
    i: ProgramId,
    verb: Verb,
) -> Option<Item> {
    let (starts, failures) = (program.starts, program.spawn_failures);
    let after = match verb {
        Verb::Stop => AfterStop::StayStopped,
        _ => AfterStop::Restart,
    };
    program.defer_stop(after)?;
    Some(match verb {
        Verb::Stop => Item::Stopped { program: i },
        _ => Item::Started {
            program: i,
            word: "restarted",
            starts,
            failures,
            answer_waiting: false,
            chained: Vec::new(),
        },
    })
}

/// Width of the state column in `status`.
const STATE_WIDTH: usize = 10;

impl Supervisor {
    /// Takes the control socket's news: new requests are acted on.
    pub(super) fn on_control(&mut self, now: Instant) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        for request in control.on_ready(&self.woken.control, now) {
            self.on_request(request, now);
        }
    }

    fn on_request(&mut self, request: Request, now: Instant) {
        let words: Vec<&str> = request.line.split_whitespace().collect();
        let command = match verbs::parse(&words) {
            Ok(command) => command,
            Err(e) => {
                logging::debug(messages::control_request(
                    &request.line,
                    request.peer.pid,
                    request.peer.uid,
                ));
                let line = Outcome::Error.tag(&format!("ERROR {e}"));
                return self.reply(request.client, format!("{line}\n"), now);
            }
        };
        let note = messages::control_request(&request.line, request.peer.pid, request.peer.uid);
        if matches!(command.verb, Verb::Status | Verb::Tail { .. }) {
            // A probe every few seconds must not flood the log.
            logging::debug(&note);
        } else {
            logging::info(&note);
        }
        let items = match command.verb {
            Verb::Status => {
                let text = self.status_text(&command.names, now);
                return self.reply(request.client, text, now);
            }
            Verb::Tail { follow, lines } => {
                return self.tail_request(request.client, &command.names, follow, lines, now);
            }
            Verb::Signal(sig) => self.signal_request(&command.names, sig),
            Verb::Wait => self.wait_request(&command.names),
            verb => self.act(verb, &command.names, now),
        };
        self.waiters.push(Waiter {
            client: request.client,
            items,
        });
        // Due now: started in this turn, not at the next wake. After the
        // waiter is kept, so that a start that ends init (an essential
        // program that cannot start) still answers its client.
        self.start_due(now);
        self.settle_waiters(now);
    }

    /// The program indices `names` mean (`all`: every one), and a line for
    /// each name that is no program.
    pub(super) fn targets(&self, names: &[String]) -> (Vec<ProgramId>, Vec<Miss>) {
        if names.iter().any(|n| n == ALL_NAME) {
            return (self.programs.ids().collect(), Vec::new());
        }
        let mut found = Vec::new();
        let mut missed = Vec::new();
        for name in names {
            match self.programs.by_name(name) {
                Some(i) => found.push(i),
                None => missed.push(
                    match self.skipped.iter().find(|(n, ..)| n.as_str() == name) {
                        Some((_, path, _)) => Miss::Skipped(name.clone(), path.clone()),
                        None => Miss::Unknown(name.clone()),
                    },
                ),
            }
        }
        (found, missed)
    }

    /// An init script skipped at start because it did not exist, and named
    /// now (or `all`), becomes a program if it exists by now: a user who
    /// has just written `~/project_init.sh` can start it without a new
    /// container.
    fn take_up_scripts(&mut self, names: &[String], every: bool, now: Instant) {
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.skipped)
            .into_iter()
            .partition(|(name, path, _)| {
                (every || names.iter().any(|n| n == name.as_str())) && path.exists()
            });
        self.skipped = still;
        for (name, path, settings) in ready {
            let index = self.programs.next_id();
            if let Some(program) = super::init_script(name, &path, settings, now) {
                let program = super::prepare(program, index, &self.env, self.me, &mut self.notify);
                self.programs.push(program);
            }
        }
    }

    /// start, stop, restart: each program's answer, now or to come. With
    /// `all`, programs already where the verb would take them are left
    /// out, as supervisorctl does, rather than answered with an error.
    fn act(&mut self, verb: Verb, names: &[String], now: Instant) -> Vec<Item> {
        let every = names.iter().any(|n| n == ALL_NAME);
        if verb != Verb::Stop {
            self.take_up_scripts(names, every, now);
        }
        let (mut targets, missed) = self.targets(names);
        let mut items: Vec<Item> = missed.iter().map(Miss::item).collect();
        if every {
            // Not the main command, which only a signal reaches (a name
            // of it is refused before here).
            targets.retain(|&i| {
                self.programs.get(i).is_some_and(|p| {
                    // A scheduled program between runs is where `start all`
                    // and `restart all` would take it: it runs at its time.
                    p.role == Role::Program
                        && !matches!(
                            (verb, p.state),
                            (Verb::Stop, State::Stopped { .. })
                                | (Verb::Start, State::Starting { .. } | State::Running { .. })
                                | (Verb::Start | Verb::Restart, State::Scheduled { .. })
                        )
                })
            });
        }
        let wall = SystemTime::now();
        let mut kills = Vec::new();
        // `stop all` and `restart all` go in reverse start order: a program
        // others start after is stopped once they are gone.
        let reverse = every && matches!(verb, Verb::Stop | Verb::Restart);
        let defer: Vec<bool> = targets
            .iter()
            .map(|&i| reverse && self.has_live_dependents(i, false))
            .collect();
        let in_request = self.after_one_of(&targets);
        for ((i, defer), chained) in targets.into_iter().zip(defer).zip(in_request) {
            let Some(program) = self.programs.get_mut(i) else {
                continue;
            };
            let (starts, failures) = (program.starts, program.spawn_failures);
            let kill_at = super::deadline_after(now, program.settings.stopwaitsecs.duration());
            let stop_signal = program.stop_signal(SIGTERM);
            if defer {
                if let Some(item) = deferred_answer(program, i, verb) {
                    items.push(item);
                    continue;
                }
            }
            let answer = match verb {
                Verb::Stop => program.request_stop(kill_at, wall),
                Verb::Start => program.request_start(now),
                _ => program.request_restart(now, kill_at),
            };
            let name = program.name.as_str();
            let waits_for_start = |word| Item::Started {
                program: i,
                word,
                starts,
                failures,
                answer_waiting: !reverse,
                chained: chained.clone(),
            };
            items.push(match (answer, verb) {
                (Answer::Done(word), _) => Item::Line(Outcome::Done, format!("{name}: {word}")),
                (Answer::Refused(why), _) => {
                    Item::Line(Outcome::Error, format!("{name}: ERROR ({why})"))
                }
                (Answer::Signal(pid), _) => {
                    kills.extend(Kill::stop(Target::Group(pid), stop_signal));
                    match verb {
                        Verb::Stop => Item::Stopped { program: i },
                        _ => waits_for_start("restarted"),
                    }
                }
                (Answer::Wait, Verb::Stop) => Item::Stopped { program: i },
                (Answer::Wait | Answer::Spawn, Verb::Start) => waits_for_start("started"),
                (Answer::Wait | Answer::Spawn, _) => waits_for_start("restarted"),
            });
        }
        self.apply(&kills);
        if every && items.is_empty() {
            items.push(Item::Line(
                Outcome::Done,
                format!("{ALL_NAME}: nothing to do"),
            ));
        }
        items
    }

    /// For each of `targets`, the names of its `after` that are among
    /// them.
    fn after_one_of(&self, targets: &[ProgramId]) -> Vec<Vec<String>> {
        let named = |dep: &&String| {
            targets.iter().any(|&t| {
                self.programs
                    .get(t)
                    .is_some_and(|q| q.name.as_str() == *dep)
            })
        };
        targets
            .iter()
            .map(|&i| {
                self.programs.get(i).map_or_else(Vec::new, |p| {
                    p.settings.after.iter().filter(named).cloned().collect()
                })
            })
            .collect()
    }

    /// signal: the signal to each named program's group (the main
    /// command's too), answered at once.
    fn signal_request(&mut self, names: &[String], sig: i32) -> Vec<Item> {
        let (targets, missed) = self.targets(names);
        let mut items: Vec<Item> = missed.iter().map(Miss::item).collect();
        let mut kills = Vec::new();
        let every = names.iter().any(|n| n == ALL_NAME);
        for i in targets {
            let Some(program) = self.programs.get(i) else {
                continue;
            };
            if every && program.pid().is_none() {
                // `all`: the running ones.
                continue;
            }
            let name = program.name.as_str();
            items.push(match program.pid() {
                Some(pid) => {
                    kills.push(Kill {
                        target: Target::Group(pid),
                        signal: sig,
                    });
                    Item::Line(Outcome::Done, format!("{name}: signalled"))
                }
                None => Item::Line(Outcome::Error, format!("{name}: ERROR (not running)")),
            });
        }
        self.apply(&kills);
        if every && items.is_empty() {
            items.push(Item::Line(
                Outcome::Done,
                format!("{ALL_NAME}: nothing to do"),
            ));
        }
        items
    }

    /// wait: a line for each program once it is up. A skipped init
    /// script counts as up, as in `status`.
    fn wait_request(&mut self, names: &[String]) -> Vec<Item> {
        let mut items = Vec::new();
        for name in names.iter().filter(|n| *n != ALL_NAME) {
            if self.programs.iter().all(|p| p.name.as_str() != name)
                && self.skipped.iter().any(|(n, ..)| n.as_str() == name)
            {
                items.push(Item::Line(Outcome::Done, format!("{name}: up")));
            }
        }
        let (targets, missed) = self.targets(names);
        // A skipped script is up (said above); only unknown names err.
        items.extend(
            missed
                .iter()
                .filter(|miss| matches!(miss, Miss::Unknown(_)))
                .map(Miss::item),
        );
        items.extend(targets.into_iter().map(|program| Item::Up { program }));
        if items.is_empty() {
            items.push(Item::Line(
                Outcome::Done,
                format!("{ALL_NAME}: nothing to wait for"),
            ));
        }
        items
    }

    /// Sends every reply whose programs have all got there.
    pub(super) fn settle_waiters(&mut self, now: Instant) {
        if self.waiters.is_empty() {
            return;
        }
        let mut done = Vec::new();
        let mut waiting = Vec::new();
        for mut waiter in std::mem::take(&mut self.waiters) {
            // Gone meanwhile: nobody to tell.
            if !self.control.as_ref().is_some_and(|c| c.has(waiter.client)) {
                continue;
            }
            for item in &mut waiter.items {
                if let Some((outcome, line)) = self.resolve(item) {
                    *item = Item::Line(outcome, line);
                }
            }
            if waiter.items.iter().all(|i| matches!(i, Item::Line(..))) {
                done.push(waiter);
            } else {
                waiting.push(waiter);
            }
        }
        self.waiters = waiting;
        for waiter in done {
            let text = lines_of(waiter.items);
            self.reply(waiter.client, text, now);
        }
    }

    /// An item's line once it is known.
    fn resolve(&self, item: &Item) -> Option<(Outcome, String)> {
        let done = |text: String| Some((Outcome::Done, text));
        let error = |text: String| Some((Outcome::Error, text));
        match *item {
            Item::Line(..) => None,
            Item::Up { program } => {
                let p = self.programs.get(program)?;
                p.is_up()
                    .then(|| (Outcome::Done, format!("{}: up", p.name)))
            }
            Item::Stopped { program } => {
                let p = self.programs.get(program)?;
                if p.deferred_stop.is_some() {
                    return None;
                }
                match p.state {
                    State::Stopping { .. } => None,
                    State::Done => error(format!("{}: ERROR (shutting down)", p.name)),
                    _ => done(format!("{}: stopped", p.name)),
                }
            }
            Item::Started {
                program,
                word,
                starts,
                failures,
                answer_waiting,
                ref chained,
            } => {
                let p = self.programs.get(program)?;
                let held = matches!(
                    p.state,
                    State::Stopped { .. }
                        | State::Stopping {
                            after: AfterStop::StayStopped,
                            ..
                        }
                );
                if p.starts > starts {
                    done(format!("{}: {word}", p.name))
                } else if p.spawn_failures > failures {
                    error(format!("{}: ERROR (spawn error)", p.name))
                } else if p.state == State::Done {
                    error(format!("{}: ERROR (shutting down)", p.name))
                } else if held {
                    // A stop asked for after this start or restart won.
                    error(format!("{}: ERROR (stopped by request)", p.name))
                } else if !p.waiting_for.is_empty()
                    && ((answer_waiting && p.waiting_for.iter().any(|n| !chained.contains(n)))
                        || self.waits_in_vain(&p.waiting_for))
                {
                    // Its `after` is not up: it starts once it is, and the
                    // client is told so now rather than kept waiting.
                    Some((
                        Outcome::NotUp,
                        format!("{}: waiting for {}", p.name, p.waiting_for.join(", ")),
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// Whether one of `names` is down and will not come up by itself
    /// (FATAL, stopped, not started, exited and not restarted): a start
    /// after it waits for someone to act.
    fn waits_in_vain(&self, names: &[String]) -> bool {
        self.programs
            .iter()
            .filter(|p| names.iter().any(|n| n == p.name.as_str()))
            .any(|p| {
                !p.is_up()
                    && matches!(
                        p.state,
                        State::Fatal
                            | State::Exited
                            | State::Stopped { .. }
                            | State::NotStarted
                            | State::Done
                    )
            })
    }

    pub(super) fn reply(&mut self, client: u64, text: String, now: Instant) {
        // What the action logged is in the log file before the answer
        // arrives: `restart x && grep x LOG` finds it.
        logging::flush();
        if let Some(control) = self.control.as_mut() {
            control.reply(client, text, now);
        }
    }

    /// Shutdown: every waiting reply is sent as it stands (what is still
    /// to come says so), and the socket is closed and removed.
    pub(super) fn end_control(&mut self, now: Instant) {
        for waiter in std::mem::take(&mut self.waiters) {
            let items = waiter
                .items
                .into_iter()
                .map(|item| match item {
                    Item::Line(outcome, line) => Item::Line(outcome, line),
                    Item::Stopped { program }
                    | Item::Started { program, .. }
                    | Item::Up { program } => {
                        let name = self.programs.get(program).map_or("?", |p| p.name.as_str());
                        Item::Line(Outcome::Error, format!("{name}: ERROR (shutting down)"))
                    }
                })
                .collect();
            self.reply(waiter.client, lines_of(items), now);
        }
        self.control = None;
    }

    /// One line a program, columns aligned: NAME STATE DETAIL.
    fn status_text(&self, names: &[String], now: Instant) -> String {
        let mut rows: Vec<(String, &'static str, String, bool)> = Vec::new();
        let mut errors = Vec::new();
        let every = names.is_empty() || names.iter().any(|n| n == ALL_NAME);
        let wanted = |name: &str| every || names.iter().any(|n| n == name);
        let row = |program: &program::Program| {
            wanted(program.name.as_str()).then(|| {
                let s = program.status(now, stamp::short);
                (program.name.to_string(), s.state, s.detail, s.up)
            })
        };
        let (main, programs): (Vec<_>, Vec<_>) =
            self.programs.iter().partition(|p| p.role == Role::Main);
        rows.extend(programs.into_iter().filter_map(row));
        for (name, path, _) in &self.skipped {
            if wanted(name.as_str()) {
                // Nothing to run: it counts as up.
                rows.push((
                    name.to_string(),
                    "EXITED",
                    messages::skipped(path).to_string(),
                    true,
                ));
            }
        }
        // The main command's row last, under the programs it may wait for.
        rows.extend(main.into_iter().filter_map(row));
        if !every {
            for name in names {
                if !rows.iter().any(|(n, ..)| n == name) {
                    errors.push(format!("{name}: ERROR (no such program)"));
                }
            }
        }
        let width = rows.iter().map(|(n, ..)| n.len()).max().unwrap_or(0) + 2;
        let mut out = String::new();
        for (name, state, detail, up) in rows {
            let line = format!("{name:<width$}{state:<STATE_WIDTH$}{detail}");
            let outcome = if up { Outcome::Done } else { Outcome::NotUp };
            out.push_str(&outcome.tag(line.trim_end()));
            out.push('\n');
        }
        for line in errors {
            out.push_str(&Outcome::Error.tag(&line));
            out.push('\n');
        }
        out
    }
}

fn lines_of(items: Vec<Item>) -> String {
    let mut out = String::new();
    for item in items {
        if let Item::Line(outcome, line) = item {
            out.push_str(&outcome.tag(&line));
            out.push('\n');
        }
    }
    out
}
