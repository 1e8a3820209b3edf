//! The notify socket (`ready=notify`): the datagram socket of systemd's
//! notify protocol, which sshd, postgres, redis and others already speak.
//! A program gets its name in `NOTIFY_SOCKET`; what arrives is read with
//! the sender's pid as the kernel tells it (SO_PASSCRED), never as the
//! message says.
//!
//! The socket has an abstract name: no file to make, nothing a `user=`
//! program lacks the rights to, nothing left behind. Idle, it is one more
//! fd in the loop's poll and costs no wake-up.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, recvmsg,
    setsockopt, socket, sockopt,
};
use nix::unistd::Pid;

/// The largest datagram read; a longer one is dropped whole.
pub const MAX_DATAGRAM: usize = 4096;

pub struct Notify {
    fd: OwnedFd,
    /// The value of `NOTIFY_SOCKET`: `@` and the abstract name.
    pub name: String,
}

/// One datagram: who sent it, and the fields a supervisor reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender: Pid,
    pub ready: bool,
    pub status: Option<String>,
}

/// What a read of the socket found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Message(Message),
    /// Longer than [`MAX_DATAGRAM`], or without the sender's credentials.
    Dropped,
}

impl Notify {
    /// Opens the socket of the program `owner` under a name of its own:
    /// init's pid and the time make it unique among the inits that share a
    /// network namespace.
    pub fn open(me: Pid, owner: &str) -> Result<Notify, Errno> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("cocalc-init/notify/{me}/{nanos}/{owner}");
        bind(fd.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes())?)?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        Ok(Notify {
            fd,
            name: format!("@{name}"),
        })
    }

    /// Reads the next datagram; None when there is none.
    pub fn receive(&self) -> Result<Option<Received>, Errno> {
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = loop {
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => break msg,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        };
        let (bytes, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
        let sender = msg.cmsgs().ok().and_then(|mut all| {
            all.find_map(|c| match c {
                ControlMessageOwned::ScmCredentials(cred) => Some(Pid::from_raw(cred.pid())),
                _ => None,
            })
        });
        let Some(sender) = sender.filter(|_| !truncated && bytes <= MAX_DATAGRAM) else {
            return Ok(Some(Received::Dropped));
        };
        let text = buf.get(..bytes).unwrap_or(&[]);
        Ok(Some(Received::Message(parse(sender, text))))
    }
}

impl AsFd for Notify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The fields of the protocol that init reads: `READY=1` and `STATUS=`,
/// one a line; every other is ignored.
pub fn parse(sender: Pid, text: &[u8]) -> Message {
    let mut message = Message {
        sender,
        ready: false,
        status: None,
    };
    for line in text.split(|&b| b == b'\n') {
        if line == b"READY=1" {
            message.ready = true;
        } else if let Some(status) = line.strip_prefix(b"STATUS=") {
            // Shown in a status row: one line, no control characters.
            let status: String = String::from_utf8_lossy(status)
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            message.status = Some(status);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{ControlMessage, sendmsg};
    use std::io::IoSlice;

    #[test]
    fn the_fields_init_reads() {
        let me = Pid::from_raw(7);
        let m = parse(me, b"STATUS=Ready to accept\nREADY=1\nMAINPID=9\n");
        assert_eq!(
            m,
            Message {
                sender: me,
                ready: true,
                status: Some("Ready to accept".into())
            }
        );
        let m = parse(me, b"READY=0\nSTATUS=a\x1bb");
        assert!(!m.ready);
        assert_eq!(m.status.as_deref(), Some("ab"));
    }

    #[test]
    fn a_datagram_arrives_with_its_senders_pid() {
        let notify = Notify::open(Pid::this(), "n").unwrap();
        assert!(notify.name.starts_with("@cocalc-init/notify/"));
        assert_eq!(notify.receive().unwrap(), None);
        let sender = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let to = UnixAddr::new_abstract(notify.name.trim_start_matches('@').as_bytes()).unwrap();
        let send = |text: &[u8]| {
            sendmsg(
                sender.as_raw_fd(),
                &[IoSlice::new(text)],
                &[] as &[ControlMessage],
                MsgFlags::empty(),
                Some(&to),
            )
            .unwrap();
        };
        send(b"READY=1");
        match notify.receive().unwrap() {
            Some(Received::Message(m)) => {
                assert_eq!(m.sender, Pid::this());
                assert!(m.ready);
            }
            other => panic!("{other:?}"),
        }
        send(&[b'x'; MAX_DATAGRAM + 1]);
        assert_eq!(notify.receive().unwrap(), Some(Received::Dropped));
        assert_eq!(notify.receive().unwrap(), None);
    }
}
