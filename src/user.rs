//! The account a `user=` program runs as, looked up once at start in the
//! user and group databases (nix wraps getpwnam, getpwuid and
//! getgrouplist): a name or uid that is not there is a usage error, not a
//! spawn that fails for ever.
//!
//! Users and groups come from `/etc/passwd` and `/etc/group` only, as runc
//! and gosu read them: whatever `/etc/nsswitch.conf` names besides
//! `files` is left alone. The image's nsswitch.conf is written for the
//! image's own shared glibc; the static build cannot load such a module
//! (glibc's static dlopen crashes in it: `files systemd`, Debian's
//! default, killed init with SIGSEGV at start), and a directory service
//! that needs a daemon or the network has no place in an init's start.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Once;

use nix::unistd::{Gid, Uid, User, getgrouplist};

/// A user as a start needs it: who to become, and what to tell the
/// program in `HOME`, `USER` and `LOGNAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups from the group database, the primary one
    /// included (as `login` and `su` set them).
    pub groups: Vec<Gid>,
    pub home: PathBuf,
}

impl Account {
    /// `text`: a user name, or a uid.
    pub fn lookup(text: &str) -> Result<Account, String> {
        files_only();
        if text.is_empty() {
            return Err("the user is empty".into());
        }
        let found = match text.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(text),
        };
        let user = match found {
            Ok(Some(user)) => user,
            Ok(None) => return Err(format!("no user '{text}' in the user database")),
            Err(e) => {
                return Err(format!(
                    "cannot look up the user '{text}': {}",
                    std::io::Error::from(e)
                ));
            }
        };
        let c_name = CString::new(user.name.as_bytes())
            .map_err(|_| format!("the user name of '{text}' holds a NUL byte"))?;
        let groups = getgrouplist(&c_name, user.gid).map_err(|e| {
            format!(
                "cannot read the groups of '{}': {}",
                user.name,
                std::io::Error::from(e)
            )
        })?;
        Ok(Account {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
        })
    }

    /// Whether starting as this account changes who the program is: init
    /// running as this very user starts it as it is.
    pub fn is_other_than_init(&self) -> bool {
        self.uid != Uid::effective() || self.gid != Gid::effective()
    }
}

/// Pins glibc's user and group lookups to the `files` module, once,
/// before the first lookup (after it, glibc would have read
/// nsswitch.conf's own list). `initgroups` is the database
/// getgrouplist reads when nsswitch.conf names it.
fn files_only() {
    static PINNED: Once = Once::new();
    PINNED.call_once(|| {
        for database in [c"passwd", c"group", c"initgroups"] {
            crate::glibc::nss_files_only(database);
        }
    });
}

/// Whether init may become another user: root, and (in a container
/// that dropped capabilities) holding CAP_SETUID and CAP_SETGID. Without
/// them every start would fail; this says why, once, at start. Where
/// /proc cannot be read, the uid alone decides.
pub fn may_change_user() -> Result<(), String> {
    let me = Uid::effective();
    if !me.is_root() {
        return Err(format!(
            "init runs as uid {me}, not as root: it cannot start a program as another user"
        ));
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    match effective {
        Some(caps) if caps & CAP_SETUID_SETGID != CAP_SETUID_SETGID => Err(
            "init lacks CAP_SETUID or CAP_SETGID (dropped by the container's runtime): \
             it cannot start a program as another user"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// CAP_SETGID is capability 6, CAP_SETUID 7.
const CAP_SETUID_SETGID: u64 = (1 << 6) | (1 << 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_by_uid() {
        let by_name = Account::lookup("root").unwrap();
        assert_eq!(by_name.uid, Uid::from_raw(0));
        assert_eq!(by_name.gid, Gid::from_raw(0));
        assert!(by_name.groups.contains(&Gid::from_raw(0)));
        assert_eq!(Account::lookup("0").unwrap(), by_name);
    }

    #[test]
    fn an_unknown_or_empty_user_is_refused() {
        assert!(
            Account::lookup("no-such-user-here")
                .unwrap_err()
                .contains("no user 'no-such-user-here'")
        );
        assert_eq!(Account::lookup("").unwrap_err(), "the user is empty");
        assert!(Account::lookup("4000000000").is_err());
    }
}
