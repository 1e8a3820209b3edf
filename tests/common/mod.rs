//! Harness for the integration tests: runs the real `cocalc-init` binary,
//! as a plain child or as PID 1 of a fresh PID namespace, waits on its log
//! with deadlines, and kills whatever it started when the test ends.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_cocalc-init");

/// A private scratch folder, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("cocalc-init-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// A plain child of the test.
    Child,
    /// PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`).
    Pid1,
}

/// A running cocalc-init.
pub struct Init {
    pub child: Child,
    pub mode: Mode,
    pub scratch: Scratch,
    pub log: PathBuf,
    status: Option<ExitStatus>,
    stderr_path: PathBuf,
}

pub struct Builder {
    mode: Mode,
    tag: String,
    args: Vec<String>,
    main: Vec<String>,
    log_arg: bool,
    log_path: Option<PathBuf>,
    setup: Option<Box<dyn FnMut(&mut Command)>>,
}

impl Builder {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, list: &[&str]) -> Self {
        self.args.extend(list.iter().map(|s| s.to_string()));
        self
    }

    /// The command after `--`.
    pub fn main(mut self, list: &[&str]) -> Self {
        self.main = list.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Do not pass `-q -l SCRATCH/log`: the test gives its own log flags.
    pub fn own_log(mut self) -> Self {
        self.log_arg = false;
        self
    }

    /// The test's own log flags name this file: `Init::log` follows it.
    pub fn log_at(mut self, path: &Path) -> Self {
        self.log_arg = false;
        self.log_path = Some(path.to_path_buf());
        self
    }

    pub fn setup(mut self, f: impl FnMut(&mut Command) + 'static) -> Self {
        self.setup = Some(Box::new(f));
        self
    }

    pub fn start(self) -> Init {
        self.start_in(None)
    }

    /// Starts with `{dir}` in arguments replaced by the scratch folder.
    pub fn start_in(mut self, scratch: Option<Scratch>) -> Init {
        let scratch = scratch.unwrap_or_else(|| Scratch::new(&self.tag));
        let log = self.log_path.clone().unwrap_or_else(|| scratch.path("log"));
        let dir = scratch.0.to_string_lossy().to_string();
        let mut argv: Vec<String> = Vec::new();
        if self.log_arg {
            argv.extend([
                "-q".to_string(),
                "-l".to_string(),
                log.to_string_lossy().to_string(),
            ]);
        }
        // Each init its own control socket: tests run many at once.
        if !self.args.iter().any(|a| a.starts_with("--control")) {
            argv.extend([
                "--control".to_string(),
                scratch.path("control.sock").to_string_lossy().to_string(),
            ]);
        }
        argv.extend(self.args.iter().map(|a| a.replace("{dir}", &dir)));
        if !self.main.is_empty() {
            argv.push("--".into());
            argv.extend(self.main.iter().map(|a| a.replace("{dir}", &dir)));
        }
        let mut cmd = match self.mode {
            Mode::Child => Command::new(BIN),
            Mode::Pid1 => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--mount-proc", BIN]);
                c
            }
        };
        cmd.args(&argv);
        let stderr_path = scratch.path("stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .process_group(0);
        if let Some(f) = self.setup.as_mut() {
            f(&mut cmd);
        }
        let child = cmd.spawn().unwrap();
        Init {
            child,
            mode: self.mode,
            scratch,
            log,
            status: None,
            stderr_path,
        }
    }
}

pub fn init(mode: Mode, tag: &str) -> Builder {
    Builder {
        mode,
        tag: format!("{tag}-{mode:?}"),
        args: Vec::new(),
        main: Vec::new(),
        log_arg: true,
        log_path: None,
        setup: None,
    }
}

/// Polls `f` every 20 ms until it gives `Some`, or panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 10 ms for up to `limit`; whether it came true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

impl Init {
    /// The pid of cocalc-init itself, as this test sees it.
    pub fn pid(&self) -> Pid {
        let outer = self.child.id() as i32;
        match self.mode {
            Mode::Child => Pid::from_raw(outer),
            Mode::Pid1 => wait_for(Duration::from_secs(5), "the namespace's init", || {
                let text =
                    std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).ok()?;
                text.split_whitespace()
                    .next()?
                    .parse()
                    .ok()
                    .map(Pid::from_raw)
            }),
        }
    }

    /// The log as text; bytes that are not UTF-8 show as U+FFFD.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Waits until the log holds `needle` at least `count` times.
    pub fn wait_log_n(&self, needle: &str, count: usize, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= count {
                return text;
            }
            if Instant::now() > end {
                panic!(
                    "timed out after {limit:?} waiting for {count}× {needle:?} in the log:\n{text}\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_n(needle, 1, Duration::from_secs(10))
    }

    /// Sends `sig` to init, once it is up: once SIGTERM shows as blocked in
    /// its /proc status, its signalfd is in place and no signal is lost.
    pub fn signal(&self, sig: Signal) {
        let pid = self.pid().as_raw();
        wait_for(secs(10.0), "init to be up", || {
            let blocked = u64::from_str_radix(&status_field(pid, "SigBlk")?, 16).ok()?;
            (blocked & (1 << (nix::libc::SIGTERM - 1)) != 0).then_some(())
        });
        kill(self.pid(), sig).unwrap();
    }

    /// Waits for init to exit; panics (and the drop kills it) after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            if Instant::now() > end {
                panic!(
                    "init did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM (once init has it blocked, i.e. is up) and returns the
    /// exit code, waiting at most 10 s.
    pub fn stop(&mut self) -> i32 {
        self.signal(Signal::SIGTERM);
        self.exit_code(secs(10.0))
    }

    /// The exit code, from init (or unshare, which passes it on).
    pub fn exit_code(&mut self, limit: Duration) -> i32 {
        let status = self.wait_exit(limit);
        status
            .code()
            .unwrap_or_else(|| panic!("init died by a signal: {status:?}\n{}", self.log_text()))
    }

    /// Pids named in `spawned: 'NAME' with pid N` lines (as init sees them).
    pub fn spawned_pids(&self, name: &str) -> Vec<i32> {
        let prefix = format!("spawned: '{name}' with pid ");
        self.log_text()
            .lines()
            .filter_map(|l| {
                l.split_once(&prefix)
                    .and_then(|(_, n)| n.trim().parse().ok())
            })
            .collect()
    }

    /// Host pids and states of init's children, zombies (`'Z'`) among them.
    pub fn children(&self) -> Vec<(i32, char)> {
        let me = self.pid().as_raw();
        processes()
            .into_iter()
            .filter(|p| p.ppid == me)
            .map(|p| (p.pid, p.state))
            .collect()
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        if self.mode == Mode::Child {
            // Programs live in their own sessions: kill them by pid.
            let names: Vec<String> = self
                .log_text()
                .lines()
                .filter_map(|l| {
                    l.split_once("spawned: '")
                        .and_then(|(_, r)| r.split_once('\''))
                        .map(|(n, _)| n.to_string())
                })
                .collect();
            for name in names {
                for pid in self.spawned_pids(&name) {
                    let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        // As PID 1, killing init (unshare's child) ends the whole namespace.
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
        if self.mode == Mode::Pid1 {
            if let Ok(text) =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
            {
                for pid in text.split_whitespace().filter_map(|p| p.parse().ok()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub pgrp: i32,
    pub session: i32,
    pub tpgid: i32,
}

pub fn stat_of(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(Proc {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        tpgid: f.get(5)?.parse().ok()?,
    })
}

pub fn processes() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat_of)
        .collect()
}

/// Host pids of processes whose command line contains `marker` (but not
/// init itself, whose arguments may hold it too).
pub fn pids_with(marker: &str) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains(marker) && !c.contains(BIN)
                })
                .unwrap_or(false)
        })
        .map(|p| p.pid)
        .collect()
}

/// A field of /proc/PID/status, e.g. `SigBlk`.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// A command that runs a copy of cocalc-init as the user nobody, from
/// `scratch` (made world-readable): nobody may not reach the build folder
/// (a clone in root's 0700 home). Add the arguments.
pub fn as_nobody(scratch: &Scratch) -> Command {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = scratch.path("cocalc-init-copy");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.current_dir(&scratch.0)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "timeout",
            "10",
        ])
        .arg(bin);
    cmd
}

/// Runs cocalc-init to completion with `args`, returning (code, stderr).
pub fn run_to_end(args: &[&OsStr], limit: Duration) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let end = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
            let _ = child.wait();
            panic!("cocalc-init {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Both modes, for tests that must hold as PID 1 and as a plain child.
pub const MODES: [Mode; 2] = [Mode::Child, Mode::Pid1];

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The static busybox that the no-libc roots hold.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds the static binary (`cargo static`) into its own target folder,
/// so that the build does not wait on the lock of the one running these
/// tests; the tests that need it share it.
pub fn build_static() -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = PathBuf::from(root).join("target/static-test");
    let ok = Command::new(env!("CARGO"))
        .current_dir(root)
        .arg("static")
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_TERM_QUIET", "true")
        .status()
        .unwrap()
        .success();
    assert!(ok, "cargo static failed");
    target.join("x86_64-unknown-linux-gnu/release/cocalc-init")
}

pub fn socket(init: &Init) -> PathBuf {
    init.scratch.path("control.sock")
}

/// Runs `cocalc-init VERB…` against `init`: (exit code, stdout, stderr).
pub fn ctl(init: &Init, words: &[&str]) -> (i32, String, String) {
    ctl_at(&socket(init), words)
}

pub fn ctl_at(path: &Path, words: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .arg("30")
        .arg(BIN)
        .args(words)
        .arg("--control")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The state word of NAME in a status answer.
pub fn find_state(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

pub fn state_of(status: &str, name: &str) -> String {
    find_state(status, name).unwrap_or_else(|| panic!("{name} not in {status}"))
}

/// Waits until `status NAME` says STATE (the socket may not be up yet).
pub fn wait_state(init: &Init, name: &str, state: &str) -> String {
    wait_for(secs(10.0), &format!("{name} {state}"), || {
        let (_, out, _) = ctl(init, &["status", name]);
        (find_state(&out, name)? == state).then_some(out)
    })
}

/// A command line that must be a usage error: exit 2, two lines on
/// stderr, the first holding `needle`.
pub fn refused(args: &[&str], needle: &str) {
    let (code, stderr) = run_to_end(
        &args.iter().map(OsStr::new).collect::<Vec<_>>(),
        Duration::from_secs(10),
    );
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 2, "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
}

/// `cocalc-init --check ARGS`: its exit status, stdout and stderr.
pub fn check_args(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
