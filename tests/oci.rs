//! The init under the OCI runtime that Docker and Kubernetes use: `runc`
//! runs a bundle whose root holds only the static build and a static
//! busybox (the layout of the `minimal` stage of examples/Dockerfile: the
//! init as /sbin/cocalc-init), with cocalc-init as the container's entry
//! point. What `docker exec`,
//! `docker stop` and an exec probe do is done here with `runc exec` and
//! `runc kill`.
//!
//! Where runc is there but cannot run a container (no cgroup access, say),
//! the test says why on standard error and is skipped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::*;

/// A running `runc run`, removed with its processes when dropped.
struct Container {
    id: String,
    run: Child,
    stderr: std::path::PathBuf,
}

impl Container {
    fn exec(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["20", "runc", "exec", &self.id])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The host pids of the container's processes.
    fn host_pids(&self) -> Vec<i32> {
        let out = Command::new("runc")
            .args(["ps", "--format", "json", &self.id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// The host pid of the container's PID 1, from `runc state`.
    fn init_host_pid(&self) -> i32 {
        let out = Command::new("runc")
            .args(["state", &self.id])
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout).to_string();
        let after = state.split("\"pid\":").nth(1).expect("runc state's pid");
        after
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a pid")
    }

    fn status_pid(&self, name: &str) -> Option<i32> {
        let out = self.exec(&[INIT, "status", name]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split("pid ")
            .nth(1)?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .status();
        let _ = self.run.wait();
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

/// Says on the test's standard error (not captured by the harness) why a
/// check did not run.
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "oci: SKIPPED: {why}");
}

/// `runc spec`'s config with our process, no terminal, a writable root.
fn configure(bundle: &Path, args: &[&str]) {
    let ok = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(bundle)
        .status()
        .unwrap()
        .success();
    assert!(ok, "runc spec failed");
    let path = bundle.join("config.json");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config = with_array(&config, "args", args);
    config = with_array(&config, "env", &["PATH=/bin"]);
    for (from, to) in [
        ("\"terminal\": true", "\"terminal\": false"),
        ("\"readonly\": true", "\"readonly\": false"),
    ] {
        assert!(config.contains(from), "runc spec has no {from}: {config}");
        config = config.replacen(from, to, 1);
    }
    std::fs::write(&path, config).unwrap();
}

/// `config` with the JSON array under `key` (its first) holding `values`.
fn with_array(config: &str, key: &str, values: &[&str]) -> String {
    let open = format!("\"{key}\": [");
    let start = config
        .find(&open)
        .unwrap_or_else(|| panic!("no {key}: {config}"));
    let end = start + config[start..].find(']').unwrap() + 1;
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!(
        "{}{open}{}]{}",
        &config[..start],
        quoted.join(", "),
        &config[end..]
    )
}

/// Starts the bundle with `runc run` in the foreground (its exit status is
/// the container's); None, said why, where runc cannot run it here.
fn run(bundle: &Path, tag: &str) -> Option<Container> {
    let id = format!("cocalc-init-test-{tag}-{}", std::process::id());
    let stderr = bundle.join("stderr");
    let run = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(bundle.join("stdout")).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut container = Container { id, run, stderr };
    let started = wait_until(secs(10.0), || {
        container.log().contains("started with pid 1")
            || container.run.try_wait().unwrap().is_some()
    });
    if !started || !container.log().contains("started with pid 1") {
        let why = format!(
            "runc cannot run a container here: {}{}",
            container.log().trim(),
            std::fs::read_to_string(bundle.join("stdout"))
                .unwrap_or_default()
                .trim()
        );
        skip(&why);
        return None;
    }
    Some(container)
}

fn bundle(s: &Scratch, args: &[&str]) -> std::path::PathBuf {
    let bundle = s.path("bundle");
    let root = bundle.join("rootfs");
    for dir in ["bin", "sbin", "proc", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(build_static(), root.join(INIT.trim_start_matches('/'))).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    configure(&bundle, args);
    bundle
}

fn runc_here() -> bool {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: .ci/run installs busybox-static"
    );
    if Command::new("runc").arg("--version").output().is_err() {
        // .ci/run installs it; a developer's machine may not have it.
        skip("runc is not installed (Debian package runc)");
        return false;
    }
    true
}

/// Where the `minimal` stage of examples/Dockerfile puts the init.
const INIT: &str = "/sbin/cocalc-init";

const DEAF: &str = "deaf=busybox sh -c 'trap \"\" TERM; while :; do busybox sleep 0.05; done'";
const MAIN: &[&str] = &[
    "busybox",
    "sh",
    "-c",
    "trap 'exit 7' TERM; while :; do busybox sleep 0.05; done",
];

#[test]
fn the_init_is_pid_1_of_a_runc_container_and_serves_exec_probes_and_stop() {
    if !runc_here() {
        return;
    }
    let s = Scratch::new("oci");
    let mut args = vec![
        INIT,
        "-l",
        "-",
        "-v",
        "-g",
        "2",
        "-p",
        "tick=busybox sleep 1000",
        "-p",
        DEAF,
        "--",
    ];
    args.extend_from_slice(MAIN);
    let bundle = bundle(&s, &args);
    let Some(mut c) = run(&bundle, "probe") else {
        return;
    };

    // PID 1 in the container.
    let comm = c.exec(&["/bin/busybox", "cat", "/proc/1/comm"]);
    assert_eq!(String::from_utf8_lossy(&comm.stdout).trim(), "cocalc-init");

    // docker exec leaves a background process behind: init reaps it.
    let left = c.exec(&["/bin/busybox", "sh", "-c", "busybox sleep 0.3 & exit 0"]);
    assert!(left.status.success(), "{left:?}");
    wait_for(secs(5.0), "the orphan reaped", || {
        c.log().contains("reaped unknown pid").then_some(())
    });
    std::thread::sleep(secs(0.5));
    // A zombie left to init: one whose parent is init. (The shells' own
    // `busybox sleep` children are theirs to reap.)
    let pids = c.host_pids();
    let init_pid = c.init_host_pid();
    assert!(
        pids.contains(&init_pid),
        "runc ps: {pids:?}, init {init_pid}"
    );
    // init, tick, deaf, main.
    assert!(pids.len() >= 4, "runc ps: {pids:?}");
    let zombies: Vec<i32> = pids
        .into_iter()
        .filter(|&pid| stat_of(pid).is_some_and(|p| p.state == 'Z' && p.ppid == init_pid))
        .collect();
    assert!(zombies.is_empty(), "zombies {zombies:?}\n{}", c.log());

    // The exec probe, and a restart through the control socket.
    // STARTING is "not yet" (3) until startsecs has passed, then 0.
    let probe = c.exec(&[INIT, "status", "tick"]);
    assert!(
        matches!(probe.status.code(), Some(0 | 3)),
        "{probe:?}\n{}",
        c.log()
    );
    wait_for(secs(5.0), "tick up for the exec probe", || {
        let probe = c.exec(&[INIT, "status", "tick"]);
        (probe.status.code() == Some(0)).then_some(())
    });
    let before = c.status_pid("tick").expect("tick's pid");
    let restart = c.exec(&[INIT, "restart", "tick"]);
    assert_eq!(restart.status.code(), Some(0), "{restart:?}");
    let after = c.status_pid("tick").expect("tick's new pid");
    assert_ne!(before, after);

    // docker stop: TERM to the container's init. main leaves with 7 at
    // once, the deaf program is killed at the end of the 2 s grace, and
    // the container ends with main's status.
    let t0 = Instant::now();
    let ok = Command::new("runc")
        .args(["kill", &c.id, "TERM"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = loop {
        if let Some(status) = c.run.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < secs(15.0), "no exit:\n{}", c.log());
        std::thread::sleep(secs(0.02));
    };
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(7), "{}", c.log());
    assert!(
        took >= secs(1.9) && took < secs(4.0),
        "the container ended after {took:?}, the grace is 2 s:\n{}",
        c.log()
    );
    let log = c.log();
    assert!(log.contains("killing 'deaf'"), "{log}");
    assert!(log.contains("exiting with status 7"), "{log}");
}

/// `runc run` to its end: (exit code, stdout, stderr).
fn run_to_exit(bundle: &Path, tag: &str) -> (i32, String, String) {
    let id = format!("cocalc-init-test-{tag}-{}", std::process::id());
    let out = Command::new("timeout")
        .args(["20", "runc", "run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc")
        .args(["delete", "-f", &id])
        .stderr(Stdio::null())
        .status();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A busybox-only root whose /etc has a user with supplementary groups and
/// an nsswitch.conf that names modules the static glibc cannot load; the
/// container may change uid (runc's default spec drops CAP_SETUID and
/// CAP_SETGID).
fn user_bundle(s: &Scratch, args: &[&str]) -> std::path::PathBuf {
    let bundle = bundle(s, args);
    let etc = bundle.join("rootfs/etc");
    std::fs::create_dir_all(&etc).unwrap();
    for (name, text) in [
        (
            "nsswitch.conf",
            "passwd: files systemd sss\ngroup: files systemd sss\n",
        ),
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\ntuser:x:4242:4242::/home/tuser:/bin/sh\n",
        ),
        (
            "group",
            "root:x:0:\ntuser:x:4242:\nextra:x:4243:tuser\nmore:x:4244:tuser\n",
        ),
    ] {
        std::fs::write(etc.join(name), text).unwrap();
    }
    let path = bundle.join("config.json");
    let config = std::fs::read_to_string(&path).unwrap();
    assert!(config.contains("\"CAP_KILL\","), "{config}");
    let config = config.replace(
        "\"CAP_KILL\",",
        "\"CAP_KILL\", \"CAP_SETUID\", \"CAP_SETGID\",",
    );
    std::fs::write(&path, config).unwrap();
    bundle
}

#[test]
fn user_accounts_come_from_the_roots_files_in_a_runc_container() {
    if !runc_here() {
        return;
    }
    let ids = "busybox grep -E '^(Uid|Groups):' /proc/self/status";
    let s = Scratch::new("oci-user");
    let bundle = user_bundle(
        &s,
        &[
            INIT,
            "-l",
            "-",
            "-o",
            "main.user=tuser",
            "--",
            "busybox",
            "sh",
            "-c",
            ids,
        ],
    );
    let (code, out, err) = run_to_exit(&bundle, "user");
    if code != 0 && err.contains("runc") && !err.contains("cocalc-init") {
        skip(&format!("runc cannot run a container here: {err}"));
        return;
    }
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Uid:\t4242\t4242\t4242\t4242"), "{out}\n{err}");
    assert!(out.contains("Groups:\t4242 4243 4244"), "{out}\n{err}");

    let s = Scratch::new("oci-uid");
    let bundle = user_bundle(
        &s,
        &[INIT, "--check", "-p", "a=busybox true", "-o", "a.user=4242"],
    );
    let (code, out, err) = run_to_exit(&bundle, "uid");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("user tuser (uid 4242, gid 4242, groups 4242,4243,4244)"),
        "{out}\n{err}"
    );

    let s = Scratch::new("oci-nouser");
    let bundle = user_bundle(&s, &[INIT, "-p", "a=busybox true", "-o", "a.user=nosuch"]);
    let (code, out, err) = run_to_exit(&bundle, "nouser");
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("no user 'nosuch' in the user database"),
        "{err}"
    );
}

#[test]
fn a_tmp_that_init_makes_is_everyones_as_on_every_system() {
    if !runc_here() {
        return;
    }
    let s = Scratch::new("oci-tmp");
    // The default log and control socket are under /tmp/.cocalc; this
    // root has no /tmp. The main command looks once init has made them.
    let look = "busybox sleep 1; busybox stat -c '%n %a' /tmp /tmp/.cocalc";
    let bundle = bundle(
        &s,
        &[
            INIT,
            "-q",
            "-p",
            "a=busybox sleep 100",
            "--",
            "busybox",
            "sh",
            "-c",
            look,
        ],
    );
    std::fs::remove_dir(bundle.join("rootfs/tmp")).unwrap();
    let (code, stdout, stderr) = run_to_exit(&bundle, "tmp");
    if stderr.contains("runc") && code != 0 && !stdout.contains("/tmp") {
        skip(&format!("runc cannot run a container here: {stderr}"));
        return;
    }
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("/tmp 1777"), "{stdout}");
    assert!(stdout.contains("/tmp/.cocalc 750"), "{stdout}");
    let log = std::fs::read_to_string(bundle.join("rootfs/tmp/.cocalc/cocalc-init.log")).unwrap();
    assert!(log.contains("spawned: 'a'"), "{log}");
}
