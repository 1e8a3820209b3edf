//! How a process ended, as data. Turned into a shell-style number
//! (128+N for a signal) only at the edge, when init exits.

use std::fmt;

use crate::signame::signal_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(u8),
    Signal(i32),
}

impl ExitKind {
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
    fn display_uses_supervisord_words() {
        assert_eq!(ExitKind::Code(1).to_string(), "exit status 1");
        assert_eq!(ExitKind::Signal(11).to_string(), "terminated by SIGSEGV");
    }
}
