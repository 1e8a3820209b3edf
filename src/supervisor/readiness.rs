//! Readiness beyond `startsecs`: `READY=1` on the notify socket, and the
//! probes of `ready=tcp` and `ready=exists`, which run only while a
//! program is starting and stop once it is up.

use std::time::Instant;

use super::{Probe, Supervisor};
use crate::logging;
use crate::messages;
use crate::notify::Received;
use crate::probe::{self, Connect};
use crate::program::State;
use crate::settings::Ready;
use crate::table::ProgramId;

/// Datagrams read from the notify socket in one turn of the loop.
const NOTIFY_PER_TURN: usize = 64;

impl Supervisor {
    /// Reads the datagrams waiting on the notify sockets that woke. A
    /// socket is one program's; the sender's credentials must not name a
    /// process of another session (another program's, or none's). A
    /// sender already gone (a helper reaped at once) cannot be checked:
    /// the socket alone then says whose it is.
    pub(super) fn on_notify(&mut self) {
        for k in 0..self.notify.len() {
            if !self.notify.get(k).is_some_and(|n| n.ready.take()) {
                continue;
            }
            // A bounded batch a turn: a flood cannot starve signals and
            // exits; what is left keeps the socket readable.
            for _ in 0..NOTIFY_PER_TURN {
                let Some(socket) = self.notify.get(k) else {
                    break;
                };
                let index = socket.program;
                let message = match socket.socket.receive() {
                    Ok(Some(Received::Message(message))) => message,
                    Ok(Some(Received::Dropped)) => {
                        logging::debug(messages::notify_dropped());
                        continue;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        logging::error(messages::runtime_error(
                            "reading a notify socket",
                            &std::io::Error::from(e),
                        ));
                        break;
                    }
                };
                let Some(program) = self.programs.get_mut(index) else {
                    break;
                };
                let session = nix::unistd::getsid(Some(message.sender));
                let ours = match session {
                    Ok(sid) => program.pid().is_some() && program.pgid == Some(sid),
                    Err(_) => program.pid().is_some(),
                };
                if !ours {
                    logging::debug(messages::notify_ignored(
                        message.sender,
                        program.name.as_str(),
                    ));
                    continue;
                }
                if let Some(status) = message.status {
                    program.status_text = Some(status);
                }
                if message.ready && program.became_ready() {
                    logging::info(messages::success_ready(
                        program.name.as_str(),
                        &program.settings.ready,
                    ));
                }
            }
        }
    }

    /// Connects under way that have ended: a program whose connect
    /// succeeded is up; one whose failed is probed again later.
    pub(super) fn on_probes(&mut self, now: Instant) {
        if self.probes.is_empty() {
            return;
        }
        let mut ended = Vec::new();
        self.probes.retain(|probe| {
            let ready = probe.ready.take();
            if ready {
                ended.push((probe.program, probe::connected(&probe.fd)));
            }
            !ready
        });
        for (i, ok) in ended {
            self.probe_result(i, ok, now);
        }
    }

    /// Probes that are due: `exists` looks, `tcp` starts a connect (or
    /// gives up on one that took too long).
    pub(super) fn probe_due(&mut self, now: Instant) {
        for i in self.programs.ids() {
            let Some(program) = self.programs.get(i) else {
                continue;
            };
            let due = matches!(program.state, State::Starting { .. })
                && program.probe_at.is_some_and(|at| at <= now);
            if !due {
                continue;
            }
            match program.settings.ready.clone() {
                Ready::Exists(path) => {
                    let found = path.exists();
                    self.probe_result(i, found, now);
                }
                Ready::Tcp(addr) => {
                    if let Some(at) = self.probes.iter().position(|p| p.program == i) {
                        // Took longer than the limit: a failed try.
                        self.probes.remove(at);
                        self.probe_result(i, false, now);
                        continue;
                    }
                    match probe::connect_to(addr) {
                        Connect::Done => self.probe_result(i, true, now),
                        Connect::Failed => self.probe_result(i, false, now),
                        Connect::Pending(fd) => {
                            self.probes.push(Probe {
                                program: i,
                                fd,
                                ready: std::cell::Cell::new(false),
                            });
                            if let Some(program) = self.programs.get_mut(i) {
                                program.probe_at =
                                    super::deadline_after(now, probe::CONNECT_LIMIT).into();
                            }
                        }
                    }
                }
                Ready::Startsecs | Ready::Notify | Ready::Exited => {}
            }
        }
    }

    /// A probe's answer for program `i`: up, or another try after
    /// [`probe::EVERY`].
    fn probe_result(&mut self, i: ProgramId, ok: bool, now: Instant) {
        let Some(program) = self.programs.get_mut(i) else {
            return;
        };
        if !matches!(program.state, State::Starting { .. }) {
            return;
        }
        if ok {
            if program.became_ready() {
                logging::info(messages::success_ready(
                    program.name.as_str(),
                    &program.settings.ready,
                ));
            }
        } else {
            program.probe_at = Some(super::deadline_after(now, probe::EVERY));
        }
    }

    /// A program that has exited takes its connects under way with it.
    pub(super) fn drop_probes(&mut self, program: ProgramId) {
        self.probes.retain(|p| p.program != program);
    }
}
