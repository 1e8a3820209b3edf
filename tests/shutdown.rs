//! Signals and shutdown: forwarding, the grace, SIGKILL, orphans, and
//! processes that escape with setsid().

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

/// A program that appends every signal it gets to {dir}/got-NAME.
fn trapper(name: &str, sigs: &str, on_term: &str) -> String {
    format!(
        "{name}=bash -c 'for s in {sigs}; do trap \"echo $s >> {{dir}}/got-{name}\" $s; done; \
         trap \"echo TERM >> {{dir}}/got-{name}; {on_term}\" TERM; \
         touch {{dir}}/ready-{name}; while :; do sleep 0.05; done'"
    )
}

fn wait_file(init: &Init, name: &str) {
    let p = init.scratch.path(name);
    wait_for(secs(10.0), name, || p.exists().then_some(()));
}

fn got(init: &Init, name: &str) -> String {
    std::fs::read_to_string(init.scratch.path(&format!("got-{name}"))).unwrap_or_default()
}

#[test]
fn signals_are_forwarded_to_every_program() {
    for mode in MODES {
        let mut init = init(mode, "fwd")
            .arg("-v")
            .args(&["-p", &trapper("a", "HUP USR1 USR2 INT RTMIN+2", "exit 0")])
            .args(&["-p", &trapper("b", "HUP USR1 USR2 INT RTMIN+2", "exit 0")])
            .start();
        wait_file(&init, "ready-a");
        wait_file(&init, "ready-b");
        let rt = Signal::try_from(nix::libc::SIGRTMIN() + 2).ok();
        for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
            init.signal(sig);
            let word = &sig.as_str()[3..];
            wait_for(secs(10.0), word, || {
                (got(&init, "a").contains(word) && got(&init, "b").contains(word)).then_some(())
            });
        }
        // Real-time signals have no nix name: send it raw.
        assert!(rt.is_none());
        assert_eq!(
            unsafe { nix::libc::kill(init.pid().as_raw(), nix::libc::SIGRTMIN() + 2) },
            0
        );
        wait_for(secs(10.0), "RTMIN+2", || {
            got(&init, "a").contains("RTMIN+2").then_some(())
        });
        let log = init.wait_log("forwarded SIGRTMIN+2 to a, b");
        // HUP is said at INFO, with where it went and that it is no reload.
        assert!(
            log.contains(
                "INFO received SIGHUP: forwarded to a, b (cocalc-init does not reload; see man page)"
            ),
            "{log}"
        );
        assert_eq!(init.stop(), 0, "{mode:?}");
        let log = init.log_text();
        assert!(log.contains("INFO stopped: a (exit status 0)"), "{log}");
        assert!(got(&init, "a").contains("TERM") && got(&init, "b").contains("TERM"));
    }
}

#[test]
fn int_and_quit_also_shut_down() {
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        let mut init = init(Mode::Pid1, "int").args(&["-p", "s=sleep 30"]).start();
        init.wait_log("spawned: 's'");
        init.signal(sig);
        assert_eq!(init.exit_code(secs(10.0)), 0);
        let log = init.log_text();
        assert!(
            log.contains(&format!(
                "received {} indicating exit request",
                sig.as_str()
            )),
            "{log}"
        );
        assert!(
            log.contains(&format!("INFO stopped: s (terminated by {})", sig.as_str())),
            "{log}"
        );
    }
}

#[test]
fn a_program_that_ignores_term_is_killed_after_the_grace_and_init_exits_1() {
    for mode in MODES {
        let mut init = init(mode, "grace")
            .args(&["-g", "3.5"])
            .args(&["-p", &trapper("stubborn", "HUP", "true")])
            .args(&["-p", "polite=sleep 30"])
            .start();
        wait_file(&init, "ready-stubborn");
        init.wait_log("spawned: 'polite'");
        let t0 = Instant::now();
        init.signal(Signal::SIGTERM);
        // Still forwarded during the shutdown.
        std::thread::sleep(secs(0.3));
        init.signal(Signal::SIGHUP);
        assert_eq!(init.exit_code(secs(15.0)), 1, "{mode:?}");
        let took = t0.elapsed();
        assert!(took >= secs(3.4) && took < secs(5.5), "{took:?}");
        let log = init.log_text();
        assert!(
            log.contains("waiting for stubborn, polite to die")
                || log.contains("waiting for stubborn to die"),
            "{log}"
        );
        // At the start of the grace and then every 3 s at most.
        assert_eq!(log.matches("waiting for").count(), 2, "{log}");
        let pid = init.spawned_pids("stubborn")[0];
        assert!(
            log.contains(&format!("WARN killing 'stubborn' ({pid}) with SIGKILL")),
            "{log}"
        );
        assert!(
            log.contains("WARN stopped: stubborn (terminated by SIGKILL)"),
            "{log}"
        );
        assert!(
            log.contains("INFO stopped: polite (terminated by SIGTERM)"),
            "{log}"
        );
        assert!(got(&init, "stubborn").contains("HUP"));
    }
}

#[test]
fn the_main_command_exiting_stops_the_programs() {
    let mut init = init(Mode::Pid1, "main-ends")
        .args(&["-p", "bg=sleep 30"])
        .main(&["sh", "-c", "sleep 0.3; exit 3"])
        .start();
    assert_eq!(init.exit_code(secs(10.0)), 3);
    let log = init.log_text();
    assert!(log.contains("exited: main (exit status 3)"), "{log}");
    assert!(log.contains("stopped: bg (terminated by SIGTERM)"), "{log}");
    assert!(!log.contains("received SIGTERM"), "{log}");
}

#[test]
fn orphans_are_reaped_and_no_zombie_is_left() {
    for mode in MODES {
        let init = init(mode, "orphans")
            .arg("-v")
            .args(&["-p", "maker=sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.2 &); done; touch {dir}/made; sleep 30'"])
            .start();
        wait_file(&init, "made");
        let log = init.wait_log_n("reaped unknown pid", 10, secs(10.0));
        assert!(log.contains("DEBG reaped unknown pid"), "{log}");
        let zombies: Vec<(i32, char)> = init
            .children()
            .into_iter()
            .filter(|(_, s)| *s == 'Z')
            .collect();
        assert!(zombies.is_empty(), "{mode:?}: {zombies:?}");
    }
}

#[test]
fn orphans_are_not_logged_without_verbose() {
    let init = init(Mode::Pid1, "orphans-quiet")
        .args(&["-p", "maker=sh -c '(sleep 0.1 &); sleep 0.5; echo done'"])
        .start();
    init.wait_log("maker stdout: done");
    assert!(!init.log_text().contains("reaped unknown"));
}

const ESCAPEE: &str = "trap \\\"\\\" TERM; while :; do sleep 0.05; done";

#[test]
fn as_pid1_leftover_processes_are_killed_and_counted() {
    let marker = format!("leftover-marker-{}", std::process::id());
    let program = format!("maker=sh -c 'setsid sh -c \"{ESCAPEE}; {marker}\" & sleep 30'");
    let mut init = init(Mode::Pid1, "leftovers")
        .args(&["-g", "0.5", "-p", &program])
        .start();
    wait_for(secs(10.0), "escapee", || {
        (!pids_with(&marker).is_empty()).then_some(())
    });
    assert_eq!(init.stop(), 1);
    let log = init.log_text();
    assert!(
        log.contains("leftover process") && log.contains("with SIGKILL"),
        "{log}"
    );
    assert!(pids_with(&marker).is_empty());
}

#[test]
fn not_pid1_escaped_processes_are_reached_and_init_ends_within_the_grace() {
    let marker = format!("escape-marker-{}", std::process::id());
    // The escapee's parent stays alive until the shutdown; it reaches init
    // only when that parent dies.
    let program = format!(
        "maker=sh -c 'setsid sh -c \"{ESCAPEE}; {marker}\" & touch {{dir}}/ready; sleep 30'"
    );
    let mut init = init(Mode::Child, "escape")
        .args(&["-g", "1", "-p", &program])
        .start();
    wait_file(&init, "ready");
    wait_for(secs(10.0), "escapee", || {
        (!pids_with(&marker).is_empty()).then_some(())
    });
    let t0 = Instant::now();
    assert_eq!(init.stop(), 1);
    assert!(t0.elapsed() < secs(3.0), "{:?}", t0.elapsed());
    let log = init.log_text();
    assert!(
        log.contains("leftover process") && log.contains("with SIGKILL"),
        "{log}"
    );
    assert!(pids_with(&marker).is_empty(), "an escapee survived");
}

#[test]
fn not_pid1_init_touches_nothing_outside_its_tree() {
    // A process that is no descendant of init must survive its shutdown.
    let marker = format!("bystander-{}", std::process::id());
    let mut bystander = std::process::Command::new("sh")
        .args(["-c", &format!("trap '' TERM; sleep 30; : {marker}")])
        .spawn()
        .unwrap();
    let mut init = init(Mode::Child, "bystander")
        .args(&["-g", "0.3", "-p", "s=sleep 30"])
        .start();
    init.wait_log("spawned: 's'");
    assert_eq!(init.stop(), 0);
    assert!(bystander.try_wait().unwrap().is_none());
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn nothing_is_left_in_the_namespace_when_init_exits() {
    // As PID 1 the kernel would kill what is left when init exits; what
    // we check is that init itself waited for everything: each process
    // got to run its TERM trap.
    let mut init = init(Mode::Pid1, "empty-ns")
        .args(&["-p", "a=bash -c 'trap \"echo a >> {dir}/bye; exit 0\" TERM; (trap \"echo orphan >> {dir}/bye; exit 0\" TERM; while :; do sleep 0.05; done) & touch {dir}/ready; wait'"])
        .start();
    wait_file(&init, "ready");
    assert_eq!(init.stop(), 0);
    let bye = std::fs::read_to_string(init.scratch.path("bye")).unwrap();
    assert!(bye.contains("a") && bye.contains("orphan"), "{bye}");
}

#[test]
fn not_pid1_processes_adopted_during_the_shutdown_get_the_stop_signal() {
    let program = "maker=sh -c 'setsid sh -c \"trap \\\"echo got TERM >> {dir}/esc; exit 0\\\" TERM; \
                   touch {dir}/esc-ready; while :; do sleep 0.05; done\" & sleep 30'";
    let mut init = init(Mode::Child, "adopted")
        .args(&["-g", "5", "-p", program])
        .start();
    wait_file(&init, "esc-ready");
    let t0 = Instant::now();
    assert_eq!(init.stop(), 0, "{}", init.log_text());
    assert!(
        t0.elapsed() < secs(3.0),
        "waited for the grace: {:?}",
        t0.elapsed()
    );
    let esc = std::fs::read_to_string(init.scratch.path("esc")).unwrap();
    assert_eq!(esc, "got TERM\n");
}

#[test]
fn a_server_left_running_by_a_finished_init_script_gets_the_stop_signal() {
    for mode in MODES {
        let s = Scratch::new("nohup");
        s.write(
            "project_init.sh",
            "sh -c 'trap \"echo got TERM >> server-log; exit 0\" TERM; touch ready; while :; do sleep 0.05; done' &\nexit 0\n",
        );
        let mut init = init(mode, "nohup")
            .args(&["-g", "5", "-i", "{dir}/project_init.sh"])
            .start_in(Some(s));
        init.wait_log("exited: project_init_sh (exit status 0; expected)");
        wait_file(&init, "ready");
        let t0 = Instant::now();
        assert_eq!(init.stop(), 0, "{mode:?}: {}", init.log_text());
        assert!(t0.elapsed() < secs(3.0), "{mode:?}: waited for the grace");
        assert_eq!(
            std::fs::read_to_string(init.scratch.path("server-log")).unwrap(),
            "got TERM\n"
        );
    }
}
