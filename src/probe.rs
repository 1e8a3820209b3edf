//! Readiness probes for `ready=tcp:…` and `ready=exists:…`: run only while
//! a program is starting, at most every [`EVERY`], and never blocking the
//! loop — a connect is started non-blocking and its end is one more fd in
//! the loop's poll.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getsockopt, socket, sockopt,
};

/// How often a starting program is probed.
pub const EVERY: Duration = Duration::from_millis(100);
/// How long a connect may take before it counts as failed.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(1);

/// How a connect attempt stands.
#[derive(Debug)]
pub enum Connect {
    /// It succeeded at once.
    Done,
    /// Under way: the fd becomes writable when it has ended.
    Pending(OwnedFd),
    /// Refused, or no socket could be made: try again later.
    Failed,
}

/// Starts a connect to `addr`.
pub fn connect_to(addr: SocketAddr) -> Connect {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let Ok(fd) = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return Connect::Failed;
    };
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Connect::Done,
        Err(Errno::EINPROGRESS | Errno::EINTR) => Connect::Pending(fd),
        Err(_) => Connect::Failed,
    }
}

/// A pending connect whose fd polled ready: whether it succeeded.
pub fn connected(fd: &OwnedFd) -> bool {
    matches!(getsockopt(fd, sockopt::SocketError), Ok(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::net::TcpListener;

    fn settle(c: Connect) -> bool {
        match c {
            Connect::Done => true,
            Connect::Failed => false,
            Connect::Pending(fd) => {
                let mut fds = [PollFd::new(
                    std::os::fd::AsFd::as_fd(&fd),
                    PollFlags::POLLOUT,
                )];
                poll(&mut fds, PollTimeout::from(2000u16)).unwrap();
                connected(&fd)
            }
        }
    }

    #[test]
    fn a_listening_port_answers_and_a_closed_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(settle(connect_to(addr)));
        drop(listener);
        assert!(!settle(connect_to(addr)));
    }
}
