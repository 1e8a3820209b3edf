//! Per-program settings: supervisord's `[program:x]` keys, given as
//! `-o NAME.KEY=VALUE`, each checked here and laid over the defaults that
//! the command line's global flags (`-x`, `-s`, `-g`) make.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::destination::{self, Output, Place};
use crate::schedule::{self, Schedule};
use crate::signame::{signal_name, signal_number};
use crate::user::Account;
use crate::values::{ExitCodes, Policy, Role, Seconds};

/// What follows an exit that was not asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    /// Restarted unless the exit code is expected (the default).
    Unexpected,
    /// Restarted after every exit.
    Always,
    /// Never restarted.
    Never,
}

impl AutoRestart {
    fn word(self) -> &'static str {
        match self {
            AutoRestart::Unexpected => "unexpected",
            AutoRestart::Always => "true",
            AutoRestart::Never => "false",
        }
    }
}

/// When a start counts as done: RUNNING, the `success:` line, what
/// `after` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Up once it has stayed up `startsecs`.
    Startsecs,
    /// Up when a process of its session sends `READY=1` to `NOTIFY_SOCKET`.
    Notify,
    /// Up when a connection to this address succeeds.
    Tcp(SocketAddr),
    /// Up when this path exists.
    Exists(PathBuf),
    /// Up only once it has exited with an expected code.
    Exited,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ready::Startsecs => f.write_str("startsecs"),
            Ready::Notify => f.write_str("notify"),
            Ready::Tcp(addr) => write!(f, "tcp:{addr}"),
            Ready::Exists(path) => write!(f, "exists:{}", path.display()),
            Ready::Exited => f.write_str("exited"),
        }
    }
}

impl Ready {
    fn parse(text: &str) -> Result<Ready, String> {
        match text {
            "startsecs" => return Ok(Ready::Startsecs),
            "notify" => return Ok(Ready::Notify),
            "exited" => return Ok(Ready::Exited),
            _ => {}
        }
        if let Some(path) = text.strip_prefix("exists:") {
            if !path.starts_with('/') {
                return Err(format!("'{path}' is not an absolute path"));
            }
            return Ok(Ready::Exists(PathBuf::from(path)));
        }
        if let Some(target) = text.strip_prefix("tcp:") {
            let (host, port) = match target.rsplit_once(':') {
                Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
                None => ("127.0.0.1", target),
            };
            let port: u16 = port
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("'{port}' is not a port (1 to 65535)"))?;
            // An address, not a name: no resolver in the static binary, and
            // nothing for the loop to wait on.
            let ip: IpAddr = match host {
                "localhost" => IpAddr::from([127, 0, 0, 1]),
                host => host
                    .parse()
                    .map_err(|_| format!("'{host}' is not an IP address (or localhost)"))?,
            };
            let addr = SocketAddr::new(ip, port);
            return Ok(Ready::Tcp(addr));
        }
        Err(format!(
            "'{text}' is not startsecs, notify, exited, tcp:[HOST:]PORT or exists:PATH"
        ))
    }
}

/// One program's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub exitcodes: ExitCodes,
    pub startsecs: Seconds,
    /// Failed starts in a row tolerated before FATAL; None: never give up.
    pub startretries: Option<u32>,
    pub autorestart: AutoRestart,
    pub autostart: bool,
    /// What a stop sends; None: the shutdown's signal, or SIGTERM.
    pub stopsignal: Option<i32>,
    pub stopwaitsecs: Seconds,
    /// The working folder; None: init's (an init script: its own).
    pub directory: Option<PathBuf>,
    /// Added to init's environment, overriding, in order.
    pub environment: Vec<(String, String)>,
    pub user: Option<Account>,
    /// Its end for good ends init.
    pub essential: bool,
    /// Programs that must be up before each of its starts.
    pub after: Vec<String>,
    pub ready: Ready,
    /// Where its stdout and stderr go: init's log unless set.
    pub stdout: Output,
    pub stderr: Output,
    /// Its stderr is its stdout (one pipe, one destination).
    pub redirect_stderr: bool,
    /// `cron=` or `every=`: run at its times, not kept running.
    pub schedule: Option<Schedule>,
}

impl Settings {
    /// What a program has that no `-o` changed: the global flags' values.
    pub fn defaults(policy: &Policy) -> Settings {
        Settings {
            exitcodes: policy.exitcodes.clone(),
            startsecs: policy.startsecs,
            startretries: None,
            autorestart: AutoRestart::Unexpected,
            autostart: true,
            stopsignal: None,
            stopwaitsecs: policy.grace,
            directory: None,
            environment: Vec::new(),
            user: None,
            essential: false,
            after: Vec::new(),
            ready: Ready::Startsecs,
            stdout: Output::default(),
            stderr: Output::default(),
            redirect_stderr: false,
            schedule: None,
        }
    }

    /// `KEY VALUE` for each setting that differs from `base`, for
    /// `--check`.
    pub fn differences(&self, base: &Settings) -> Vec<String> {
        let mut lines = Vec::new();
        let mut differ = |key: Key, same: bool, value: &dyn fmt::Display| {
            if !same {
                lines.push(format!("{} {value}", key.name()));
            }
        };
        differ(
            Key::Exitcodes,
            self.exitcodes == base.exitcodes,
            &self.exitcodes,
        );
        differ(
            Key::Startsecs,
            self.startsecs == base.startsecs,
            &self.startsecs,
        );
        if let Some(n) = self.startretries {
            differ(Key::Startretries, false, &n);
        }
        differ(
            Key::Autorestart,
            self.autorestart == base.autorestart,
            &self.autorestart.word(),
        );
        differ(
            Key::Autostart,
            self.autostart == base.autostart,
            &self.autostart,
        );
        if let Some(sig) = self.stopsignal {
            differ(Key::Stopsignal, false, &signal_name(sig));
        }
        differ(
            Key::Stopwaitsecs,
            self.stopwaitsecs == base.stopwaitsecs,
            &self.stopwaitsecs,
        );
        if let Some(dir) = &self.directory {
            differ(Key::Directory, false, &dir.display());
        }
        for (key, value) in &self.environment {
            differ(Key::Environment, false, &format_args!("{key}={value}"));
        }
        if let Some(user) = &self.user {
            differ(
                Key::User,
                false,
                &format_args!(
                    "{} (uid {}, gid {}, groups {})",
                    user.name,
                    user.uid,
                    user.gid,
                    user.groups
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            );
        }
        differ(
            Key::Essential,
            self.essential == base.essential,
            &self.essential,
        );
        if !self.after.is_empty() {
            differ(Key::After, false, &self.after.join(","));
        }
        differ(Key::Ready, self.ready == base.ready, &self.ready);
        self.output_differences(base, &mut differ);
        if let Some(schedule) = &self.schedule {
            lines.push(schedule.to_string());
        }
        lines
    }

    /// The output keys' part of [`Settings::differences`].
    fn output_differences(
        &self,
        base: &Settings,
        differ: &mut impl FnMut(Key, bool, &dyn fmt::Display),
    ) {
        for (keys, output, default) in [
            (
                [
                    Key::StdoutLogfile,
                    Key::StdoutLogfileMaxbytes,
                    Key::StdoutLogfileBackups,
                ],
                &self.stdout,
                &base.stdout,
            ),
            (
                [
                    Key::StderrLogfile,
                    Key::StderrLogfileMaxbytes,
                    Key::StderrLogfileBackups,
                ],
                &self.stderr,
                &base.stderr,
            ),
        ] {
            let [place, max_bytes, backups] = keys;
            differ(place, output.place == default.place, &output.place);
            if matches!(output.place, Place::File(_)) {
                differ(
                    max_bytes,
                    output.max_bytes == default.max_bytes,
                    &output.max_bytes,
                );
                differ(backups, output.backups == default.backups, &output.backups);
            }
        }
        differ(
            Key::RedirectStderr,
            self.redirect_stderr == base.redirect_stderr,
            &self.redirect_stderr,
        );
    }
}

/// The keys `-o` takes: supervisord's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Exitcodes,
    Startsecs,
    Startretries,
    Autorestart,
    Autostart,
    Stopsignal,
    Stopwaitsecs,
    Directory,
    Environment,
    User,
    Essential,
    After,
    Ready,
    StdoutLogfile,
    StdoutLogfileMaxbytes,
    StdoutLogfileBackups,
    StderrLogfile,
    StderrLogfileMaxbytes,
    StderrLogfileBackups,
    RedirectStderr,
    Cron,
    Every,
}

pub const KEYS: [Key; 22] = [
    Key::Exitcodes,
    Key::Startsecs,
    Key::Startretries,
    Key::Autorestart,
    Key::Autostart,
    Key::Stopsignal,
    Key::Stopwaitsecs,
    Key::Directory,
    Key::Environment,
    Key::User,
    Key::Essential,
    Key::After,
    Key::Ready,
    Key::StdoutLogfile,
    Key::StdoutLogfileMaxbytes,
    Key::StdoutLogfileBackups,
    Key::StderrLogfile,
    Key::StderrLogfileMaxbytes,
    Key::StderrLogfileBackups,
    Key::RedirectStderr,
    Key::Cron,
    Key::Every,
];

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::Exitcodes => "exitcodes",
            Key::Startsecs => "startsecs",
            Key::Startretries => "startretries",
            Key::Autorestart => "autorestart",
            Key::Autostart => "autostart",
            Key::Stopsignal => "stopsignal",
            Key::Stopwaitsecs => "stopwaitsecs",
            Key::Directory => "directory",
            Key::Environment => "environment",
            Key::User => "user",
            Key::Essential => "essential",
            Key::After => "after",
            Key::Ready => "ready",
            Key::StdoutLogfile => "stdout_logfile",
            Key::StdoutLogfileMaxbytes => "stdout_logfile_maxbytes",
            Key::StdoutLogfileBackups => "stdout_logfile_backups",
            Key::StderrLogfile => "stderr_logfile",
            Key::StderrLogfileMaxbytes => "stderr_logfile_maxbytes",
            Key::StderrLogfileBackups => "stderr_logfile_backups",
            Key::RedirectStderr => "redirect_stderr",
            Key::Cron => "cron",
            Key::Every => "every",
        }
    }

    fn named(text: &str) -> Option<Key> {
        KEYS.into_iter().find(|k| k.name() == text)
    }

    /// Whether a child of `role` takes it: the main command's end ends
    /// init, so nothing about restarting it applies, and its output is
    /// init's own.
    pub fn applies_to(self, role: Role) -> bool {
        match role {
            Role::Program => true,
            Role::Main => matches!(
                self,
                Key::Directory | Key::Environment | Key::User | Key::Stopsignal | Key::After
            ),
        }
    }

    /// Whether it says where output goes: the main command's output is
    /// init's own (it keeps the terminal), so none of these applies.
    pub fn is_output(self) -> bool {
        matches!(
            self,
            Key::StdoutLogfile
                | Key::StdoutLogfileMaxbytes
                | Key::StdoutLogfileBackups
                | Key::StderrLogfile
                | Key::StderrLogfileMaxbytes
                | Key::StderrLogfileBackups
                | Key::RedirectStderr
        )
    }

    /// Whether it may be given more than once for one program.
    pub fn repeats(self) -> bool {
        matches!(self, Key::Environment | Key::After)
    }
}

/// `NAME.KEY=VALUE` split into its parts; the KEY is known. Spaces around
/// the `=` are dropped, as supervisord's files write `key = value`.
pub fn split(option: &str) -> Result<(&str, Key, &str), String> {
    let Some((target, value)) = option.split_once('=') else {
        return Err("expected NAME.KEY=VALUE".into());
    };
    // Names may hold '.', keys never do.
    let Some((name, key)) = target.trim_end().rsplit_once('.') else {
        return Err("expected NAME.KEY=VALUE".into());
    };
    let value = value.trim();
    if name.is_empty() {
        return Err("the NAME is empty".into());
    }
    let key = Key::named(key).ok_or_else(|| {
        let names: Vec<&str> = KEYS.iter().map(|k| k.name()).collect();
        format!("unknown key '{key}': the keys are {}", names.join(", "))
    })?;
    Ok((name, key, value))
}

/// Sets `key` from its text.
pub fn apply(settings: &mut Settings, key: Key, value: &str) -> Result<(), String> {
    match key {
        Key::Exitcodes => settings.exitcodes = ExitCodes::parse(value)?,
        Key::Startsecs => settings.startsecs = Seconds::parse(value)?,
        Key::Stopwaitsecs => settings.stopwaitsecs = Seconds::parse(value)?,
        Key::Startretries => {
            let n = value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("'{value}' is not a whole number >= 0"))?;
            settings.startretries = Some(n);
        }
        Key::Autorestart => {
            settings.autorestart = match value.to_ascii_lowercase().as_str() {
                "unexpected" => AutoRestart::Unexpected,
                word => match boolean(word) {
                    Some(true) => AutoRestart::Always,
                    Some(false) => AutoRestart::Never,
                    None => {
                        return Err(format!("'{value}' is not unexpected, true or false"));
                    }
                },
            };
        }
        Key::Autostart => settings.autostart = flag(value)?,
        Key::Essential => settings.essential = flag(value)?,
        Key::Stopsignal => {
            let sig = signal_number(value)
                .ok_or_else(|| format!("'{value}' is not a signal name or number"))?;
            settings.stopsignal = Some(sig);
        }
        Key::Directory => {
            if value.is_empty() {
                return Err("the directory is empty".into());
            }
            if !value.starts_with('/') {
                return Err(format!("'{value}' is not an absolute path"));
            }
            settings.directory = Some(PathBuf::from(value));
        }
        Key::Environment => {
            for (k, v) in environment(value)? {
                settings.environment.retain(|(old, _)| *old != k);
                settings.environment.push((k, v));
            }
        }
        Key::User => settings.user = Some(Account::lookup(value)?),
        Key::After => {
            for name in value.split(',') {
                if name.is_empty() {
                    return Err(format!("'{value}' has an empty name"));
                }
                if !settings.after.iter().any(|n| n == name) {
                    settings.after.push(name.to_string());
                }
            }
        }
        Key::Ready => settings.ready = Ready::parse(value)?,
        Key::StdoutLogfile => settings.stdout.place = Place::parse(value)?,
        Key::StderrLogfile => settings.stderr.place = Place::parse(value)?,
        Key::StdoutLogfileMaxbytes => settings.stdout.max_bytes = destination::byte_size(value)?,
        Key::StderrLogfileMaxbytes => settings.stderr.max_bytes = destination::byte_size(value)?,
        Key::StdoutLogfileBackups => settings.stdout.backups = destination::backups(value)?,
        Key::StderrLogfileBackups => settings.stderr.backups = destination::backups(value)?,
        Key::RedirectStderr => settings.redirect_stderr = flag(value)?,
        Key::Cron => settings.schedule = Some(schedule::parse_cron(value)?),
        Key::Every => settings.schedule = Some(schedule::parse_every(value)?),
    }
    Ok(())
}

/// supervisord's booleans.
fn boolean(word: &str) -> Option<bool> {
    match word {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn flag(value: &str) -> Result<bool, String> {
    boolean(&value.to_ascii_lowercase()).ok_or_else(|| format!("'{value}' is not true or false"))
}

/// supervisord's `KEY=VAL[,KEY=VAL…]`: a value may be quoted, with `"` or
/// `'`, to hold a comma; the quotes are not part of it.
pub fn environment(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text;
    loop {
        let Some((key, after)) = rest.split_once('=') else {
            return Err(format!(
                "'{}' is not KEY=VALUE",
                rest.split(',').next().unwrap_or(rest)
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(',') || key.contains(char::is_whitespace) {
            return Err(format!("'{key}' is not a variable name"));
        }
        let (value, after) = match after.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let inner = after.get(1..).unwrap_or("");
                let Some(end) = inner.find(quote) else {
                    return Err(format!("the value of {key} has no closing {quote}"));
                };
                let rest_after = inner.get(end + 1..).unwrap_or("");
                let rest_after = rest_after.trim_start();
                if !(rest_after.is_empty() || rest_after.starts_with(',')) {
                    return Err(format!("text after the quoted value of {key}"));
                }
                (inner.get(..end).unwrap_or(""), rest_after)
            }
            _ => match after.find(',') {
                Some(comma) => (
                    after.get(..comma).unwrap_or(""),
                    after.get(comma..).unwrap_or(""),
                ),
                None => (after, ""),
            },
        };
        pairs.push((key.to_string(), value.to_string()));
        match after.strip_prefix(',') {
            Some(more) if !more.trim().is_empty() => rest = more,
            Some(_) => return Ok(pairs),
            None => return Ok(pairs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        crate::values::test_policy()
    }

    fn set(key: &str, value: &str) -> Result<Settings, String> {
        let mut s = Settings::defaults(&policy());
        let option = format!("p.{key}={value}");
        let (_, key, value) = split(&option)?;
        apply(&mut s, key, value)?;
        Ok(s)
    }

    #[test]
    fn spaces_around_the_equals_sign_are_dropped() {
        let (name, key, value) = split("x.stopwaitsecs = 55 ").unwrap();
        assert_eq!((name, key, value), ("x", Key::Stopwaitsecs, "55"));
        let (_, key, value) = split("x.environment =A=1, B=2").unwrap();
        assert_eq!((key, value), (Key::Environment, "A=1, B=2"));
    }

    #[test]
    fn options_split_at_the_last_dot_before_the_first_equals() {
        assert_eq!(
            split("web.v2.stopsignal=QUIT").unwrap(),
            ("web.v2", Key::Stopsignal, "QUIT")
        );
        assert_eq!(
            split("w.environment=A=1,B=2").unwrap(),
            ("w", Key::Environment, "A=1,B=2")
        );
        assert!(split("web").is_err());
        assert!(split("web=1").is_err());
        assert!(split(".user=x").is_err());
        assert!(
            split("web.colour=red")
                .unwrap_err()
                .contains("unknown key 'colour'")
        );
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(set("startretries", "3").unwrap().startretries, Some(3));
        assert!(set("startretries", "-1").is_err());
        assert_eq!(
            set("autorestart", "true").unwrap().autorestart,
            AutoRestart::Always
        );
        assert_eq!(
            set("autorestart", "FALSE").unwrap().autorestart,
            AutoRestart::Never
        );
        assert!(set("autorestart", "maybe").is_err());
        assert!(!set("autostart", "false").unwrap().autostart);
        assert!(set("essential", "yes").unwrap().essential);
        assert!(set("essential", "2").is_err());
        assert_eq!(set("stopsignal", "QUIT").unwrap().stopsignal, Some(3));
        assert_eq!(set("stopsignal", "sigquit").unwrap().stopsignal, Some(3));
        assert_eq!(
            set("stopsignal", "RTMIN+2").unwrap().stopsignal,
            Some(libc::SIGRTMIN() + 2)
        );
        assert!(set("stopsignal", "NOPE").is_err());
        assert_eq!(set("stopsignal", "9").unwrap().stopsignal, Some(9));
        assert!(set("stopwaitsecs", "-1").is_err());
        assert!(set("directory", "").is_err());
        assert!(set("directory", "srv").is_err());
        assert!(set("exitcodes", "0,300").is_err());
        assert!(set("user", "").is_err());
        assert_eq!(set("after", "a,b").unwrap().after, ["a", "b"]);
        assert!(set("after", "a,,b").is_err());
        assert_eq!(set("ready", "notify").unwrap().ready, Ready::Notify);
        assert_eq!(set("ready", "exited").unwrap().ready, Ready::Exited);
        assert_eq!(
            set("ready", "tcp:5432").unwrap().ready,
            Ready::Tcp("127.0.0.1:5432".parse().unwrap())
        );
        assert_eq!(
            set("ready", "tcp:127.0.0.2:80").unwrap().ready,
            Ready::Tcp("127.0.0.2:80".parse().unwrap())
        );
        assert_eq!(
            set("ready", "tcp:[::1]:80").unwrap().ready,
            Ready::Tcp("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            set("ready", "exists:/run/x.pid").unwrap().ready,
            Ready::Exists("/run/x.pid".into())
        );
        assert_eq!(
            set("ready", "tcp:localhost:80").unwrap().ready,
            Ready::Tcp("127.0.0.1:80".parse().unwrap())
        );
        for bad in [
            "tcp:0",
            "tcp:http",
            "tcp:70000",
            "tcp:db.example:5432",
            "exists:rel",
            "soon",
            "",
        ] {
            assert!(set("ready", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_in_supervisords_syntax() {
        assert_eq!(
            environment(r#"PYTHONUNBUFFERED="1",APP_ENV="prod""#).unwrap(),
            [
                ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
                ("APP_ENV".to_string(), "prod".to_string())
            ]
        );
        assert_eq!(
            environment(r#"A="x,y", B=plain,C='q'"#).unwrap(),
            [
                ("A".to_string(), "x,y".to_string()),
                ("B".to_string(), "plain".to_string()),
                ("C".to_string(), "q".to_string())
            ]
        );
        assert_eq!(
            environment("E=").unwrap(),
            [("E".to_string(), String::new())]
        );
        assert_eq!(
            environment("A=b=c").unwrap(),
            [("A".to_string(), "b=c".to_string())]
        );
        for bad in ["NOEQUALS", "=1", "A=\"open", "A=\"x\"y", "A=1,B", "A B=1"] {
            assert!(environment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_later_environment_value_overrides_an_earlier_one() {
        let mut s = Settings::defaults(&policy());
        apply(&mut s, Key::Environment, "A=1,B=2").unwrap();
        apply(&mut s, Key::Environment, "A=3").unwrap();
        assert_eq!(
            s.environment,
            [
                ("B".to_string(), "2".to_string()),
                ("A".to_string(), "3".to_string())
            ]
        );
    }

    #[test]
    fn check_shows_only_what_differs() {
        let base = Settings::defaults(&policy());
        assert!(base.differences(&base).is_empty());
        let mut s = base.clone();
        apply(&mut s, Key::Stopsignal, "QUIT").unwrap();
        apply(&mut s, Key::Autorestart, "false").unwrap();
        apply(&mut s, Key::Environment, "A=1").unwrap();
        assert_eq!(
            s.differences(&base),
            ["autorestart false", "stopsignal SIGQUIT", "environment A=1"]
        );
    }
}
