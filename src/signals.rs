//! Signal set-up and classification.
//!
//! Signals reach the main loop through a `signalfd`, read in the same
//! `poll` as the program pipes. We chose it over signal-hook's self-pipe:
//! the signal number arrives as data (real-time signals included, which
//! nix's `Signal` enum cannot name), no handler runs asynchronously, and no
//! system call in the loop is interrupted with EINTR. The price is that
//! every signal init wants is *blocked*, and a blocked mask is inherited
//! across `exec` — so `spawn` gives every child an empty mask.
//!
//! Blocking is also what makes signals reach PID 1 at all: the kernel drops
//! a signal for an init whose disposition is the default, but never one
//! that is blocked.
//!
//! Left alone on purpose: the synchronous fault signals (SEGV, BUS, ILL,
//! FPE, TRAP, ABRT, SYS) keep their default action so that a real fault in
//! init is not hidden; TSTP, TTIN, TTOU are ignored, since forwarding them
//! would stop every program; KILL and STOP cannot be caught.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::sys::{self, Fd};

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

const FAULTS: [i32; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGSYS,
];
const IGNORED: [i32; 3] = [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

pub fn classify(sig: i32) -> Action {
    match sig {
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => Action::Shutdown(sig),
        libc::SIGCHLD => Action::Reap,
        _ => Action::Forward(sig),
    }
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
            || IGNORED.contains(&s)
            || (s > libc::SIGSYS && s < rtmin))
    })
}

/// The signalfd and the mask behind it. Dropping it does not unblock.
pub struct Signals {
    fd: Fd,
}

impl Signals {
    /// Ignores the job-control signals, blocks the handled ones and opens
    /// the signalfd.
    ///
    /// Of the dispositions a parent may have left ignored, only SIGCHLD's
    /// matters to init — ignored, the kernel would reap init's children
    /// for it — and is set back to the default. Any other handled signal
    /// still arrives: the kernel queues a blocked signal even when it is
    /// ignored, since the disposition might change before it is
    /// unblocked. Children get every disposition at its default from
    /// `spawn`. (Asking about all 64 cost 64 system calls at each start.)
    /// init installs no handler.
    pub fn install() -> sys::Result<Signals> {
        for sig in IGNORED {
            set_disposition(sig, libc::SIG_IGN);
        }
        if is_ignored(libc::SIGCHLD) {
            set_disposition(libc::SIGCHLD, libc::SIG_DFL);
        }
        // SAFETY: plain libc calls on a local, initialised sigset_t; we are
        // single-threaded, so changing the process mask is sound.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in handled() {
                libc::sigaddset(&mut set, sig);
            }
            if libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut()) != 0 {
                return Err(sys::Error::last());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(sys::Error::last());
            }
            Ok(Signals {
                fd: Fd::from_raw(fd),
            })
        }
    }

    /// Appends every pending signal, and the pid that sent it (0 from the
    /// kernel), to `out`. Reads up to 16 at a time and stops at the first
    /// read that did not fill the buffer: the usual lone signal costs one
    /// read, not a second one to learn that nothing follows.
    pub fn read_pending(&self, out: &mut Vec<Received>) {
        const BATCH: usize = 16;
        let size = core::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: signalfd_siginfo is plain data; zeroes are valid.
            let mut infos: [libc::signalfd_siginfo; BATCH] = unsafe { core::mem::zeroed() };
            // SAFETY: the kernel writes whole records, at most BATCH.
            let n = unsafe { libc::read(self.fd.raw(), infos.as_mut_ptr().cast(), size * BATCH) };
            let Ok(n) = usize::try_from(n) else {
                // EAGAIN (nothing pending), or EINTR: the next wake retries.
                return;
            };
            let count = n / size;
            for info in infos.iter().take(count) {
                if let Ok(signal) = i32::try_from(info.ssi_signo) {
                    out.push(Received {
                        signal,
                        sender: i32::try_from(info.ssi_pid).unwrap_or(0),
                    });
                }
            }
            if count < BATCH {
                return;
            }
        }
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

#[cfg(test)]
fn handled_contains(sig: i32) -> bool {
    handled().any(|s| s == sig)
}

impl Signals {
    /// The signalfd, for `poll`.
    pub fn raw_fd(&self) -> i32 {
        self.fd.raw()
    }
}

/// A set of every signal, 1 to 64, for `posix_spawnattr_setsigdefault`:
/// the child then sets each to its default before exec. glibc's own
/// `sigfillset` and `sigaddset` leave out its two private real-time signals,
/// and its spawn sets those to *ignored* in the child unless they are in
/// this set — an ignored signal survives exec, so they must be here.
pub fn every_signal() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is the empty set.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: on Linux the set is at least 64 bits, and its first 64 bits
    // are signals 1 to 64, in order (the kernel's own layout).
    unsafe {
        (&mut set as *mut libc::sigset_t)
            .cast::<u64>()
            .write(u64::MAX)
    };
    set
}

// The layout below is the kernel's on these two; others need their own.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("signals.rs: add the kernel's struct sigaction for this architecture");

/// The kernel's `struct sigaction` on x86_64 and aarch64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets SIG_DFL or SIG_IGN through the kernel itself: glibc refuses to
/// touch its two private real-time signals, yet a parent may have left
/// them ignored, and an ignored signal survives exec. KILL and STOP
/// refuse; that is fine.
fn set_disposition(sig: i32, handler: usize) {
    let action = KernelSigaction {
        handler,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a valid kernel sigaction and no old action.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &action as *const KernelSigaction,
            core::ptr::null_mut::<KernelSigaction>(),
            core::mem::size_of::<u64>(),
        );
    }
}

fn is_ignored(sig: i32) -> bool {
    let mut old = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction that only reads the current action into `old`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            core::ptr::null::<KernelSigaction>(),
            &mut old as *mut KernelSigaction,
            core::mem::size_of::<u64>(),
        )
    };
    rc == 0 && old.handler == libc::SIG_IGN
}

/// `SIGTERM`, `SIGRTMIN+3`, or `signal 40` for a number with no name.
pub fn signal_name(sig: i32) -> String {
    let known = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if sig == rtmin {
        "SIGRTMIN".to_string()
    } else if sig > rtmin && sig <= rtmax {
        format!("SIGRTMIN+{}", sig - rtmin)
    } else {
        format!("signal {sig}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_signals_are_read_whole_past_one_batch() {
        // On a thread of its own, with a signalfd of its own: the mask is
        // per thread, and raise() sends to the calling thread.
        std::thread::spawn(|| {
            let sig = libc::SIGRTMIN() + 5;
            // SAFETY: plain sigset and mask calls on this thread only; the
            // fd is wrapped at once.
            let signals = unsafe {
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
                let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
                assert!(fd >= 0);
                Signals {
                    fd: Fd::from_raw(fd),
                }
            };
            let mut out = Vec::new();
            signals.read_pending(&mut out);
            assert!(out.is_empty());
            // Real-time signals queue: 40 sent, 40 to read, in 3 batches.
            for _ in 0..40 {
                // SAFETY: raising a blocked signal at this thread.
                unsafe { libc::raise(sig) };
            }
            signals.read_pending(&mut out);
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
        for sig in [1, 9, 15, 31, 34, 64] {
            // SAFETY: a valid set.
            assert_eq!(unsafe { libc::sigismember(&set, sig) }, 1, "{sig}");
        }
        // 32 and 33 too, read as the bits the kernel will see.
        // SAFETY: the first 64 bits of a valid set.
        let bits = unsafe { (&set as *const libc::sigset_t).cast::<u64>().read() };
        assert_eq!(bits, u64::MAX);
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
        // Every real-time signal is forwarded.
        assert!((libc::SIGRTMIN()..=libc::SIGRTMAX()).all(handled_contains));
    }

    #[test]
    fn faults_and_job_control_are_not_handled() {
        for s in FAULTS.iter().chain(IGNORED.iter()) {
            assert!(!handled_contains(*s), "{}", signal_name(*s));
        }
        assert!(!handled_contains(libc::SIGKILL) && !handled_contains(libc::SIGSTOP));
    }

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(signal_name(200), "signal 200");
    }
}
