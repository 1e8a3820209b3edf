//! Per-program settings (`-o NAME.KEY=VALUE`), against the real binary as
//! PID 1 and as a plain child: who a program runs as, where, with what
//! environment; how it is stopped; whether and how often it is restarted;
//! and an essential program ending the container.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::ffi::OsStr;
use std::process::Command;
use std::time::Instant;

use common::*;

/// A line the program NAME printed, after `NAME stdout: `.
fn printed(log: &str, name: &str, prefix: &str) -> String {
    let tag = format!("{name} stdout: {prefix}");
    let line = log
        .lines()
        .find_map(|l| l.split_once(&tag).map(|(_, rest)| rest.to_string()));
    line.unwrap_or_else(|| panic!("no {tag:?} in\n{log}"))
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A user with supplementary groups in the group database if there is
/// one here, else nobody.
fn some_user() -> String {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| l.split(':').nth(3))
        .flat_map(|members| members.split(','))
        .find(|u| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("nobody")
        .to_string()
}

fn home_of(user: &str) -> String {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(':')
        .nth(5)
        .unwrap()
        .to_string()
}

const REPORT: &str = "show=sh -c 'grep -E \"^(Uid|Gid|Groups):\" /proc/self/status; \
                      echo \"home=$HOME user=$USER logname=$LOGNAME\"; \
                      echo \"cwd=$(pwd)\"; echo \"app=$APP_ENV list=$LIST\"; exec sleep 1000'";

#[test]
fn user_directory_and_environment_are_the_programs_own() {
    let user = some_user();
    let uid = id(&["-u", &user]);
    let gid = id(&["-g", &user]);
    let mut groups: Vec<String> = id(&["-G", &user])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    groups.sort();
    for mode in MODES {
        let s = Scratch::new("settings-user");
        let work = s.path("work");
        std::fs::create_dir_all(&work).unwrap();
        let work = work.to_string_lossy().to_string();
        let mut init = init(mode, "user")
            .args(&["-p", REPORT])
            .arg("-o")
            .arg(&format!("show.user={user}"))
            .arg("-o")
            .arg(&format!("show.directory={work}"))
            .args(&["-o", "show.environment=APP_ENV=\"prod\",LIST=\"a,b\""])
            .args(&[
                "-p",
                "plain=sh -c 'echo \"cwd=$(pwd) app=$APP_ENV\"; exec sleep 1000'",
            ])
            .start_in(Some(s));
        let log = init.wait_log("plain stdout: cwd=");
        let log = if log.contains("show stdout: app=") {
            log
        } else {
            init.wait_log("show stdout: app=")
        };
        let fields = |key: &str| -> Vec<String> {
            let mut v: Vec<String> = printed(&log, "show", key)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            v.dedup();
            v
        };
        // Real, effective, saved and file-system ids alike.
        assert_eq!(
            fields("Uid:"),
            std::slice::from_ref(&uid),
            "{mode:?}\n{log}"
        );
        assert_eq!(
            fields("Gid:"),
            std::slice::from_ref(&gid),
            "{mode:?}\n{log}"
        );
        let mut got = printed(&log, "show", "Groups:")
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>();
        got.sort();
        assert_eq!(got, groups, "{mode:?}\n{log}");
        assert_eq!(
            printed(&log, "show", "home="),
            format!("{} user={user} logname={user}", home_of(&user))
        );
        assert_eq!(printed(&log, "show", "cwd="), work);
        assert_eq!(printed(&log, "show", "app="), "prod list=a,b");
        // Another program keeps init's own folder and environment.
        let plain = printed(&log, "plain", "cwd=");
        assert!(
            !plain.starts_with(&work) && plain.ends_with(" app="),
            "{plain}"
        );
        wait_state(&init, "show", "RUNNING");
        let (code, out, _) = ctl(&init, &["status", "show"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!(", user {user}")), "{out}");
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn environment_can_override_the_users_home() {
    let mut init = init(Mode::Child, "user-home")
        .args(&["-p", "h=sh -c 'echo \"home=$HOME\"; exec sleep 1000'"])
        .args(&["-o", "h.user=nobody", "-o", "h.environment=HOME=/elsewhere"])
        .start();
    let log = init.wait_log("h stdout: home=");
    assert_eq!(printed(&log, "h", "home="), "/elsewhere");
    init.stop();
}

#[test]
fn the_main_command_takes_a_directory_environment_and_user() {
    for mode in MODES {
        let s = Scratch::new("settings-main");
        let out = s.path("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::set_permissions(&s.0, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let out_text = out.to_string_lossy().to_string();
        let mut init = init(mode, "main-settings")
            .arg("-o")
            .arg(&format!("main.directory={out_text}"))
            .args(&[
                "-o",
                "main.environment=GREETING=hello",
                "-o",
                "main.user=nobody",
            ])
            .main(&[
                "sh",
                "-c",
                "echo \"$(id -u) $(pwd) $GREETING $USER\" > seen; exit 4",
            ])
            .start_in(Some(s));
        assert_eq!(init.exit_code(secs(10.0)), 4, "{}", init.log_text());
        let seen = std::fs::read_to_string(out.join("seen")).unwrap();
        assert_eq!(seen.trim(), format!("65534 {out_text} hello nobody"));
    }
}

/// Prints each of TERM and QUIT it gets, and exits 0 on QUIT.
const CATCHER: &str = "c=sh -c 'trap \"echo got-TERM\" TERM; \
                       trap \"echo got-QUIT; exit 0\" QUIT; \
                       echo ready; while :; do sleep 0.05; done'";

#[test]
fn stopsignal_is_sent_at_shutdown_stop_and_restart() {
    for mode in MODES {
        let mut init = init(mode, "stopsignal")
            .args(&["-s", "0", "-p", CATCHER, "-o", "c.stopsignal=QUIT"])
            .start();
        init.wait_log("c stdout: ready");
        let (code, out, _) = ctl(&init, &["restart", "c"]);
        assert_eq!((code, out.trim()), (0, "c: restarted"));
        init.wait_log_n("c stdout: ready", 2, secs(10.0));
        let (code, out, _) = ctl(&init, &["stop", "c"]);
        assert_eq!((code, out.trim()), (0, "c: stopped"));
        ctl(&init, &["start", "c"]);
        init.wait_log_n("c stdout: ready", 3, secs(10.0));
        assert_eq!(init.stop(), 0, "{}", init.log_text());
        let log = init.log_text();
        assert_eq!(log.matches("c stdout: got-QUIT").count(), 3, "{log}");
        assert!(!log.contains("got-TERM"), "{mode:?}\n{log}");
        // It ended by its stop signal's doing: a clean stop.
        assert!(log.contains("INFO stopped: c (exit status 0)"), "{log}");
    }
}

#[test]
fn each_program_gets_its_own_stopwaitsecs() {
    let deaf = |name: &str| {
        format!("{name}=sh -c 'trap \"\" TERM; echo up; while :; do sleep 0.05; done'")
    };
    for mode in MODES {
        let mut init = init(mode, "stopwaitsecs")
            .args(&["-g", "8", "-p", &deaf("one"), "-p", &deaf("three")])
            .args(&["-o", "one.stopwaitsecs=1", "-o", "three.stopwaitsecs=3"])
            .start();
        init.wait_log("one stdout: up");
        init.wait_log("three stdout: up");
        init.signal(nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        init.wait_log("killing 'one'");
        let one = t0.elapsed();
        init.wait_log("killing 'three'");
        let three = t0.elapsed();
        let code = init.exit_code(secs(10.0));
        let total = t0.elapsed();
        let log = init.log_text();
        assert_eq!(code, 1, "{log}");
        assert!(
            one >= secs(0.9) && one < secs(2.0),
            "{mode:?} one at {one:?}"
        );
        assert!(
            three >= secs(2.9) && three < secs(4.0),
            "{mode:?} three at {three:?}"
        );
        assert!(
            total < secs(4.5),
            "{mode:?}: shutdown took {total:?}\n{log}"
        );
        assert_eq!(log.matches("killing 'one'").count(), 1, "{log}");
    }
}

#[test]
fn autorestart_true_restarts_after_an_expected_exit() {
    let mut init = init(Mode::Pid1, "autorestart-true")
        .args(&["-s", "0", "-p", "again=sh -c 'echo run; exit 0'"])
        .args(&["-o", "again.autorestart=true"])
        .start();
    init.wait_log_n("again stdout: run", 3, secs(10.0));
    let log = init.log_text();
    assert!(
        log.contains("exited: again (exit status 0; expected)"),
        "{log}"
    );
    init.stop();
}

#[test]
fn autorestart_false_stays_exited_after_a_failure() {
    for mode in MODES {
        let mut init = init(mode, "autorestart-false")
            .args(&["-p", "once=sh -c 'exit 1'", "-o", "once.autorestart=false"])
            .args(&["-p", "server=sleep 1000"])
            .start();
        init.wait_log("exited: once (exit status 1; not expected)");
        std::thread::sleep(secs(1.5));
        assert_eq!(init.spawned_pids("once").len(), 1, "{}", init.log_text());
        let (code, out, _) = ctl(&init, &["status", "once"]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(state_of(&out, "once"), "EXITED");
        assert!(out.contains("(exit status 1; not expected)"), "{out}");
        assert!(!init.log_text().contains("backoff: once"));
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn startretries_goes_fatal_and_start_takes_it_up_again() {
    for mode in MODES {
        let mut init = init(mode, "startretries")
            .args(&["-b", "0.2", "-p", "flaky=sh -c 'exit 1'"])
            .args(&["-o", "flaky.startretries=1"])
            .start();
        let log =
            init.wait_log("gave up: flaky entered FATAL state, too many start retries too quickly");
        std::thread::sleep(secs(1.0));
        assert_eq!(init.spawned_pids("flaky").len(), 2, "{log}");
        let (code, out, _) = ctl(&init, &["status", "flaky"]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(state_of(&out, "flaky"), "FATAL");
        assert!(out.contains("too many start retries too quickly"), "{out}");
        let (code, out, _) = ctl(&init, &["start", "flaky"]);
        assert_eq!((code, out.trim()), (0, "flaky: started"));
        init.wait_log_n("gave up: flaky", 2, secs(10.0));
        assert_eq!(init.spawned_pids("flaky").len(), 4, "{}", init.log_text());
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn autostart_false_waits_for_start() {
    for mode in MODES {
        let mut init = init(mode, "autostart")
            .args(&["-p", "later=sleep 1000", "-o", "later.autostart=false"])
            .args(&["-p", "now=sleep 1000"])
            .start();
        init.wait_log("spawned: 'now'");
        let (code, out, _) = ctl(&init, &["status", "later"]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(state_of(&out, "later"), "STOPPED");
        assert!(out.contains("Not started"), "{out}");
        assert!(init.spawned_pids("later").is_empty());
        let (code, out, _) = ctl(&init, &["start", "later"]);
        assert_eq!((code, out.trim()), (0, "later: started"));
        assert_eq!(init.spawned_pids("later").len(), 1);
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn an_essential_programs_end_ends_init_with_its_status() {
    for mode in MODES {
        let mut init = init(mode, "essential")
            .args(&["-p", "db=sh -c 'sleep 0.5; exit 3'"])
            .args(&["-o", "db.essential=true", "-o", "db.autorestart=false"])
            .args(&["-p", "web=sleep 1000"])
            .start();
        assert_eq!(init.exit_code(secs(10.0)), 3, "{}", init.log_text());
        let log = init.log_text();
        assert!(
            log.contains(
                "WARN essential: db is down for good (exit status 3; not restarted): stopping everything"
            ),
            "{log}"
        );
        assert!(
            log.contains("stopped: web (terminated by SIGTERM)"),
            "{log}"
        );
        assert!(log.contains("exiting with status 3"), "{log}");
    }
}

#[test]
fn an_essential_program_killed_by_sigkill_ends_init_with_137() {
    for mode in MODES {
        let mut init = init(mode, "essential-kill")
            .args(&["-p", "db=sh -c 'echo up; exec sleep 1000'"])
            .args(&["-o", "db.essential=true", "-o", "db.autorestart=false"])
            .main(&["sleep", "1000"])
            .start();
        init.wait_log("db stdout: up");
        let (code, out, _) = ctl(&init, &["signal", "KILL", "db"]);
        assert_eq!((code, out.trim()), (0, "db: signalled"));
        assert_eq!(init.exit_code(secs(10.0)), 137, "{}", init.log_text());
        let log = init.log_text();
        assert!(
            log.contains("essential: db is down for good (terminated by SIGKILL; not restarted)"),
            "{log}"
        );
        assert!(
            log.contains("exited: main (terminated by SIGTERM)"),
            "{log}"
        );
    }
}

#[test]
fn an_essential_program_that_never_starts_ends_init_with_1() {
    let mut init = init(Mode::Child, "essential-fatal")
        .args(&["-b", "0.1", "-p", "db=no-such-command-here"])
        .args(&["-o", "db.essential=true", "-o", "db.startretries=0"])
        .args(&["-p", "web=sleep 1000"])
        .start();
    assert_eq!(init.exit_code(secs(10.0)), 1, "{}", init.log_text());
    let log = init.log_text();
    assert!(log.contains("gave up: db entered FATAL state"), "{log}");
    assert!(
        log.contains("essential: db is down for good (FATAL): stopping everything"),
        "{log}"
    );
}

#[test]
fn a_missing_directory_is_a_spawnerr_and_a_check_problem() {
    let mut init = init(Mode::Child, "no-dir")
        .args(&["-p", "w=true", "-o", "w.directory=/no/such/folder"])
        .start();
    init.wait_log("spawnerr: couldn't chdir to /no/such/folder: No such file or directory");
    init.wait_log("backoff: w starts again in 1 seconds");
    assert_eq!(init.stop(), 0);
    let (code, out) = check(&["-p", "w=true", "-o", "w.directory=/no/such/folder"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("w: spawnerr: couldn't chdir to /no/such/folder"),
        "{out}"
    );
}

#[test]
fn a_folder_the_user_may_not_enter_is_a_spawnerr() {
    // /root is 0700: root could enter it, the user cannot; the folder is
    // entered as the user.
    let mut init = init(Mode::Child, "no-entry")
        .args(&[
            "-p",
            "w=pwd",
            "-o",
            "w.user=nobody",
            "-o",
            "w.directory=/root",
        ])
        .start();
    init.wait_log("spawnerr: couldn't chdir to /root: Permission denied");
    assert!(!init.log_text().contains("w stdout: /root"));
    assert_eq!(init.stop(), 0);
}

/// `cocalc-init --check ARGS`: (exit code, stdout and stderr).
fn check(args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = check_args(args);
    (code, format!("{stdout}{stderr}"))
}

#[test]
fn check_lists_the_settings_that_differ() {
    let (code, out) = check(&[
        "-p",
        "web=true",
        "-o",
        "web.stopsignal=QUIT",
        "-o",
        "web.user=nobody",
        "-o",
        "web.environment=A=\"1,2\"",
        "-o",
        "main.directory=/",
        "--",
        "true",
    ]);
    assert_eq!(code, 0, "{out}");
    let nobody = format!(
        "  user nobody (uid 65534, gid {}, groups {})",
        id(&["-g", "nobody"]),
        id(&["-G", "nobody"]).replace(' ', ",")
    );
    let want = [
        "program web: true",
        "  stopsignal SIGQUIT",
        "  environment A=1,2",
        &nobody,
        "main: true",
        "  directory /",
    ];
    let lines: Vec<&str> = out.lines().take(want.len()).collect();
    assert_eq!(lines, want, "{out}");
}

#[test]
fn bad_options_are_usage_errors() {
    let p = ["-l", "/dev/null", "-p", "web=true"];
    for (option, needle) in [
        ("nope.startsecs=1", "no program is named 'nope'"),
        ("web.colour=red", "unknown key 'colour'"),
        ("web", "expected NAME.KEY=VALUE"),
        ("web.startsecs", "expected NAME.KEY=VALUE"),
        ("web.startretries=-1", "'-1' is not a whole number"),
        (
            "web.autorestart=maybe",
            "'maybe' is not unexpected, true or false",
        ),
        ("web.stopsignal=NOPE", "'NOPE' is not a signal"),
        ("web.environment=NOEQUALS", "'NOEQUALS' is not KEY=VALUE"),
        ("web.user=", "the user is empty"),
        ("web.user=no-such-user-here", "no user 'no-such-user-here'"),
        ("web.directory=relative", "not an absolute path"),
        ("web.autostart=2", "'2' is not true or false"),
        ("main.startretries=3", "its end ends init"),
        ("web.environment=A=\u{7}", "a control character"),
    ] {
        let mut args = p.to_vec();
        args.extend(["-o", option]);
        refused(&args, needle);
    }
    let mut no_main = p.to_vec();
    no_main.extend(["-o", "main.user=nobody"]);
    refused(&no_main, "there is no main command");
    let mut twice = p.to_vec();
    twice.extend(["-o", "web.grace=1"]);
    refused(&twice, "unknown key 'grace'");
    let mut twice = p.to_vec();
    twice.extend(["-o", "web.startsecs=1", "-o", "web.startsecs=2"]);
    refused(&twice, "startsecs is given twice for web");
    // environment may repeat.
    let mut env = vec!["--check"];
    env.extend(p);
    env.extend(["-o", "web.environment=A=1", "-o", "web.environment=B=2"]);
    let (code, _) = run_to_end(&env.iter().map(OsStr::new).collect::<Vec<_>>(), secs(10.0));
    assert_eq!(code, 0);
}

#[test]
fn user_needs_init_to_be_root() {
    let s = Scratch::new("user-not-root");
    let out = as_nobody(&s)
        .args(["-l", "/dev/null", "-p", "w=true", "-o", "w.user=root"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("init runs as uid 65534, not as root"),
        "{stderr}"
    );
    // Root whose runtime dropped CAP_SETUID/CAP_SETGID cannot either.
    let out = Command::new("setpriv")
        .args(["--bounding-set=-setuid,-setgid", BIN])
        .args(["-l", "/dev/null", "-p", "w=true", "-o", "w.user=nobody"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lacks CAP_SETUID or CAP_SETGID"),
        "{stderr}"
    );
    // Its own user is no change, and fine.
    let out = as_nobody(&s)
        .args([
            "--check",
            "-l",
            "/dev/null",
            "-p",
            "w=true",
            "-o",
            "w.user=nobody",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
