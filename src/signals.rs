//! Signal set-up and classification.
//!
//! Signals reach the main loop through nix's `SignalFd`, read in the same
//! `poll` as the program pipes: the signal number and its sender arrive as
//! data, every queued instance of a real-time signal is kept, no handler
//! runs asynchronously, and no system call in the loop is interrupted with
//! EINTR. The price is that every signal init wants is *blocked*, and a
//! blocked mask is inherited across `exec` — so `spawn` gives every child
//! an empty mask and the default disposition for every signal.
//!
//! signal-hook, the design card's other choice, was measured and left out:
//! its registry copies its whole table on every registration, so taking the
//! ~50 signals an init must take (the catchable standard ones and the
//! real-time ones) cost 330–580 µs and ~2.9 M instructions on this kind of
//! machine (19 signals: 112 µs) — more than all the rest of start-up. A
//! signalfd takes them in one call.
//!
//! Blocking is also what makes signals reach PID 1 at all: the kernel drops
//! a signal for an init whose disposition is the default, but never one
//! that is blocked.
//!
//! nix's `Signal` enum has no real-time signals, so this module (with
//! `spawn`, the only one that uses libc directly) sets their bits on a raw
//! `sigset_t` and sends them with `libc::kill`. Combining `SigSet`s with
//! nix's operators would drop those bits: the sets here are built whole.
//!
//! Left alone on purpose: the synchronous fault signals (SEGV, BUS, ILL,
//! FPE, TRAP, ABRT, SYS) keep their default action so that a real fault in
//! init is not hidden; TSTP, TTIN, TTOU are ignored, since forwarding them
//! would stop every program; KILL and STOP cannot be caught.

use std::io;
use std::mem::{MaybeUninit, offset_of, size_of};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::status::ExitKind;

/// What the loop does with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// TERM, INT, QUIT: shut everything down with this signal.
    Shutdown(i32),
    /// CHLD: reap.
    Reap,
    /// Everything else init receives: pass it on to the programs.
    Forward(i32),
}

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGCONT: i32 = libc::SIGCONT;

const FAULTS: [i32; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
];
const IGNORED: [Signal; 3] = [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU];

pub fn classify(sig: i32) -> Action {
    match sig {
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => Action::Shutdown(sig),
        libc::SIGCHLD => Action::Reap,
        _ => Action::Forward(sig),
    }
}

/// The signals people send by hand to mean something (supervisord's
/// "reload", a log reopen, a dump): their arrival is worth an INFO line.
/// The rest (SIGWINCH at every terminal resize, say) are said at debug.
pub fn is_sent_on_purpose(sig: i32) -> bool {
    matches!(sig, libc::SIGHUP | libc::SIGUSR1 | libc::SIGUSR2)
}

/// Every signal number init takes through the signalfd: all but the
/// uncatchable, the faults, the ignored job-control ones, and the two
/// real-time signals glibc keeps for itself.
fn handled() -> impl Iterator<Item = i32> {
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    (1..=rtmax).filter(move |&s| {
        !(s == libc::SIGKILL
            || s == libc::SIGSTOP
            || FAULTS.contains(&s)
            || IGNORED.iter().any(|&i| i as i32 == s)
            || (s > libc::SIGSYS && s < rtmin))
    })
}

/// A set of signal numbers, real-time ones included.
fn set_of(signals: impl Iterator<Item = i32>) -> SigSet {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set before sigaddset adds to it
    // (a number glibc does not take is refused and left out), so the set
    // is initialised, as from_sigset_t_unchecked requires.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in signals {
            libc::sigaddset(set.as_mut_ptr(), sig);
        }
        SigSet::from_sigset_t_unchecked(set.assume_init())
    }
}

/// The signalfd and the mask behind it. Dropping it does not unblock.
pub struct Signals {
    fd: SignalFd,
    /// Where records are read: made once, so that a read costs no
    /// zeroing of a fresh buffer.
    buf: Box<[u8; RECORD * BATCH]>,
}

impl Signals {
    /// Ignores the job-control signals, blocks the handled ones and opens
    /// the signalfd.
    ///
    /// Of the dispositions a parent may have left ignored, only SIGCHLD's
    /// matters to init — ignored, the kernel would reap init's children
    /// for it — and is set back to the default. Any other handled signal
    /// still arrives: the kernel queues a blocked signal even when it is
    /// ignored. Children get every disposition at its default from `spawn`.
    pub fn install() -> io::Result<Signals> {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: neither action installs a handler: no code of ours ever
        // runs inside a signal.
        unsafe {
            for sig in IGNORED {
                nix::sys::signal::sigaction(sig, &ignore)?;
            }
            nix::sys::signal::sigaction(Signal::SIGCHLD, &default)?;
        }
        let set = set_of(handled());
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals {
            fd,
            buf: Box::new([0; RECORD * BATCH]),
        })
    }

    /// Appends every pending signal, and the pid that sent it (0 from the
    /// kernel), to `out`. Reads up to [`BATCH`] records at a time and stops
    /// at a read that did not fill the buffer: a lone signal costs one
    /// read, not a second one to learn that nothing follows. (nix's
    /// `read_signal` reads one record a call.)
    pub fn read_pending(&mut self, out: &mut Vec<Received>) -> Result<(), Errno> {
        let buf = &mut *self.buf;
        loop {
            let n = match nix::unistd::read(&self.fd, buf) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            };
            let records = buf.get(..n).unwrap_or(&[]).chunks_exact(RECORD);
            let count = records.len();
            out.extend(records.map(Received::from_record));
            if count < BATCH {
                return Ok(());
            }
        }
    }
}

/// The size of one signalfd record, and how many are read at once.
const RECORD: usize = size_of::<libc::signalfd_siginfo>();
const BATCH: usize = 16;

/// A field of a signalfd record, read from its bytes.
fn field(record: &[u8], offset: usize) -> u32 {
    record
        .get(offset..offset + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

impl Received {
    fn from_record(record: &[u8]) -> Received {
        Received {
            signal: i32::try_from(field(record, offset_of!(libc::signalfd_siginfo, ssi_signo)))
                .unwrap_or(0),
            sender: i32::try_from(field(record, offset_of!(libc::signalfd_siginfo, ssi_pid)))
                .unwrap_or(0),
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A signal read from the signalfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    /// Who sent it. A SIGPIPE or SIGXFSZ that init's own write raised shows
    /// init's own pid here: such a signal is about init, not for programs.
    pub sender: i32,
}

/// Sends `sig` to `target`, a kill(2) target: a pid, -pgid, or -1 for
/// every process init may signal.
pub fn send(target: Pid, sig: i32) -> Result<(), Errno> {
    match Signal::try_from(sig) {
        Ok(signal) => nix::sys::signal::kill(target, signal),
        // nix's Signal cannot name a real-time signal.
        // SAFETY: kill with plain integers.
        Err(_) => Errno::result(unsafe { libc::kill(target.as_raw(), sig) }).map(drop),
    }
}

/// What one `waitpid(-1, WNOHANG)` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child that ended, and how.
    Child(Pid, ExitKind),
    /// Children remain, none has ended.
    NoneEnded,
    /// No child is left.
    NoChildren,
    Failed(Errno),
}

/// Reaps one ended child, if any. Here rather than through nix's
/// `waitpid`, which decodes the status with its `Signal` enum: for a child
/// killed by a real-time signal it reaps the child and then fails with
/// EINVAL, and the pid of the dead program is lost with it.
pub fn reap_one() -> Reaped {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: a valid pointer to a local int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            let how = if libc::WIFEXITED(status) {
                ExitKind::Code(u8::try_from(libc::WEXITSTATUS(status) & 0xff).unwrap_or(255))
            } else if libc::WIFSIGNALED(status) {
                ExitKind::Signal(libc::WTERMSIG(status))
            } else {
                // A stop or continue report: not an end.
                continue;
            };
            return Reaped::Child(Pid::from_raw(pid), how);
        }
        if pid == 0 {
            return Reaped::NoneEnded;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::ECHILD => return Reaped::NoChildren,
            e => return Reaped::Failed(e),
        }
    }
}

/// In a child made by fork, before exec: every signal back to its default
/// disposition (an ignored one would survive exec) and none blocked —
/// what the spawn attributes do for a child of `posix_spawn`.
pub fn reset_for_exec() -> Result<(), Errno> {
    // The kernel's own struct sigaction, for the system call: glibc's
    // sigaction refuses its two private real-time signals (32 and 33),
    // and one of those left ignored would survive exec.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a valid struct of the kernel's layout
        // (8-byte signal set) and writes nothing (no old action asked for);
        // SIG_DFL installs no handler.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &raw const default,
                std::ptr::null_mut::<KernelSigaction>(),
                size_of::<u64>(),
            );
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// In a child made by fork, before exec: every fd from `first` up is
/// marked close-on-exec (closing them would also close the pipe that
/// reports an exec failure, which is close-on-exec already). Where the
/// kernel has no close_range (before 5.11) or a filter refuses it, each
/// fd up to the limit is marked one by one.
pub fn close_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range and fcntl take plain integers; they only set a
    // flag on fds that are open, and report EBADF for the others.
    unsafe {
        let rc = libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if rc == 0 {
            return Ok(());
        }
        let limit = libc::sysconf(libc::_SC_OPEN_MAX).clamp(0, 1 << 20);
        let first = libc::c_long::from(first);
        for fd in first..limit {
            let fd = libc::c_int::try_from(fd).unwrap_or(libc::c_int::MAX);
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// A set of every signal, 1 to 64, for the spawn attribute "set these to
/// their default": the child then resets each before exec. glibc's own
/// `sigfillset` and `sigaddset` leave out its two private real-time
/// signals, and its spawn sets those to *ignored* in the child unless they
/// are in this set — an ignored signal survives exec, so they must be here.
pub fn every_signal() -> SigSet {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set. On Linux its first 64 bits
    // are signals 1 to 64, in order (the kernel's own layout), so writing
    // all ones there fills it, glibc's two included.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.as_mut_ptr().cast::<u64>().write(u64::MAX);
        SigSet::from_sigset_t_unchecked(set.assume_init())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queued_real_time_signal_is_read() {
        // On a thread of its own, with a signalfd of its own: the mask is
        // per thread, and raise() sends to the calling thread.
        std::thread::spawn(|| {
            let sig = libc::SIGRTMIN() + 5;
            let set = set_of([sig].into_iter());
            set.thread_block().unwrap();
            let mut signals = Signals {
                fd: SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
                    .unwrap(),
                buf: Box::new([0; RECORD * BATCH]),
            };
            let mut out = Vec::new();
            signals.read_pending(&mut out).unwrap();
            assert!(out.is_empty());
            // Real-time signals queue: 40 sent, 40 to read.
            for _ in 0..40 {
                // SAFETY: raising a blocked signal at this thread.
                unsafe { libc::raise(sig) };
            }
            signals.read_pending(&mut out).unwrap();
            assert_eq!(out.len(), 40);
            assert!(
                out.iter()
                    .all(|r| r.signal == sig && r.sender == std::process::id() as i32)
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn every_signal_holds_glibcs_private_ones_too() {
        let set = every_signal();
        // SAFETY: the first 64 bits of a valid set, read as the kernel will.
        let bits = unsafe { (set.as_ref() as *const libc::sigset_t).cast::<u64>().read() };
        assert_eq!(bits, u64::MAX);
    }

    #[test]
    fn real_time_signals_are_in_the_handled_set() {
        let set = set_of(handled());
        assert!(set.contains(Signal::SIGHUP) && !set.contains(Signal::SIGSEGV));
        // The bits past the standard signals: SIGRTMIN.. are there.
        // (SigSet's own iterator cannot show them.)
        let handled: Vec<i32> = handled().collect();
        assert!((libc::SIGRTMIN()..=libc::SIGRTMAX()).all(|s| handled.contains(&s)));
    }

    #[test]
    fn shutdown_signals() {
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
            assert_eq!(classify(s), Action::Shutdown(s));
        }
        assert_eq!(classify(libc::SIGCHLD), Action::Reap);
    }

    #[test]
    fn the_forwarded_set_is_the_documented_one() {
        let expected = [
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGPIPE,
            libc::SIGALRM,
            libc::SIGSTKFLT,
            libc::SIGCONT,
            libc::SIGURG,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGWINCH,
            libc::SIGIO,
            libc::SIGPWR,
        ];
        let forwarded: Vec<i32> = handled()
            .filter(|&s| matches!(classify(s), Action::Forward(_)) && s < libc::SIGRTMIN())
            .collect();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(forwarded, want);
    }

    #[test]
    fn faults_and_job_control_are_not_handled() {
        let handled: Vec<i32> = handled().collect();
        for s in FAULTS
            .iter()
            .copied()
            .chain(IGNORED.iter().map(|&s| s as i32))
        {
            assert!(!handled.contains(&s), "{}", crate::signame::signal_name(s));
        }
        assert!(!handled.contains(&libc::SIGKILL) && !handled.contains(&libc::SIGSTOP));
    }
}
