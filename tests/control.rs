//! The control socket and the client verbs, against a live init: status,
//! start, stop, restart, signal, their exit statuses, who may talk, and
//! clients that are slow, stuck, many or hostile.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// A server that stays up, a program that fails every time, and a main
/// command that reports the signals it gets.
fn live(mode: Mode, tag: &str) -> Init {
    init(mode, tag)
        .args(&["-s", "0.3", "-b", "2", "-g", "2"])
        .args(&["-p", "server=sleep 1000"])
        .args(&["-p", "crash=sh -c 'sleep 0.1; exit 1'"])
        .args(&["-p", "job=sh -c 'exit 0'"])
        .args(&[
            "-p",
            "hup=sh -c 'trap \"echo got-hup\" HUP; while :; do sleep 0.05; done'",
        ])
        .main(&["sh", "-c", "trap '' HUP; while :; do sleep 1; done"])
        .start()
}

#[test]
fn status_names_every_program_with_supervisorctl_states() {
    for mode in MODES {
        let mut init = live(mode, "status");
        init.wait_log("exited: job (exit status 0; expected)");
        init.wait_log("exited: crash (exit status 1; not expected)");
        wait_state(&init, "server", "RUNNING");
        let (code, out, err) = ctl(&init, &["status"]);
        // crash is backing off: not up.
        assert_eq!(code, 3, "{out}{err}");
        let names: Vec<&str> = out
            .lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(names, ["server", "crash", "job", "hup", "main"], "{out}");
        assert!(out.contains("(exit status 0; expected)"), "{out}");
        assert_eq!(state_of(&out, "main"), "RUNNING");
        // Columns are aligned: every state starts at the same place.
        let at: Vec<usize> = out
            .lines()
            .map(|l| {
                l.find(&state_of(&out, l.split_whitespace().next().unwrap()))
                    .unwrap()
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{out}");
        let (code, out, _) = ctl(&init, &["status", "server", "job", "main"]);
        assert_eq!(code, 0, "{out}");
        let (code, out, _) = ctl(&init, &["status", "server", "nope"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("nope: ERROR (no such program)"), "{out}");
        // Status requests are not logged unless at debug level.
        assert!(!init.log_text().contains("control: status"));
        assert_eq!(init.stop(), 143, "{mode:?}");
    }
}

#[test]
fn stop_holds_a_program_down_and_start_brings_it_back_with_a_reset_backoff() {
    for mode in MODES {
        let mut init = live(mode, "stop-start");
        wait_state(&init, "server", "RUNNING");
        let first = init.spawned_pids("server");
        let (code, out, _) = ctl(&init, &["stop", "server"]);
        assert_eq!((code, out.as_str()), (0, "server: stopped\n"));
        // Answered once reaped: the log already has it.
        assert!(
            init.log_text()
                .contains("stopped: server (terminated by SIGTERM)")
        );
        assert!(
            init.log_text().contains("control: stop server (pid "),
            "{}",
            init.log_text()
        );
        let (code, out, _) = ctl(&init, &["stop", "server"]);
        assert_eq!((code, out.as_str()), (1, "server: ERROR (not running)\n"));
        // The crash loop is stopped while backing off: no restart follows.
        wait_state(&init, "crash", "BACKOFF");
        let (code, out, _) = ctl(&init, &["stop", "crash"]);
        assert_eq!((code, out.as_str()), (0, "crash: stopped\n"));
        let crashes = init.spawned_pids("crash").len();
        std::thread::sleep(secs(2.5));
        assert_eq!(
            init.spawned_pids("crash").len(),
            crashes,
            "restarted while stopped"
        );
        assert_eq!(init.spawned_pids("server"), first);
        let (code, out, _) = ctl(&init, &["status", "server"]);
        assert_eq!(code, 3);
        assert!(
            out.contains("STOPPED") && out.contains("(stopped by request)"),
            "{out}"
        );
        // start: spawned before the answer, with the backoff reset (the
        // next wait is 1 s again, not the doubled one).
        let (code, out, _) = ctl(&init, &["start", "server", "crash"]);
        assert_eq!(
            (code, out.as_str()),
            (0, "server: started\ncrash: started\n")
        );
        let second = init.spawned_pids("server");
        assert_eq!(second.len(), 2);
        assert_ne!(second[0], second[1]);
        let log = init.wait_log_n("backoff: crash starts again in", crashes + 1, secs(10.0));
        assert!(
            log.lines()
                .rev()
                .find(|l| l.contains("backoff: crash"))
                .unwrap()
                .ends_with("in 1 seconds"),
            "{log}"
        );
        let (code, out, _) = ctl(&init, &["start", "server"]);
        assert_eq!(
            (code, out.as_str()),
            (1, "server: ERROR (already started)\n")
        );
        assert_eq!(init.stop(), 143, "{mode:?}");
    }
}

#[test]
fn restart_gives_a_new_pid_and_signal_reaches_the_group() {
    for mode in MODES {
        let mut init = live(mode, "restart");
        wait_state(&init, "server", "RUNNING");
        let before = init.spawned_pids("server");
        let (code, out, _) = ctl(&init, &["restart", "server"]);
        assert_eq!((code, out.as_str()), (0, "server: restarted\n"));
        let after = init.spawned_pids("server");
        assert_eq!(after.len(), before.len() + 1);
        assert_ne!(after.last(), before.last());
        wait_state(&init, "hup", "RUNNING");
        let (code, out, _) = ctl(&init, &["signal", "HUP", "hup", "main"]);
        assert_eq!(
            (code, out.as_str()),
            (0, "hup: signalled\nmain: signalled\n")
        );
        init.wait_log("hup stdout: got-hup");
        let (code, out, _) = ctl(&init, &["signal", "USR1", "job"]);
        assert_eq!((code, out.as_str()), (1, "job: ERROR (not running)\n"));
        let (code, _, err) = ctl(&init, &["restart", "main"]);
        assert_eq!(code, 2, "{err}");
        // main, killed through the socket, ends the container.
        let (code, _, _) = ctl(&init, &["signal", "KILL", "main"]);
        assert_eq!(code, 0);
        assert_eq!(init.exit_code(secs(10.0)), 137, "{mode:?}");
    }
}

#[test]
fn a_stop_that_needs_sigkill_answers_once_the_process_is_reaped() {
    let mut init = init(Mode::Child, "stop-kill")
        .args(&[
            "-g",
            "0.5",
            "-p",
            "stubborn=sh -c 'trap \"\" TERM; while :; do sleep 0.05; done'",
        ])
        .start();
    wait_state(&init, "stubborn", "RUNNING");
    let t0 = Instant::now();
    let (code, out, _) = ctl(&init, &["stop", "stubborn"]);
    assert_eq!((code, out.as_str()), (0, "stubborn: stopped\n"));
    assert!(t0.elapsed() >= secs(0.5), "{:?}", t0.elapsed());
    let log = init.log_text();
    assert!(log.contains("killing 'stubborn'"), "{log}");
    assert!(
        log.contains("stopped: stubborn (terminated by SIGKILL)"),
        "{log}"
    );
    // A restart that a stop overtakes is told so, not left waiting.
    ctl(&init, &["start", "stubborn"]);
    wait_state(&init, "stubborn", "RUNNING");
    let sock = socket(&init);
    let restart = std::thread::spawn(move || ctl_at(&sock, &["restart", "stubborn"]));
    wait_state(&init, "stubborn", "STOPPING");
    let (code, out, _) = ctl(&init, &["stop", "stubborn"]);
    assert_eq!((code, out.as_str()), (0, "stubborn: stopped\n"));
    let (code, out, _) = restart.join().unwrap();
    assert_eq!(
        (code, out.as_str()),
        (1, "stubborn: ERROR (stopped by request)\n")
    );
    assert_eq!(init.stop(), 0);
}

#[test]
fn all_leaves_out_programs_already_there() {
    let mut init = live(Mode::Child, "all");
    init.wait_log("exited: job (exit status 0; expected)");
    wait_state(&init, "server", "RUNNING");
    // job has exited: signal all reaches the running ones only.
    let (code, out, _) = ctl(&init, &["signal", "HUP", "all"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("job") && out.contains("server: signalled"),
        "{out}"
    );
    let (code, out, _) = ctl(&init, &["stop", "all"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let (code, out, _) = ctl(&init, &["stop", "all"]);
    assert_eq!((code, out.as_str()), (0, "all: nothing to do\n"));
    let (code, out, _) = ctl(&init, &["start", "all"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("server: started") && out.contains("job: started"),
        "{out}"
    );
    assert_eq!(init.stop(), 143);
}

#[test]
fn a_socket_that_closes_without_a_greeting_is_no_init() {
    let s = Scratch::new("mute");
    let path = s.path("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let (code, _, err) = ctl_at(&path, &["stop", "x"]);
    server.join().unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no init answers"), "{err}");
}

#[test]
fn no_init_is_4_and_bad_words_are_usage_errors() {
    let s = Scratch::new("noinit");
    let (code, _, err) = ctl_at(&s.path("none.sock"), &["status"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no init answers at") && err.contains("none.sock"),
        "{err}"
    );
    for words in [
        &["stop"][..],
        &["signal", "NOPE", "a"],
        &["status", "-x"],
        &["start", "all", "a"],
    ] {
        let (code, _, err) = ctl_at(&s.path("none.sock"), words);
        assert_eq!(code, 2, "{words:?}: {err}");
        assert_eq!(err.lines().count(), 2, "{err}");
    }
}

#[test]
fn a_skipped_init_script_counts_as_up() {
    let mut init = init(Mode::Child, "skipped")
        .args(&["-i", "/nonexistent/project_init.sh", "-p", "s=sleep 100"])
        .start();
    wait_state(&init, "s", "RUNNING");
    let (code, out, _) = ctl(&init, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("EXITED    skipped: /nonexistent/project_init.sh does not exist"),
        "{out}"
    );
    let (code, out, _) = ctl(&init, &["start", "project_init_sh"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ERROR (skipped:"), "{out}");
    assert_eq!(init.stop(), 0);
}

#[test]
fn a_script_written_after_start_can_be_started() {
    let s = Scratch::new("late-script");
    let script = s.path("project_init.sh");
    let script_arg = script.to_string_lossy().to_string();
    let mut init = init(Mode::Child, "late-script")
        .args(&["-i", &script_arg, "-p", "s=sleep 100"])
        .start_in(Some(s));
    wait_state(&init, "s", "RUNNING");
    std::fs::write(&script, "echo hello from the late script; pwd\n").unwrap();
    let (code, out, _) = ctl(&init, &["start", "project_init_sh"]);
    assert_eq!((code, out.as_str()), (0, "project_init_sh: started\n"));
    let log = init.wait_log("exited: project_init_sh (exit status 0; expected)");
    assert!(
        log.contains("project_init_sh stdout: hello from the late script"),
        "{log}"
    );
    let folder = script.parent().unwrap().to_string_lossy().to_string();
    assert!(
        log.contains(&format!("project_init_sh stdout: {folder}")),
        "{log}"
    );
    let (code, out, _) = ctl(&init, &["status", "project_init_sh"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("EXITED") && out.contains("(exit status 0; expected)"),
        "{out}"
    );
    assert_eq!(init.stop(), 0);
}

#[test]
fn another_user_is_refused_and_logged() {
    let mut init = init(Mode::Child, "nobody")
        .args(&["-p", "s=sleep 100"])
        .start();
    wait_state(&init, "s", "RUNNING");
    let sock = socket(&init);
    // The scratch folder is world-readable: only the socket's mode stops
    // nobody.
    let as_nobody = || {
        let out = as_nobody(&init.scratch)
            .args(["status", "--control"])
            .arg(&sock)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = as_nobody();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // Widened by mistake: init itself still refuses, and says so.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out, err) = as_nobody();
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("ERROR permission denied"), "{out}{err}");
    let log = init.wait_log("control: refused a client with uid 65534");
    assert!(log.contains("WARN control: refused"), "{log}");
    assert_eq!(init.stop(), 0);
}

/// `tick` prints every 100 ms; returns the largest gap between its lines
/// over the last `window` of the log.
fn largest_tick_gap(init: &Init) -> Duration {
    let stamps: Vec<f64> = init
        .log_text()
        .lines()
        .filter(|l| l.contains("tick stdout:"))
        .map(|l| {
            let t = &l[11..23];
            let (hms, ms) = t.split_once(',').unwrap();
            let parts: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
            parts[0] * 3600.0 + parts[1] * 60.0 + parts[2] + ms.parse::<f64>().unwrap() / 1000.0
        })
        .collect();
    let gap = stamps
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0_f64, f64::max);
    Duration::from_secs_f64(gap.max(0.0))
}

#[test]
fn stuck_and_hostile_clients_never_delay_supervision() {
    let mut init = init(Mode::Child, "stuck")
        .args(&["-p", "tick=sh -c 'while :; do echo t; sleep 0.1; done'"])
        .start();
    init.wait_log_n("tick stdout: t", 3, secs(10.0));
    let sock = socket(&init);
    // Connects, sends nothing, holds on.
    let silent: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    // Sends half a line and stops.
    let mut half = UnixStream::connect(&sock).unwrap();
    half.write_all(b"stat").unwrap();
    // Garbage, and a megabyte with no newline.
    let mut garbage = UnixStream::connect(&sock).unwrap();
    garbage.write_all(b"\x00\xff reload everything\n").unwrap();
    let mut reply = String::new();
    garbage.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("ERROR unknown verb"), "{reply}");
    let mut big = UnixStream::connect(&sock).unwrap();
    let _ = big.write_all(&vec![b'a'; 1 << 20]);
    let mut reply = Vec::new();
    let _ = big.read_to_end(&mut reply);
    assert!(String::from_utf8_lossy(&reply).contains("ERROR request too long"));
    let before = init.log_text().matches("tick stdout:").count();
    std::thread::sleep(secs(3.0));
    assert!(init.log_text().matches("tick stdout:").count() >= before + 20);
    let gap = largest_tick_gap(&init);
    assert!(gap < secs(0.3), "a tick waited {gap:?}");
    // The silent clients were closed after 2 s; a real request still works.
    for mut s in silent {
        let mut rest = Vec::new();
        s.set_read_timeout(Some(secs(5.0))).unwrap();
        let _ = s.read_to_end(&mut rest);
        assert!(String::from_utf8_lossy(&rest).starts_with("cocalc-init "));
    }
    let (code, _, _) = ctl(&init, &["status", "tick"]);
    assert_eq!(code, 0);
    assert_eq!(init.stop(), 0);
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_thousand_dropped_connections_leak_nothing() {
    let mut init = init(Mode::Child, "many")
        .args(&["-p", "s=sleep 100"])
        .start();
    wait_state(&init, "s", "RUNNING");
    let pid = init.pid().as_raw();
    let before = fd_count(pid);
    let sock = socket(&init);
    for i in 0..1000 {
        let mut s = UnixStream::connect(&sock).unwrap();
        if i % 2 == 0 {
            let _ = s.write_all(b"status");
        }
        drop(s);
    }
    // More at once than are served: the rest are told.
    let held: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    let mut told = 0;
    for mut s in held {
        s.set_read_timeout(Some(secs(5.0))).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        told += usize::from(text.contains("ERROR too many clients"));
    }
    assert!(told >= 4, "{told}");
    assert!(
        wait_until(secs(5.0), || fd_count(pid) == before),
        "{} fds, were {before}",
        fd_count(pid)
    );
    let (code, _, _) = ctl(&init, &["status"]);
    assert_eq!(code, 0);
    assert_eq!(init.stop(), 0);
}

#[test]
fn something_else_at_the_socket_path_means_no_channel_but_supervision() {
    let s = Scratch::new("planted");
    let target = s.write("target", "");
    std::os::unix::fs::symlink(&target, s.path("link.sock")).unwrap();
    s.write("file.sock", "");
    for name in ["link.sock", "file.sock"] {
        let path = s.path(name).to_string_lossy().to_string();
        let mut init = init(Mode::Child, "planted")
            .args(&["--control", &path, "-p", "s=sleep 100"])
            .start();
        let log = init.wait_log("spawned: 's'");
        assert!(
            log.contains(&format!(
                "ERRO control: no control socket at {path}: it is not a socket"
            )),
            "{log}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        assert!(
            std::fs::symlink_metadata(s.path(name)).is_ok(),
            "{name} was removed"
        );
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn a_second_init_on_the_same_socket_runs_without_one() {
    let mut first = init(Mode::Child, "first")
        .args(&["-p", "a=sleep 100"])
        .start();
    wait_state(&first, "a", "RUNNING");
    let path = socket(&first).to_string_lossy().to_string();
    let mut second = init(Mode::Child, "second")
        .args(&["--control", &path, "-p", "b=sleep 100"])
        .start();
    let log = second.wait_log("spawned: 'b'");
    assert!(log.contains("another init answers there"), "{log}");
    // The first still answers, and only for its own programs.
    let (code, out, _) = ctl(&first, &["status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("a "), "{out}");
    assert_eq!(second.stop(), 0);
    assert_eq!(first.stop(), 0);
    assert!(!Path::new(&path).exists(), "the socket outlived its init");
}

#[test]
fn env_and_setpriv_give_a_program_its_user_folder_and_environment() {
    let s = Scratch::new("setpriv");
    std::fs::set_permissions(&s.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = s.0.to_string_lossy().to_string();
    let program = format!(
        "web=env -C {dir} FOO=1 setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo $(id -u) $(pwd) $FOO'"
    );
    let mut init = init(Mode::Child, "setpriv")
        .args(&["-p", &program])
        .start_in(Some(s));
    let log = init.wait_log("exited: web");
    assert!(log.contains(&format!("web stdout: 65534 {dir} 1")), "{log}");
    assert_eq!(init.stop(), 0);
}

#[test]
fn a_slow_crash_loop_shows_its_restarts_and_last_exit() {
    for mode in MODES {
        // Each run outlives startsecs, so it is restarted at once, forever:
        // a row of RUNNING alone would look healthy.
        let mut init = init(mode, "crash-loop")
            .args(&["-s", "0.1", "-g", "2"])
            .args(&["-p", "crashy=sh -c 'sleep 0.4; exit 1'"])
            .start();
        init.wait_log_n("spawned: 'crashy'", 3, secs(10.0));
        let row = wait_for(secs(10.0), "a RUNNING row with its history", || {
            let (_, out, _) = ctl(&init, &["status", "crashy"]);
            let line = out.lines().next().unwrap_or("").to_string();
            (line.contains("RUNNING") && line.contains("restart")).then_some(line)
        });
        let restarts: u32 = row
            .split(", ")
            .find_map(|part| {
                part.strip_suffix(" restarts")
                    .or(part.strip_suffix(" restart"))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {row:?}"));
        assert!(restarts >= 1, "{row}");
        assert!(row.contains(", last exit status 1 at "), "{row}");
        // Every spawn after the first is a restart, as the log says.
        let spawned = init.log_text().matches("spawned: 'crashy'").count() as u32;
        assert!(restarts < spawned, "{restarts} of {spawned} spawns: {row}");
        let (code, _, _) = ctl(&init, &["status", "crashy"]);
        assert!(
            code == 0 || code == 3,
            "status exit codes unchanged: {code}"
        );
        init.stop();
    }
}
