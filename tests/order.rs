//! Start order and readiness (`after=`, `ready=`), `cocalc-init wait`, and
//! stops in reverse start order, against the real binary as PID 1 and as
//! a plain child.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

/// The position of the first log line holding `needle`.
fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn b_starts_only_while_a_is_up_restarts_included() {
    for mode in MODES {
        // a is up 0.5 s after each start, for 1 s, then fails; b fails
        // every 0.4 s and is restarted.
        let mut init = init(mode, "after")
            .args(&["-s", "0.2", "-b", "0.5"])
            .args(&[
                "-p",
                "a=sh -c 'sleep 0.5; touch {dir}/a-up; sleep 1; rm -f {dir}/a-up; exit 1'",
                "-o",
                "a.ready=exists:{dir}/a-up",
            ])
            .args(&["-p", "b=sh -c 'sleep 0.4; exit 1'", "-o", "b.after=a"])
            .start();
        init.wait_log_n("spawned: 'a'", 3, secs(15.0));
        let log = init.log_text();
        assert!(log.contains("INFO waiting: b starts after a"), "{log}");
        let mut b_starts = 0;
        let mut a_up = false;
        for line in log.lines() {
            if line.contains("success: a entered RUNNING state, ") {
                a_up = true;
            } else if line.contains("exited: a ") || line.contains("spawned: 'a'") {
                a_up = false;
            } else if line.contains("spawned: 'b'") {
                assert!(a_up, "{mode:?}: b started while a was not up:\n{log}");
                b_starts += 1;
            }
        }
        assert!(b_starts >= 3, "{mode:?}\n{log}");
        assert!(
            log.contains("success: a entered RUNNING state, ") && log.contains("/a-up exists"),
            "{log}"
        );
        init.stop();
    }
}

#[test]
fn a_one_shot_setup_comes_first() {
    for mode in MODES {
        let mut init = init(mode, "setup")
            .args(&[
                "-p",
                "setup=sh -c 'sleep 0.6; exit 0'",
                "-o",
                "setup.ready=exited",
            ])
            .args(&["-p", "web=sleep 1000", "-o", "web.after=setup"])
            .start();
        let waiting = wait_state(&init, "web", "STARTING");
        assert!(waiting.contains("waiting for setup"), "{waiting}");
        let (code, out, _) = ctl(&init, &["status", "web", "setup"]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(state_of(&out, "setup"), "STARTING");
        let log = init.wait_log("spawned: 'web'");
        assert!(
            line_of(&log, "exited: setup (exit status 0; expected)")
                < line_of(&log, "spawned: 'web'"),
            "{log}"
        );
        // No success line for a one-shot step: it is up by exiting.
        assert!(!log.contains("success: setup"), "{log}");
        init.stop();
    }
}

#[test]
fn a_cycle_and_unknown_names_are_refused() {
    let base = [
        "-l",
        "/dev/null",
        "-p",
        "a=true",
        "-p",
        "b=true",
        "-p",
        "c=true",
    ];
    let with = |extra: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    refused(
        &with(&["-o", "a.after=b", "-o", "b.after=c", "-o", "c.after=a"]),
        "the start order has a cycle: a -> b -> c -> a",
    );
    refused(&with(&["-o", "a.after=nope"]), "no program is named 'nope'");
    refused(&with(&["-o", "a.after=a"]), "a cannot come after itself");
    refused(
        &with(&["-o", "a.after=main", "--", "true"]),
        "no program can come after the main command",
    );
    refused(&with(&["-o", "a.ready=soon"]), "'soon' is not startsecs");
    refused(&with(&["-o", "a.ready=tcp:0"]), "is not a port");
}

/// Sends `text` to the notify socket named `name` (`@…`), from this
/// process: no program's.
fn notify(name: &str, text: &str) {
    use std::os::linux::net::SocketAddrExt;
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.trim_start_matches('@')).unwrap();
    let sock = UnixDatagram::unbound().unwrap();
    sock.send_to_addr(text.as_bytes(), &addr).unwrap();
}

const SENDER: &str = "n=python3 -c 'import os, socket, time\n\
name = os.environ[\"NOTIFY_SOCKET\"]\n\
open(os.environ[\"OUT\"], \"w\").write(name)\n\
time.sleep(float(os.environ[\"DELAY\"]))\n\
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
s.sendto(b\"STATUS=serving\\nREADY=1\", \"\\0\" + name[1:])\n\
time.sleep(1000)'";

#[test]
fn ready_notify_counts_a_ready_from_the_programs_own_processes_only() {
    for mode in MODES {
        let s = Scratch::new("notify");
        let out = s.path("name").to_string_lossy().to_string();
        let mut init = init(mode, "notify")
            .arg("-v")
            .args(&["-p", SENDER, "-o", "n.ready=notify"])
            .arg("-o")
            .arg(&format!("n.environment=OUT={out},DELAY=1.5"))
            .args(&["-p", "later=sleep 1000", "-o", "later.after=n"])
            .start_in(Some(s));
        let name = wait_for(secs(10.0), "the socket's name", || {
            std::fs::read_to_string(&out).ok().filter(|n| !n.is_empty())
        });
        assert!(name.starts_with('@'), "{name}");
        // From a process of no program: ignored.
        notify(&name, "READY=1");
        init.wait_log("notify: ignored a datagram from pid");
        let (code, out_text, _) = ctl(&init, &["status", "n"]);
        assert_eq!((code, state_of(&out_text, "n")), (3, "STARTING".into()));
        let log = init.wait_log("success: n entered RUNNING state, process reported ready");
        assert!(
            line_of(&log, "success: n entered RUNNING state") < line_of(&log, "spawned: 'later'"),
            "{log}"
        );
        let (code, out_text, _) = ctl(&init, &["status", "n"]);
        assert_eq!(code, 0, "{out_text}");
        assert!(out_text.contains("; serving"), "{out_text}");
        init.stop();
    }
}

#[test]
fn a_ready_sent_by_a_helper_already_reaped_counts() {
    // What a wrapper script with `systemd-notify --ready` does: a child
    // sends READY=1 and exits, and the script reaps it before going on.
    let s = Scratch::new("notify-helper");
    s.write(
        "helper.py",
        "import os, socket\n\
         s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'READY=1', '\\0' + os.environ['NOTIFY_SOCKET'][1:])\n",
    );
    let mut init = init(Mode::Child, "notify-helper")
        .args(&["-p", "w=sh -c 'python3 {dir}/helper.py; exec sleep 1000'"])
        .args(&["-o", "w.ready=notify"])
        .start_in(Some(s));
    init.wait_log("success: w entered RUNNING state, process reported ready");
    init.stop();
}

#[test]
fn a_user_program_can_report_ready() {
    // The socket has an abstract name: no file whose rights could keep
    // another user out.
    let mut init = init(Mode::Pid1, "notify-user")
        // Debian's python3: the one on root's PATH may live in root's home.
        .args(&["-p", &SENDER.replacen("n=python3", "n=/usr/bin/python3", 1)])
        .args(&["-o", "n.ready=notify", "-o", "n.user=nobody"])
        .args(&["-o", "n.environment=OUT=/dev/null,DELAY=0.2"])
        .start();
    init.wait_log("success: n entered RUNNING state, process reported ready");
    init.stop();
}

#[test]
fn a_ready_from_another_programs_process_is_ignored() {
    let s = Scratch::new("notify-other");
    let out = s.path("name").to_string_lossy().to_string();
    // `quiet` never says READY; `other` (no notify of its own) sends
    // READY=1 to the same socket, whose name it reads from the file.
    let mut init = init(Mode::Child, "notify-other")
        .args(&[
            "-p",
            &SENDER.replacen("n=", "quiet=", 1),
            "-o",
            "quiet.ready=notify",
        ])
        .arg("-o")
        .arg(&format!("quiet.environment=OUT={out},DELAY=1000"))
        .arg("-p")
        .arg(&format!(
            "other=python3 -c 'import socket, time\n\
             while True:\n    \
             try:\n        name = open(\"{out}\").read()\n        break\n    \
             except OSError:\n        time.sleep(0.05)\n\
             s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
             s.sendto(b\"READY=1\", \"\\0\" + name[1:])\n\
             print(\"sent\", flush=True)\n\
             time.sleep(1000)'"
        ))
        .start_in(Some(s));
    init.wait_log("other stdout: sent");
    std::thread::sleep(secs(0.5));
    let (code, out_text, _) = ctl(&init, &["status", "quiet"]);
    assert_eq!((code, state_of(&out_text, "quiet")), (3, "STARTING".into()));
    assert!(!init.log_text().contains("success: quiet"));
    init.stop();
}

#[test]
fn ready_tcp_waits_for_the_port_to_listen() {
    for mode in MODES {
        let port = free_port();
        let listen = format!(
            "srv=python3 -c 'import socket, time\n\
             time.sleep(1)\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind((\"127.0.0.1\", {port}))\n\
             s.listen()\n\
             time.sleep(1000)'"
        );
        let t0 = Instant::now();
        let mut init = init(mode, "tcp")
            .args(&["-p", &listen, "-o", &format!("srv.ready=tcp:{port}")])
            .start();
        let (code, out, _) = ctl(&init, &["status", "srv"]);
        assert!(code == 3 || code == 4, "{out}");
        init.wait_log(&format!(
            "success: srv entered RUNNING state, tcp:127.0.0.1:{port} accepts connections"
        ));
        assert!(t0.elapsed() >= secs(0.9), "{mode:?}: {:?}", t0.elapsed());
        // Up, probes over: the idle init sleeps.
        let pid = init.pid().as_raw();
        let switches = || {
            ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
                .iter()
                .map(|f| status_field(pid, f).unwrap().parse::<u64>().unwrap())
                .sum::<u64>()
        };
        std::thread::sleep(secs(0.3));
        let before = switches();
        std::thread::sleep(secs(1.5));
        assert_eq!(switches(), before, "{mode:?}: init woke while idle");
        init.stop();
    }
}

#[test]
fn shutdown_stops_in_reverse_start_order() {
    let catcher = |name: &str| {
        format!(
            "{name}=sh -c 'trap \"echo got-TERM; sleep 0.3; exit 0\" TERM; \
             while :; do sleep 0.05; done'"
        )
    };
    for mode in MODES {
        let mut init = init(mode, "reverse")
            .args(&["-s", "0.2", "-p", &catcher("a"), "-p", &catcher("b")])
            .args(&["-o", "b.after=a", "-p", &catcher("c")])
            .start();
        init.wait_log("success: b");
        init.wait_log("success: c");
        assert_eq!(init.stop(), 0, "{}", init.log_text());
        let log = init.log_text();
        let b_stopped = line_of(&log, "stopped: b");
        assert!(b_stopped < line_of(&log, "a stdout: got-TERM"), "{log}");
        // No order between c and the others: c stops with b, at once.
        assert!(line_of(&log, "c stdout: got-TERM") < b_stopped, "{log}");
    }
}

#[test]
fn restart_all_goes_down_and_up_in_order() {
    let mut init = init(Mode::Pid1, "restart-all")
        .args(&["-s", "0.2", "-p", "a=sleep 1000", "-p", "b=sleep 1000"])
        .args(&["-o", "b.after=a"])
        .start();
    init.wait_log("success: b");
    let (code, out, _) = ctl(&init, &["restart", "all"]);
    assert_eq!((code, out.as_str()), (0, "a: restarted\nb: restarted\n"));
    let log = init.log_text();
    let restart = line_of(&log, "control: restart all");
    let after = &log.lines().skip(restart).collect::<Vec<_>>().join("\n");
    assert!(
        line_of(after, "stopped: b") < line_of(after, "stopped: a"),
        "{log}"
    );
    assert!(
        line_of(after, "success: a") < line_of(after, "spawned: 'b'"),
        "{log}"
    );
    init.stop();
}

#[test]
fn stop_all_does_not_wait_for_the_main_command() {
    // main starts after db, but stop all leaves main running: db's stop
    // must not wait for it.
    let mut init = init(Mode::Child, "stop-all-main")
        .args(&["-s", "0.2", "-p", "db=sleep 1000", "-o", "main.after=db"])
        .main(&["sleep", "1000"])
        .start();
    init.wait_log("spawned: 'main'");
    let (code, out, err) = ctl(&init, &["stop", "all"]);
    assert_eq!((code, out.trim()), (0, "db: stopped"), "{err}");
    init.stop();
}

#[test]
fn start_of_a_waiting_program_answers_at_once() {
    let mut init = init(Mode::Child, "start-waiting")
        .args(&["-p", "a=sleep 1000", "-o", "a.autostart=false"])
        .args(&["-p", "b=sleep 1000", "-o", "b.after=a"])
        .start();
    wait_state(&init, "b", "STARTING");
    let (code, out, _) = ctl(&init, &["stop", "b"]);
    assert_eq!((code, out.trim()), (0, "b: stopped"));
    let (code, out, _) = ctl(&init, &["start", "b"]);
    assert_eq!((code, out.trim()), (3, "b: waiting for a"));
    let (code, out, _) = ctl(&init, &["start", "a"]);
    assert_eq!((code, out.trim()), (0, "a: started"));
    init.wait_log("spawned: 'b'");
    init.stop();
}

#[test]
fn the_main_command_can_wait_for_a_program() {
    for mode in MODES {
        let mut init = init(mode, "main-after")
            .args(&[
                "-p",
                "db=sh -c 'sleep 0.5; touch {dir}/db-up; exec sleep 1000'",
                "-o",
                "db.ready=exists:{dir}/db-up",
                "-o",
                "main.after=db",
            ])
            .main(&["sh", "-c", "test -e {dir}/db-up; exit $?"])
            .start();
        assert_eq!(init.exit_code(secs(10.0)), 0, "{}", init.log_text());
        let log = init.log_text();
        assert!(log.contains("waiting: main starts after db"), "{log}");
        assert!(
            line_of(&log, "success: db") < line_of(&log, "spawned: 'main'"),
            "{log}"
        );
    }
}

fn wait_cmd(init: &Init, args: &[&str]) -> (i32, String, String, f64) {
    let t0 = Instant::now();
    let (code, out, err) = ctl(init, args);
    (code, out, err, t0.elapsed().as_secs_f64())
}

#[test]
fn wait_returns_when_up_and_says_who_is_not_at_its_timeout() {
    let mut init = init(Mode::Child, "wait")
        .args(&[
            "-p",
            "slow=sh -c 'sleep 1; touch {dir}/up; exec sleep 1000'",
            "-o",
            "slow.ready=exists:{dir}/up",
        ])
        .args(&[
            "-p",
            "never=sleep 1000",
            "-o",
            "never.ready=exists:/no/such/file",
        ])
        .start();
    wait_state(&init, "slow", "STARTING");
    let (code, out, err, took) = wait_cmd(&init, &["wait", "slow"]);
    assert_eq!((code, out.trim()), (0, "slow: up"), "{err}");
    assert!(took > 0.3 && took < 3.0, "{took}");
    let (code, _, err, took) = wait_cmd(&init, &["wait", "all", "--timeout", "0.5"]);
    assert_eq!(code, 3, "{err}");
    assert!((0.5..3.0).contains(&took), "{took}");
    assert!(err.contains("not up after 0.5 s: never STARTING"), "{err}");
    init.stop();
    let (code, _, err) = ctl_at(&init.scratch.path("gone.sock"), &["wait", "all"]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn sshd_reports_ready_through_the_notify_socket() {
    const SSHD: &str = "/usr/sbin/sshd";
    if !std::path::Path::new(SSHD).exists() {
        panic!("{SSHD} is missing: .ci/run installs openssh-server");
    }
    // Debian's sshd speaks the notify protocol, through libsystemd (or,
    // in later versions, code of its own that names NOTIFY_SOCKET); a
    // build with neither never says READY=1: said, and skipped.
    let linked = Command::new("ldd")
        .arg(SSHD)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libsystemd"))
        .unwrap_or(false);
    let own = std::fs::read(SSHD)
        .map(|b| b.windows(13).any(|w| w == b"NOTIFY_SOCKET"))
        .unwrap_or(false);
    if !linked && !own {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "order: SKIPPED: {SSHD} neither links libsystemd nor reads NOTIFY_SOCKET"
        );
        return;
    }
    let s = Scratch::new("sshd-notify");
    let key = s.path("hostkey");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    let dir = s.0.display().to_string();
    s.write(
        "sshd_config",
        &format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/hostkey\nPidFile none\nUsePAM no\n"
        ),
    );
    let mut init = init(Mode::Pid1, "sshd-notify")
        .arg("-p")
        .arg(&format!("sshd={SSHD} -D -e -f {dir}/sshd_config"))
        .args(&["-o", "sshd.ready=notify"])
        .args(&["-p", "hub=sleep 1000", "-o", "hub.after=sshd"])
        .start_in(Some(s));
    let log = init.wait_log("success: sshd entered RUNNING state, process reported ready");
    init.wait_log("spawned: 'hub'");
    assert!(
        line_of(&log, "success: sshd") < line_of(&init.log_text(), "spawned: 'hub'"),
        "{log}"
    );
    init.stop();
}
