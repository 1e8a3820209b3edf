//! How a process ended, as data. Turned into a shell-style number
//! (128+N for a signal) only at the edge, when init exits.

use core::fmt;

use crate::signals::signal_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(u8),
    Signal(i32),
}

impl ExitKind {
    /// From a raw `waitpid` status word; `None` for stop/continue reports.
    pub fn from_wait_status(status: i32) -> Option<ExitKind> {
        if libc::WIFEXITED(status) {
            Some(ExitKind::Code(
                u8::try_from(libc::WEXITSTATUS(status) & 0xff).unwrap_or(255),
            ))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitKind::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The status a shell would report: the code, or 128+N for signal N.
    pub fn shell_status(self) -> u8 {
        match self {
            ExitKind::Code(code) => code,
            ExitKind::Signal(sig) => u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(255),
        }
    }
}

impl ExitKind {
    /// The words before the code or the signal's name, in supervisord's
    /// `exit status 1` / `terminated by SIGSEGV`.
    pub fn lead(self) -> &'static str {
        match self {
            ExitKind::Code(_) => "exit status ",
            ExitKind::Signal(_) => "terminated by ",
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lead())?;
        match self {
            ExitKind::Code(code) => write!(f, "{code}"),
            ExitKind::Signal(sig) => f.write_str(&signal_name(*sig)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_status_adds_128_for_signals() {
        assert_eq!(ExitKind::Code(42).shell_status(), 42);
        assert_eq!(ExitKind::Signal(9).shell_status(), 137);
        assert_eq!(ExitKind::Signal(15).shell_status(), 143);
    }

    #[test]
    fn wait_status_words_decode() {
        assert_eq!(ExitKind::from_wait_status(3 << 8), Some(ExitKind::Code(3)));
        assert_eq!(ExitKind::from_wait_status(11), Some(ExitKind::Signal(11)));
        // A stopped child (0x7f in the low byte) is no exit.
        assert_eq!(ExitKind::from_wait_status((19 << 8) | 0x7f), None);
    }

    #[test]
    fn display_uses_supervisord_words() {
        assert_eq!(ExitKind::Code(1).to_string(), "exit status 1");
        assert_eq!(ExitKind::Signal(11).to_string(), "terminated by SIGSEGV");
    }
}
