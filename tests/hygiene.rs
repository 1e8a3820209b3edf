//! Every child starts clean: empty signal mask, default dispositions, only
//! fds 0, 1, 2, its own session (programs) or process group (main) — even
//! when init itself was started with signals blocked or ignored and with
//! extra descriptors open.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::os::unix::process::CommandExt;

use common::*;
use nix::sys::signal::Signal;

/// Starts init the way a careless parent would: SIGTERM and SIGHUP ignored,
/// every signal blocked, fd 5 and fd 9 open without close-on-exec.
fn dirty(mode: Mode, tag: &str) -> Builder {
    init(mode, tag).setup(|c| unsafe {
        c.pre_exec(|| {
            nix::libc::signal(nix::libc::SIGTERM, nix::libc::SIG_IGN);
            nix::libc::signal(nix::libc::SIGHUP, nix::libc::SIG_IGN);
            // Ignored, the kernel would reap init's children for it.
            nix::libc::signal(nix::libc::SIGCHLD, nix::libc::SIG_IGN);
            let mut all: nix::libc::sigset_t = std::mem::zeroed();
            nix::libc::sigfillset(&mut all);
            nix::libc::sigprocmask(nix::libc::SIG_SETMASK, &all, std::ptr::null_mut());
            let fd = nix::libc::open(c"/dev/null".as_ptr(), nix::libc::O_RDONLY);
            nix::libc::dup2(fd, 5);
            nix::libc::dup2(fd, 9);
            Ok(())
        });
    })
}

fn fds_of(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    fds
}

fn host_pid_of(init: &Init, name: &str) -> i32 {
    // Find the child by its parent: init's host pid.
    let me = init.pid().as_raw();
    let _ = name;
    wait_for(secs(10.0), "a child of init", || {
        processes()
            .into_iter()
            .find(|p| p.ppid == me && p.state != 'Z')
            .map(|p| p.pid)
    })
}

/// What a program finds when it starts: no signal blocked or ignored, fds
/// 0, 1, 2 only, its own session, stdin /dev/null, output piped to init.
fn assert_clean_program(pid: i32, mode: Mode) {
    assert_eq!(
        status_field(pid, "SigBlk").unwrap(),
        "0000000000000000",
        "{mode:?}"
    );
    assert_eq!(
        status_field(pid, "SigIgn").unwrap(),
        "0000000000000000",
        "{mode:?}"
    );
    assert_eq!(fds_of(pid), [0, 1, 2], "{mode:?}");
    let st = stat_of(pid).unwrap();
    assert_eq!(st.session, st.pid, "a program leads its own session");
    assert_eq!(st.pgrp, st.pid);
    // stdin is /dev/null, stdout and stderr are pipes to init.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/0"))
            .unwrap()
            .to_str(),
        Some("/dev/null")
    );
    assert!(
        std::fs::read_link(format!("/proc/{pid}/fd/1"))
            .unwrap()
            .to_string_lossy()
            .starts_with("pipe:")
    );
}

#[test]
fn a_user_program_starts_as_clean_through_fork_and_exec() {
    // user= takes the fork path, not posix_spawn: the same clean state.
    for mode in MODES {
        let mut init = dirty(mode, "clean-user")
            .args(&["-p", "s=sleep 30", "-o", "s.user=nobody"])
            .start();
        init.wait_log("spawned: 's'");
        let pid = host_pid_of(&init, "s");
        assert_clean_program(pid, mode);
        assert_eq!(
            status_field(pid, "Uid").unwrap().split_whitespace().next(),
            Some("65534")
        );
        assert_eq!(init.stop(), 0, "{mode:?}");
    }
}

#[test]
fn programs_start_clean_even_from_a_dirty_parent() {
    for mode in MODES {
        let mut init = dirty(mode, "clean-program")
            .args(&["-p", "s=sleep 30"])
            .start();
        init.wait_log("spawned: 's'");
        let pid = host_pid_of(&init, "s");
        assert_clean_program(pid, mode);
        // Init cleared its inherited mask: SIGTERM still stops it.
        assert_eq!(init.stop(), 0, "{mode:?}");
    }
}

#[test]
fn the_main_command_starts_clean_in_its_own_group() {
    for mode in MODES {
        let mut init = dirty(mode, "clean-main")
            .args(&["-v"])
            .main(&["sleep", "30"])
            .start();
        init.wait_log("spawned: 'main'");
        let pid = host_pid_of(&init, "main");
        assert_eq!(status_field(pid, "SigBlk").unwrap(), "0000000000000000");
        assert_eq!(status_field(pid, "SigIgn").unwrap(), "0000000000000000");
        assert_eq!(fds_of(pid), [0, 1, 2]);
        let st = stat_of(pid).unwrap();
        assert_eq!(st.pgrp, st.pid, "the main command leads its own group");
        // SIGHUP was ignored by the parent, yet init still receives it and
        // passes it on: sleep dies of it, and init exits with its status.
        init.signal(Signal::SIGHUP);
        init.wait_log("received SIGHUP: forwarded to main");
        assert_eq!(init.exit_code(secs(10.0)), 129);
    }
}

#[test]
fn the_environment_passes_through_unchanged() {
    let init = init(Mode::Child, "env")
        .setup(|c| {
            c.env("COCALC_TEST_VAR", "kept as is");
        })
        .args(&["-p", "e=sh -c 'echo \"[$COCALC_TEST_VAR]\"'"])
        .start();
    init.wait_log("e stdout: [kept as is]");
}

#[test]
fn closed_standard_fds_are_reopened_on_dev_null() {
    // A parent that starts init with stdout closed: the main command must
    // not find one of init's own files (or nothing) as its stdout.
    let mut init = init(Mode::Child, "closed-fds")
        .setup(|c| unsafe {
            c.pre_exec(|| {
                nix::libc::close(1);
                Ok(())
            });
        })
        .main(&[
            "sh",
            "-c",
            "x=$(readlink /proc/$$/fd/1); echo \"$x\" > {dir}/fd1",
        ])
        .start();
    assert_eq!(init.exit_code(secs(10.0)), 0);
    assert_eq!(
        std::fs::read_to_string(init.scratch.path("fd1"))
            .unwrap()
            .trim(),
        "/dev/null"
    );
}

#[test]
fn a_child_gets_exactly_the_environment_init_got() {
    let mut init = init(Mode::Child, "environ")
        .setup(|c| {
            c.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("ONLY_THIS", "1");
        })
        .args(&["-p", "s=sleep 30"])
        .start();
    init.wait_log("spawned: 's'");
    let pid = init.spawned_pids("s")[0];
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut vars: Vec<&[u8]> = environ
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .collect();
    vars.sort();
    // Beside init's own: the two variables that lead a child to its init.
    let control = format!("COCALC_INIT_CONTROL={}", socket(&init).display());
    assert_eq!(
        vars,
        [
            control.as_bytes(),
            b"COCALC_INIT_PROGRAM=s",
            b"ONLY_THIS=1",
            b"PATH=/usr/bin:/bin"
        ]
    );
    assert_eq!(init.stop(), 0);
}

#[test]
fn a_tini_style_main_command_gets_exactly_the_environment_init_got() {
    let mut init = init(Mode::Child, "environ-main")
        .setup(|c| {
            c.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("ONLY_THIS", "1");
        })
        .args(&["--control", "none"])
        .main(&[
            "sh",
            "-c",
            "tr '\\0' '\\n' < /proc/$$/environ | sort > {dir}/environ",
        ])
        .start();
    assert_eq!(init.exit_code(secs(10.0)), 0);
    let text = std::fs::read_to_string(init.scratch.path("environ")).unwrap();
    // sh adds PWD of its own.
    let vars: Vec<&str> = text.lines().filter(|l| !l.starts_with("PWD=")).collect();
    assert_eq!(vars, ["ONLY_THIS=1", "PATH=/usr/bin:/bin"]);
}
