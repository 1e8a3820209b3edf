//! The control socket: how `cocalc-init status|start|stop|restart|signal`
//! reaches a running init. A Unix stream socket whose fds sit in the main
//! loop's one `poll`: idle, it costs no wake-up.
//!
//! The wire format is plain text. init greets each client with one line,
//! `cocalc-init VERSION grace SECS` (the client then knows how long a stop
//! may take); the client sends one request line (a verb and its words, at
//! most [`MAX_REQUEST`] bytes); init answers with text lines and closes.
//!
//! No client may stall the loop or hold an fd for ever: every socket is
//! non-blocking; a client that has not sent its line within
//! [`READ_TIMEOUT`] is closed, as is one whose reply it does not take within
//! [`WRITE_TIMEOUT`]; at most [`MAX_CLIENTS`] are served at once (a client
//! waiting on a stop holds one of them). A `tail -f` client becomes a
//! follower: it stays, is sent lines as they come, and holds none of those
//! slots but one of [`MAX_FOLLOWERS`] of its own, so that `status` probes
//! get through however many follow; what a follower does not take in time
//! is dropped past [`FOLLOW_BUFFER`] bytes and said with a marker line, so
//! that a slow or stuck one never holds up the loop. Who may talk: the socket is made
//! `0600` in a folder that must be init's own; behind that, the peer's
//! credentials (SO_PEERCRED) must be init's own uid or root.

use std::io::{self, ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Uid, geteuid};

use crate::logging;
use crate::messages;
use crate::verbs::Outcome;

/// Room kept in a follower's buffer for the marker of dropped lines.
const MARKER_ROOM: usize = 64;

/// A follower's buffer, being filled with lines. What does not fit is
/// dropped and counted, and a marker line says how many before the next
/// line that fits.
pub struct FollowOut<'a> {
    output: &'a mut Vec<u8>,
    dropped: &'a mut u64,
}

impl FollowOut<'_> {
    /// One line made of `parts`, its newline added: bytes as they are (the
    /// client shows what is not UTF-8 as U+FFFD).
    pub fn line(&mut self, parts: &[&[u8]]) {
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        if self.output.len() + len + MARKER_ROOM > FOLLOW_BUFFER {
            *self.dropped += 1;
            return;
        }
        if *self.dropped > 0 {
            let marker = Outcome::Done.tag(&messages::lines_dropped(*self.dropped));
            self.output.extend_from_slice(marker.as_bytes());
            self.output.push(b'\n');
            *self.dropped = 0;
        }
        for part in parts {
            self.output.extend_from_slice(part);
        }
        self.output.push(b'\n');
    }
}

/// The longest request line.
pub const MAX_REQUEST: usize = 4096;
/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to read its reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Followers (`tail -f`) at once, beside the clients.
pub const MAX_FOLLOWERS: usize = 16;
/// What a follower may have waiting for it, beyond its socket's buffer.
pub const FOLLOW_BUFFER: usize = 64 * 1024;
/// Connections taken in one turn of the loop, so that a flood of them
/// cannot starve the rest.
const ACCEPTS_PER_TURN: usize = 64;
/// After accept fails (no fd left, say), the listener rests this long:
/// the connection stays queued and would wake the loop at once, again
/// and again.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Who is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
}

/// A request line from a client, for the supervisor to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub client: u64,
    pub peer: Peer,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the request line.
    Reading,
    /// The request is with the supervisor (a stop waits for an exit).
    Busy,
    /// Sending the reply.
    Writing,
    /// `tail -f`: sent lines as they come, until it hangs up.
    Following,
}

struct Client {
    id: u64,
    stream: UnixStream,
    peer: Peer,
    phase: Phase,
    input: Vec<u8>,
    output: Vec<u8>,
    /// When it is closed if still Reading or Writing.
    deadline: Instant,
    /// Following: lines not sent since its buffer was last full.
    dropped: u64,
}

pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket made, so that only it is removed.
    id: (u64, u64),
    greeting: String,
    clients: Vec<Client>,
    next_id: u64,
    /// How many fds `poll_fds` gave for the last wait: the listener and
    /// each client then.
    polled: usize,
    /// accept failed: the listener is not waited on until then.
    paused_until: Option<Instant>,
}

/// Why there is no control channel.
#[derive(Debug)]
pub struct OpenError(pub String);

impl Control {
    /// Makes the socket at `path`: its folder (`0750`) if missing, which
    /// must then be init's own and writable by no one else; a stale socket
    /// left by an earlier run is removed, but not a live one, nor anything
    /// that is not a socket.
    pub fn open(path: &Path, grace: &str) -> Result<Control, OpenError> {
        let fail = |why: String| OpenError(messages::control_unavailable(path, &why));
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(folder) = folder {
            if std::fs::symlink_metadata(folder).is_err() {
                crate::folders::make(folder, 0o750)
                    .map_err(|e| fail(format!("cannot make its folder: {e}")))?;
            }
            let meta =
                std::fs::symlink_metadata(folder).map_err(|e| fail(format!("its folder: {e}")))?;
            if !meta.is_dir() {
                return Err(fail("its folder is not a folder".into()));
            }
            if meta.uid() != geteuid().as_raw() || meta.mode() & 0o022 != 0 {
                return Err(fail(format!(
                    "its folder {} is not init's own (owner uid {}, mode {:o})",
                    folder.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                )));
            }
        }
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(fail("another init answers there".into()));
                }
                // Stale: nothing answers.
                std::fs::remove_file(path).map_err(|e| fail(e.to_string()))?;
            }
            Ok(_) => return Err(fail("it is not a socket".into())),
        }
        let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(e.to_string()))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| fail(e.to_string()))?;
        Ok(Control {
            listener,
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
            greeting: format!("cocalc-init {} grace {grace}\n", env!("CARGO_PKG_VERSION")),
            clients: Vec::new(),
            next_id: 1,
            polled: 0,
            paused_until: None,
        })
    }

    /// Adds the fds to wait on, and for what: the listener, then each
    /// client.
    pub fn poll_fds<'a>(&'a mut self, fds: &mut Vec<PollFd<'a>>) {
        let before = fds.len();
        let listen = match self.paused_until {
            Some(_) => PollFlags::empty(),
            None => PollFlags::POLLIN,
        };
        fds.push(PollFd::new(self.listener.as_fd(), listen));
        for client in &self.clients {
            let events = match client.phase {
                Phase::Reading if !client.output.is_empty() => {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                }
                Phase::Reading => PollFlags::POLLIN,
                Phase::Writing => PollFlags::POLLOUT,
                // Its hang-up, and room for what waits.
                Phase::Following if !client.output.is_empty() => {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                }
                Phase::Following => PollFlags::POLLIN,
                // Only a hang-up, which poll reports anyway.
                Phase::Busy => PollFlags::empty(),
            };
            fds.push(PollFd::new(client.stream.as_fd(), events));
        }
        self.polled = fds.len() - before;
    }

    /// After a wait: `ready` holds, for the fds of the last `poll_fds` in
    /// order, whether each was ready. Takes new clients, reads, writes, and
    /// returns the complete requests.
    pub fn on_ready(&mut self, ready: &[bool], now: Instant) -> Vec<Request> {
        let mut requests = Vec::new();
        let polled = self.polled.saturating_sub(1);
        for (client, &is_ready) in self
            .clients
            .iter_mut()
            .take(polled)
            .zip(ready.iter().skip(1))
        {
            if is_ready {
                client.on_ready(&mut requests);
            }
        }
        self.clients.retain(|c| !c.is_finished());
        if ready.first().copied().unwrap_or(false) && self.paused_until.is_none() {
            self.accept(now);
        }
        requests
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_TURN {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the connection waits in the
                    // backlog, and the listener rests a while.
                    logging::warn(messages::runtime_error("control: accept", &e));
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let peer = match getsockopt(&stream, PeerCredentials) {
                Ok(cred) => Peer {
                    pid: cred.pid(),
                    uid: cred.uid(),
                },
                Err(_) => continue,
            };
            let mut client = Client {
                id: self.next_id,
                stream,
                peer,
                phase: Phase::Writing,
                input: Vec::new(),
                output: Vec::new(),
                deadline: now + WRITE_TIMEOUT,
                dropped: 0,
            };
            self.next_id += 1;
            if peer.uid != geteuid().as_raw() && !Uid::from_raw(peer.uid).is_root() {
                logging::warn(messages::control_refused(peer.uid, peer.pid));
                client.finish("ERROR permission denied\n".into());
            } else if self.clients.iter().filter(|c| !c.is_follower()).count() >= MAX_CLIENTS {
                client.finish("ERROR too many clients\n".into());
            } else {
                client.phase = Phase::Reading;
                client.deadline = now + READ_TIMEOUT;
                client.output = self.greeting.clone().into_bytes();
                client.flush();
            }
            if !client.is_finished() {
                self.clients.push(client);
            }
        }
    }

    /// The reply to a request: sent, then the connection closed. A client
    /// that has gone meanwhile is no error.
    pub fn reply(&mut self, client: u64, text: String, now: Instant) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == client) {
            c.deadline = now + WRITE_TIMEOUT;
            c.finish(text);
        }
        self.clients.retain(|c| !c.is_finished());
    }

    /// The answer to `tail -f`: `text` now, then lines as
    /// [`Control::follow_lines`] brings them, until the client hangs up.
    /// False, and nothing done, when [`MAX_FOLLOWERS`] follow already.
    pub fn follow(&mut self, client: u64, text: String) -> bool {
        if self.followers() >= MAX_FOLLOWERS {
            return false;
        }
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == client) {
            c.phase = Phase::Following;
            c.output = text.into_bytes();
            c.flush();
        }
        self.clients.retain(|c| !c.is_finished());
        true
    }

    /// Clients following now.
    pub fn followers(&self) -> usize {
        self.clients.iter().filter(|c| c.is_follower()).count()
    }

    /// New lines for a follower, which `fill` puts in its buffer, sent in
    /// one go. `gone`: lines it missed before these (the program's history
    /// had let them go). See [`FollowOut`].
    pub fn feed(&mut self, client: u64, gone: u64, fill: impl FnOnce(&mut FollowOut)) {
        let Some(c) = self
            .clients
            .iter_mut()
            .find(|c| c.id == client && c.is_follower())
        else {
            return;
        };
        c.dropped += gone;
        fill(&mut FollowOut {
            output: &mut c.output,
            dropped: &mut c.dropped,
        });
        c.flush();
        self.clients.retain(|c| !c.is_finished());
    }

    /// The earliest time a client must be closed by.
    pub fn deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter(|c| c.phase != Phase::Busy && !c.is_follower())
            .map(|c| c.deadline)
            .chain(self.paused_until)
            .min()
    }

    /// Closes the clients whose time is up; ends a pause of the listener.
    pub fn on_timers(&mut self, now: Instant) {
        self.clients
            .retain(|c| c.phase == Phase::Busy || c.is_follower() || c.deadline > now);
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
    }

    /// Whether the client is still connected.
    pub fn has(&self, client: u64) -> bool {
        self.clients.iter().any(|c| c.id == client)
    }

    /// Clients connected now (for tests of the bounds).
    #[cfg(test)]
    fn client_count(&self) -> usize {
        self.clients.len()
    }
}

impl Drop for Control {
    /// Removes the socket, if the path still names the one made.
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Client {
    fn on_ready(&mut self, requests: &mut Vec<Request>) {
        match self.phase {
            Phase::Reading => {
                self.flush();
                if !self.is_finished() {
                    self.read(requests);
                }
            }
            Phase::Writing => self.flush(),
            Phase::Following => {
                self.flush();
                self.say_dropped();
                self.read_to_hang_up();
            }
            // A hang-up while the supervisor works: nobody to answer.
            Phase::Busy => self.close(),
        }
    }

    fn read(&mut self, requests: &mut Vec<Request>) {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return self.close(),
                Ok(n) => {
                    self.input.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                    if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                        self.input.truncate(end);
                        let line = String::from_utf8_lossy(&self.input).into_owned();
                        self.phase = Phase::Busy;
                        requests.push(Request {
                            client: self.id,
                            peer: self.peer,
                            line,
                        });
                        return;
                    }
                    if self.input.len() > MAX_REQUEST {
                        return self.finish("ERROR request too long\n".into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.close(),
            }
        }
    }

    /// A follower has nothing to say: what it sends is dropped, and its
    /// end (or an error) closes it.
    fn read_to_hang_up(&mut self) {
        let mut buf = [0u8; 256];
        match self.stream.read(&mut buf) {
            // Woken for room to write, not by the client.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            // Its hang-up, an error, or words: a follower has nothing to
            // say, and one that talks is closed, so that none can keep the
            // loop reading.
            _ => self.close(),
        }
    }

    /// A follower whose buffer had to drop lines, and has room again,
    /// is told how many at once, not only before the next line.
    fn say_dropped(&mut self) {
        if self.phase != Phase::Following || self.dropped == 0 {
            return;
        }
        if self.output.len() + MARKER_ROOM <= FOLLOW_BUFFER {
            let marker = Outcome::Done.tag(&messages::lines_dropped(self.dropped));
            self.output.extend_from_slice(marker.as_bytes());
            self.output.push(b'\n');
            self.dropped = 0;
            self.flush();
        }
    }

    fn is_follower(&self) -> bool {
        self.phase == Phase::Following
    }

    /// Sends `text` and closes once it is written.
    fn finish(&mut self, text: String) {
        self.phase = Phase::Writing;
        self.output = text.into_bytes();
        self.flush();
    }

    /// Writes what it can of the output; closes when all is written (or
    /// the greeting is, and the request is then read).
    fn flush(&mut self) {
        while !self.output.is_empty() {
            match write_nonblocking(&mut self.stream, &self.output) {
                Ok(0) => return self.close(),
                Ok(n) => {
                    self.output.drain(..n.min(self.output.len()));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.close(),
            }
        }
        if self.phase == Phase::Writing {
            self.close();
        }
    }

    /// Ends the connection; the client is then dropped (its fd closed).
    fn close(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.phase = Phase::Writing;
        self.output.clear();
    }

    fn is_finished(&self) -> bool {
        self.phase == Phase::Writing && self.output.is_empty()
    }
}

/// A write that never raises SIGPIPE at init (a client that has gone):
/// SIGPIPE is blocked, and one init raised itself is not forwarded, but
/// `send` with MSG_NOSIGNAL does not raise it at all.
fn write_nonblocking(stream: &mut UnixStream, bytes: &[u8]) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    send(
        stream.as_raw_fd(),
        bytes,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cocalc-init-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// One turn of a loop: what poll would say, approximated by "all".
    fn turn(control: &mut Control) -> Vec<Request> {
        let mut fds = Vec::new();
        control.poll_fds(&mut fds);
        let n = fds.len();
        drop(fds);
        control.on_ready(&vec![true; n], Instant::now())
    }

    #[test]
    fn a_request_line_comes_back_as_a_request_and_the_reply_closes() {
        let dir = scratch("roundtrip");
        let path = dir.join("s.sock");
        let mut control = Control::open(&path, "8").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode & !0o750, 0);
        let mut client = UnixStream::connect(&path).unwrap();
        assert!(turn(&mut control).is_empty());
        let mut reader = io::BufReader::new(client.try_clone().unwrap());
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("cocalc-init ") && greeting.ends_with(" grace 8\n"));
        client.write_all(b"status a b\n").unwrap();
        let requests = turn(&mut control);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].line, "status a b");
        assert_eq!(requests[0].peer.uid, geteuid().as_raw());
        control.reply(requests[0].client, "a RUNNING\n".into(), Instant::now());
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "a RUNNING\n");
        assert_eq!(control.client_count(), 0);
        drop(control);
        assert!(!path.exists(), "the socket is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_long_request_and_a_silent_client_are_closed() {
        let dir = scratch("bounds");
        let path = dir.join("s.sock");
        let mut control = Control::open(&path, "8").unwrap();
        let mut long = UnixStream::connect(&path).unwrap();
        let silent = UnixStream::connect(&path).unwrap();
        turn(&mut control);
        long.write_all(&vec![b'x'; MAX_REQUEST + 10]).unwrap();
        turn(&mut control);
        let mut text = String::new();
        long.read_to_string(&mut text).unwrap();
        assert!(text.ends_with("ERROR request too long\n"), "{text}");
        assert_eq!(control.client_count(), 1);
        control.on_timers(Instant::now() + READ_TIMEOUT + Duration::from_millis(1));
        assert_eq!(control.client_count(), 0);
        drop(silent);
        drop(control);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_seventeenth_client_is_turned_away() {
        let dir = scratch("many");
        let path = dir.join("s.sock");
        let mut control = Control::open(&path, "8").unwrap();
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS {
            held.push(UnixStream::connect(&path).unwrap());
        }
        turn(&mut control);
        assert_eq!(control.client_count(), MAX_CLIENTS);
        let mut extra = UnixStream::connect(&path).unwrap();
        turn(&mut control);
        let mut text = String::new();
        extra.read_to_string(&mut text).unwrap();
        assert_eq!(text, "ERROR too many clients\n");
        drop(control);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_stale_socket_is_replaced() {
        let dir = scratch("stale");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let path = dir.join("s.sock");
        // A socket nothing listens on any more.
        drop(UnixListener::bind(&path).unwrap());
        let live = Control::open(&path, "8").unwrap();
        // A live one is left alone.
        let e = Control::open(&path, "8").err().unwrap();
        assert!(e.0.contains("another init answers there"), "{}", e.0);
        drop(live);
        std::fs::write(&path, "").unwrap();
        let e = Control::open(&path, "8").err().unwrap();
        assert!(e.0.contains("not a socket"), "{}", e.0);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/tmp", &path).unwrap();
        let e = Control::open(&path, "8").err().unwrap();
        assert!(e.0.contains("not a socket"), "{}", e.0);
        std::fs::remove_file(&path).unwrap();
        // A folder others may write to is not init's own.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Control::open(&path, "8").err().unwrap();
        assert!(e.0.contains("is not init's own"), "{}", e.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
