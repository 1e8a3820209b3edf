//! Signals by name and by number, as people write them: a leaf (it
//! imports nothing of ours) that the log's wording, the settings and the
//! verbs share.

use nix::sys::signal::Signal;

/// A signal given by name (`HUP`, `SIGHUP`, `RTMIN+3`, `SIGRTMAX-1`, any
/// case) or by number (`1` to SIGRTMAX).
pub fn signal_number(text: &str) -> Option<i32> {
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Ok(n) = text.parse::<i32>() {
        return (1..=rtmax).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |rest: &str| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        rest.parse::<i32>().ok()
    };
    let rt = if let Some(rest) = name.strip_prefix("RTMIN") {
        Some(rtmin.checked_add(offset(rest)?)?)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        Some(rtmax.checked_add(offset(rest)?)?)
    } else {
        None
    };
    if let Some(n) = rt {
        return (rtmin..=rtmax).contains(&n).then_some(n);
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .ok()
        .map(|s| s as i32)
}

/// `SIGTERM`, `SIGRTMIN+3`, or `signal 40` for a number with no name.
pub fn signal_name(sig: i32) -> String {
    if let Ok(signal) = Signal::try_from(sig) {
        return signal.as_str().to_string();
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
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("HUP"), Some(libc::SIGHUP));
        assert_eq!(signal_number("sigusr1"), Some(libc::SIGUSR1));
        assert_eq!(signal_number("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("RTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(signal_number("SIGRTMAX-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(signal_number("RTMIN"), Some(libc::SIGRTMIN()));
        for bad in [
            "", "0", "65", "-1", "BOGUS", "RTMIN+99", "RTMIN-1", "RTMINx",
        ] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(signal_name(200), "signal 200");
    }
}
