//! A monotonic instant (CLOCK_MONOTONIC), for timers: restarts, startsecs,
//! the grace. What std's `Instant` gave, without std.

use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    pub fn now() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid pointer to a local timespec. CLOCK_MONOTONIC
        // cannot fail on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Instant(Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        ))
    }

    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }

    /// Zero when `earlier` is in fact later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates rather than overflows: a timer centuries away is "never".
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_and_saturates() {
        let a = Instant::now();
        let b = Instant::now();
        assert!(b >= a);
        let later = a + Duration::from_secs(5);
        assert_eq!(later - a, Duration::from_secs(5));
        assert_eq!(a - later, Duration::ZERO);
        assert_eq!(a + Duration::MAX, Instant(Duration::MAX));
        assert_eq!(a.checked_add(Duration::MAX), None);
    }
}
