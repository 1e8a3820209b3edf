//! tini-style use: `cocalc-init -- COMMAND`, as PID 1 and as a plain child.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use nix::sys::signal::Signal;

fn status_of(mode: Mode, script: &str) -> i32 {
    let mut init = init(mode, "status").main(&["sh", "-c", script]).start();
    init.exit_code(secs(20.0))
}

#[test]
fn exit_status_is_passed_on() {
    for mode in MODES {
        assert_eq!(status_of(mode, "exit 0"), 0, "{mode:?}");
        assert_eq!(status_of(mode, "exit 1"), 1, "{mode:?}");
        assert_eq!(status_of(mode, "exit 42"), 42, "{mode:?}");
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for mode in MODES {
        assert_eq!(status_of(mode, "kill -KILL $$"), 137, "{mode:?}");
        assert_eq!(status_of(mode, "kill -SEGV $$"), 139, "{mode:?}");
    }
}

#[test]
fn a_missing_command_is_127_and_a_directory_126_with_one_stderr_line() {
    for (cmd, code, needle) in [
        (
            "no-such-command-xyz",
            127,
            "can't find command 'no-such-command-xyz'",
        ),
        ("/tmp", 126, "command at '/tmp' is a directory"),
    ] {
        for quiet in [true, false] {
            let s = Scratch::new("missing");
            let log = s.path("log");
            let mut args = vec!["-l", log.to_str().unwrap()];
            if quiet {
                args.push("-q");
            }
            args.extend(["--", cmd]);
            let os: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            let (status, stderr) = run_to_end(&os, secs(10.0));
            assert_eq!(status, code, "{cmd}");
            let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
            assert_eq!(lines.len(), 1, "quiet={quiet} {stderr:?}");
            if !quiet {
                // Not quiet: only log lines, and the one naming the command.
                assert!(
                    !stderr.lines().any(|l| l.starts_with("cocalc-init:")),
                    "{stderr}"
                );
            }
            assert!(std::fs::read_to_string(&log).unwrap().contains(needle));
        }
    }
}

#[test]
fn a_file_the_kernel_cannot_run_is_126_and_named() {
    // No `#!` line: the kernel refuses it (a shell would run it itself;
    // init, like supervisord, does not guess an interpreter).
    let s = Scratch::new("noexec");
    let script = s.path("job");
    std::fs::write(&script, "echo should-not-run\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = s.path("log");
    let args: Vec<&std::ffi::OsStr> = ["-q", "-l", log.to_str().unwrap(), "--"]
        .into_iter()
        .map(std::ffi::OsStr::new)
        .chain([script.as_os_str()])
        .collect();
    let (status, stderr) = run_to_end(&args, secs(10.0));
    assert_eq!(status, 126, "{stderr}");
    assert!(
        stderr.contains("couldn't run command") && stderr.contains("Exec format error"),
        "{stderr}"
    );
    assert!(!stderr.contains("should-not-run"), "{stderr}");
}

/// A main command that reports every signal it gets.
const TRAPS: &str = "for s in HUP USR1 INT TERM; do trap \"echo got $s >> {dir}/got\" $s; done; \
                     echo ready > {dir}/ready; \
                     while [ ! -e {dir}/stop ]; do sleep 0.05; done";

#[test]
fn signals_are_forwarded_to_the_main_command() {
    for mode in MODES {
        let mut init = init(mode, "fwd-main").main(&["bash", "-c", TRAPS]).start();
        let dir = init.scratch.0.clone();
        wait_for(secs(10.0), "ready", || {
            dir.join("ready").exists().then_some(())
        });
        for sig in [Signal::SIGHUP, Signal::SIGUSR1] {
            init.signal(sig);
            let name = &sig.as_str()[3..];
            wait_for(secs(10.0), name, || {
                std::fs::read_to_string(dir.join("got"))
                    .ok()?
                    .contains(&format!("got {name}"))
                    .then_some(())
            });
        }
        std::fs::write(dir.join("stop"), "").unwrap();
        assert_eq!(init.exit_code(secs(10.0)), 0, "{mode:?}");
    }
}

#[test]
fn term_and_int_reach_the_main_command_and_init_exits_with_its_status() {
    for mode in MODES {
        for (sig, name) in [(Signal::SIGTERM, "TERM"), (Signal::SIGINT, "INT")] {
            let script = format!(
                "trap 'echo got {name}; exit 7' {name}; echo ready > {{dir}}/ready; while :; do sleep 0.05; done"
            );
            let mut init = init(mode, "term-main")
                .main(&["bash", "-c", &script])
                .start();
            let dir = init.scratch.0.clone();
            wait_for(secs(10.0), "ready", || {
                dir.join("ready").exists().then_some(())
            });
            init.signal(sig);
            assert_eq!(init.exit_code(secs(10.0)), 7, "{mode:?} {name}");
            let log = init.log_text();
            assert!(
                log.contains(&format!("received SIG{name} indicating exit request")),
                "{log}"
            );
            assert!(log.contains("exited: main (exit status 7)"), "{log}");
        }
    }
}

#[test]
fn a_main_command_that_ignores_term_is_killed_after_the_grace() {
    let mut init = init(Mode::Pid1, "grace-main")
        .args(&["-g", "0.5"])
        .main(&[
            "sh",
            "-c",
            "trap '' TERM; echo ready > {dir}/ready; while :; do sleep 0.05; done",
        ])
        .start();
    let dir = init.scratch.0.clone();
    wait_for(secs(10.0), "ready", || {
        dir.join("ready").exists().then_some(())
    });
    assert_eq!(init.stop(), 137);
    let log = init.log_text();
    assert!(log.contains("waiting for main to die"), "{log}");
    assert!(log.contains("killing 'main' ("), "{log}");
}

#[test]
fn the_main_command_gets_the_terminal() {
    let s = Scratch::new("tty");
    let out = s.path("stat");
    let inner = format!(
        "{BIN} -q -l - -- sh -c 'exec cat /proc/self/stat > {}'",
        out.display()
    );
    let status = std::process::Command::new("timeout")
        .args(["20", "script", "-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let f: Vec<&str> = text[text.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    let (pid, pgrp, tpgid): (i32, i32, i32) = (
        text.split(' ').next().unwrap().parse().unwrap(),
        f[2].parse().unwrap(),
        f[5].parse().unwrap(),
    );
    assert_eq!(pgrp, pid, "the main command leads its own group");
    assert_eq!(tpgid, pgrp, "and that group is the terminal's foreground");
}

#[test]
fn init_never_writes_to_stdout_and_main_keeps_it() {
    let out = std::process::Command::new(BIN)
        .args(["-l", "-", "--", "echo", "hello"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("spawned: 'main'"));
}
