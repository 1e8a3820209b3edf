//! Supervised programs: restarts, backoff, spawn errors, init scripts and
//! output capture.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

#[test]
fn unexpected_exits_restart_expected_ones_do_not() {
    for mode in MODES {
        let init = init(mode, "restart")
            .args(&["-s", "0", "-b", "0.2"])
            .args(&[
                "-p",
                "one=sh -c 'exit 1'",
                "-p",
                "sig=sh -c 'kill -USR1 $$'",
            ])
            .args(&["-p", "zero=sh -c 'exit 0'", "-p", "two=sh -c 'exit 2'"])
            .start();
        init.wait_log_n("exited: one (exit status 1; not expected)", 3, secs(10.0));
        let log = init.wait_log_n(
            "exited: sig (terminated by SIGUSR1; not expected)",
            3,
            secs(10.0),
        );
        assert!(
            log.contains("WARN exited: one (exit status 1; not expected)"),
            "{log}"
        );
        assert_eq!(
            log.matches("INFO exited: zero (exit status 0; expected)")
                .count(),
            1,
            "{log}"
        );
        assert_eq!(
            log.matches("INFO exited: two (exit status 2; expected)")
                .count(),
            1,
            "{log}"
        );
        assert_eq!(init.spawned_pids("zero").len(), 1, "{mode:?}");
        assert_eq!(init.spawned_pids("two").len(), 1, "{mode:?}");
    }
}

#[test]
fn a_death_by_a_real_time_signal_is_seen_and_restarted() {
    // 37 is SIGRTMIN+3 with glibc. A program killed by it must be reaped
    // as that program, not lost as an unknown pid.
    for mode in MODES {
        let mut init = init(mode, "rt-death")
            .args(&["-s", "0", "-b", "0.1", "-p", "rt=sh -c 'kill -37 $$'"])
            .main(&["sh", "-c", "sleep 0.3; kill -37 $$"])
            .start();
        init.wait_log_n(
            "exited: rt (terminated by SIGRTMIN+3; not expected)",
            2,
            secs(10.0),
        );
        assert_eq!(init.exit_code(secs(10.0)), 128 + 37, "{mode:?}");
        assert!(
            init.log_text()
                .contains("exited: main (terminated by SIGRTMIN+3)"),
            "{}",
            init.log_text()
        );
    }
}

#[test]
fn custom_exit_codes() {
    let init = init(Mode::Child, "exitcodes")
        .args(&["-x", "3,0", "-s", "0", "-b", "0.1"])
        .args(&["-p", "three=sh -c 'exit 3'", "-p", "two=sh -c 'exit 2'"])
        .start();
    init.wait_log_n("exited: two (exit status 2; not expected)", 2, secs(10.0));
    let log = init.log_text();
    assert_eq!(
        log.matches("exited: three (exit status 3; expected)")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn quick_exits_with_an_expected_code_are_not_failures() {
    // supervisord would call a 0 after less than startsecs a failed start.
    let init = init(Mode::Child, "quick-ok")
        .args(&["-s", "10", "-p", "quick=true"])
        .start();
    init.wait_log("exited: quick (exit status 0; expected)");
    std::thread::sleep(secs(0.3));
    assert_eq!(init.spawned_pids("quick").len(), 1);
}

/// Milliseconds since midnight of a log line's stamp.
fn stamp_ms(line: &str) -> i64 {
    let t = &line[11..23];
    let h: i64 = t[0..2].parse().unwrap();
    let m: i64 = t[3..5].parse().unwrap();
    let s: i64 = t[6..8].parse().unwrap();
    let ms: i64 = t[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[test]
fn backoff_doubles_from_one_second_up_to_the_cap() {
    let init = init(Mode::Child, "backoff")
        .args(&["-s", "5", "-b", "2", "-p", "fail=false"])
        .start();
    let log = init.wait_log_n("spawned: 'fail'", 5, secs(15.0));
    let times: Vec<i64> = log
        .lines()
        .filter(|l| l.contains("spawned: 'fail'"))
        .map(stamp_ms)
        .collect();
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, want) in gaps.iter().zip([1000, 2000, 2000, 2000]) {
        assert!(*gap >= want - 20 && *gap < want + 400, "gaps {gaps:?}");
    }
    assert!(
        log.contains("backoff: fail starts again in 1 seconds"),
        "{log}"
    );
    assert!(
        log.contains("backoff: fail starts again in 2 seconds"),
        "{log}"
    );
}

#[test]
fn a_run_past_startsecs_is_restarted_at_once_and_logged_as_success() {
    let init = init(Mode::Child, "long-run")
        .args(&["-s", "0.3", "-p", "long=sh -c 'sleep 0.5; exit 1'"])
        .start();
    let log = init.wait_log_n("spawned: 'long'", 3, secs(10.0));
    assert!(
        log.contains("success: long entered RUNNING state, process has stayed up for > than 0.3 seconds (startsecs)"),
        "{log}"
    );
    let times: Vec<i64> = log
        .lines()
        .filter(|l| l.contains("spawned: 'long'"))
        .map(stamp_ms)
        .collect();
    for w in times.windows(2) {
        assert!(w[1] - w[0] < 800, "restarted late: {times:?}");
    }
    assert!(!log.contains("backoff: long"), "{log}");
}

#[test]
fn a_program_that_cannot_run_is_retried_and_others_carry_on() {
    let s = Scratch::new("spawnerr");
    let noexec = s.write("noexec", "#!/bin/sh\n");
    std::fs::create_dir(s.path("adir")).unwrap();
    let dir = s.0.to_string_lossy().to_string();
    let init = init(Mode::Child, "spawnerr")
        .args(&["-p", "missing=no-such-program-xyz --flag"])
        .args(&["-p", &format!("noexec={}", noexec.display())])
        .args(&["-p", &format!("adir={dir}/adir")])
        .args(&["-p", "good=sh -c 'echo alive; sleep 30'"])
        .start_in(Some(s));
    init.wait_log("good stdout: alive");
    let log = init.wait_log_n(
        "spawnerr: can't find command 'no-such-program-xyz'",
        2,
        secs(10.0),
    );
    assert!(
        log.contains(&format!(
            "spawnerr: command at '{dir}/noexec' is not executable"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("spawnerr: command at '{dir}/adir' is a directory")),
        "{log}"
    );
    assert_eq!(init.spawned_pids("good").len(), 1);
}

#[test]
fn no_permission_is_reported_for_another_user() {
    // As root every x bit grants exec, so drop to nobody for this one.
    let s = Scratch::new("noperm");
    let script = s.write("secret", "#!/bin/sh\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = s.path("log");
    let status = as_nobody(&s)
        .args(["-q", "-l", "-"])
        .arg("--")
        .arg(&script)
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(126), "{text}");
    assert!(
        text.contains(&format!(
            "no permission to run command '{}'",
            script.display()
        )),
        "{text}"
    );
}

#[test]
fn output_is_logged_line_by_line_with_quoting_kept() {
    for mode in MODES {
        let init = init(mode, "output")
            .args(&["-p", r#"q=printf '%s|%s\n' 'a  b' "c \"d\"""#])
            .args(&[
                "-p",
                "err=sh -c 'echo to stderr >&2; printf \"no newline\"; exit 5'",
            ])
            .args(&["-x", "0,5"])
            .start();
        init.wait_log("exited: err (exit status 5; expected)");
        let log = init.wait_log("exited: q (exit status 0; expected)");
        assert!(log.contains(r#" INFO q stdout: a  b|c "d""#), "{log}");
        assert!(log.contains(" INFO err stderr: to stderr"), "{log}");
        let partial = log
            .find("err stdout: no newline")
            .expect("partial last line");
        let exited = log.find("exited: err").unwrap();
        assert!(partial < exited, "output goes above the exit line:\n{log}");
    }
}

#[test]
fn what_a_program_printed_before_it_died_sits_above_its_exit_line() {
    let init = init(Mode::Child, "traceback")
        .args(&["-s", "0", "-b", "60"])
        .args(&[
            "-p",
            "tb=sh -c 'for i in 1 2 3 4 5 6 7 8 9; do echo line $i >&2; done; exit 1'",
        ])
        .start();
    let log = init.wait_log("exited: tb");
    let exited = log.find("exited: tb").unwrap();
    for i in 1..=9 {
        let at = log
            .find(&format!("tb stderr: line {i}"))
            .unwrap_or_else(|| panic!("line {i}:\n{log}"));
        assert!(at < exited, "{log}");
    }
}

#[test]
fn output_of_processes_that_outlive_the_program_is_still_logged() {
    let init = init(Mode::Child, "grandchild")
        .args(&[
            "-p",
            "bg=sh -c '(sleep 0.5; echo from the grandchild) & echo parent done'",
        ])
        .start();
    init.wait_log("exited: bg (exit status 0; expected)");
    let log = init.wait_log("bg stdout: from the grandchild");
    assert!(log.find("exited: bg").unwrap() < log.find("from the grandchild").unwrap());
}

#[test]
fn init_script_runs_in_its_folder_and_is_named_after_the_file() {
    for mode in MODES {
        let s = Scratch::new("init-script");
        std::fs::create_dir(s.path("home")).unwrap();
        s.write(
            "home/project_init.sh",
            "date > project-start\necho \"shell: $BASH_VERSION\"\n",
        );
        let init = init(mode, "init-script")
            .args(&["-i", "{dir}/home/project_init.sh"])
            .start_in(Some(s));
        let log = init.wait_log("exited: project_init_sh (exit status 0; expected)");
        let stamp = init.scratch.path("home/project-start");
        assert!(
            !std::fs::read_to_string(&stamp).unwrap().is_empty(),
            "{log}"
        );
        // Run by bash, not sh.
        assert!(log.contains("project_init_sh stdout: shell: 5"), "{log}");
    }
}

#[test]
fn relative_init_script_paths_are_taken_from_inits_working_directory() {
    let s = Scratch::new("relative");
    s.write("run.sh", "pwd > where\n");
    let dir = s.0.clone();
    let init = init(Mode::Child, "relative")
        .args(&["-i", "run.sh"])
        .setup(move |c| {
            c.current_dir(&dir);
        })
        .start_in(Some(s));
    init.wait_log("exited: run_sh (exit status 0; expected)");
    let where_ = std::fs::read_to_string(init.scratch.path("where")).unwrap();
    assert_eq!(where_.trim(), init.scratch.0.to_str().unwrap());
}

#[test]
fn a_missing_init_script_is_skipped_and_init_stays_up() {
    for mode in MODES {
        // The ENTRYPOINT shape: a trailing `--` and no command after it.
        let mut init = init(mode, "skipped")
            .args(&["-i", "{dir}/project_init.sh", "--"])
            .start();
        let log = init.wait_log("does not exist");
        assert!(
            log.contains(&format!(
                "INFO skipped: {}/project_init.sh does not exist",
                init.scratch.0.display()
            )),
            "{log}"
        );
        std::thread::sleep(secs(0.5));
        assert!(
            init.child.try_wait().unwrap().is_none(),
            "init must stay up as a reaper"
        );
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn a_failing_init_script_is_restarted() {
    let s = Scratch::new("failing-script");
    s.write("project_init.sh", "echo trying; exit 1\n");
    let init = init(Mode::Child, "failing-script")
        .args(&["-s", "0", "-b", "0.1", "-i", "{dir}/project_init.sh"])
        .start_in(Some(s));
    let log = init.wait_log_n(
        "exited: project_init_sh (exit status 1; not expected)",
        3,
        secs(10.0),
    );
    assert!(log.contains("project_init_sh stdout: trying"));
}

#[test]
fn when_every_program_has_ended_init_stays_up_until_asked() {
    let mut init = init(Mode::Pid1, "stays-up")
        .args(&["-p", "done=true"])
        .start();
    init.wait_log("exited: done (exit status 0; expected)");
    std::thread::sleep(secs(0.5));
    assert!(init.child.try_wait().unwrap().is_none());
    assert_eq!(init.stop(), 0);
    assert!(
        init.log_text()
            .contains("WARN received SIGTERM indicating exit request")
    );
}
