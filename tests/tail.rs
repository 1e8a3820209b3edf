//! `cocalc-init tail [-f] [-n LINES] NAME...|all`: a program's recent
//! output from init's memory, whatever became of the log file, and its
//! new lines as they come; followers that never stall init nor crowd out
//! `status`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A quiet program with a few lines, a chatty one that floods the log
/// (rotated at 2 KB), and one that prints `ping` when asked.
fn chatty_and_quiet(mode: Mode, tag: &str) -> Init {
    init(mode, tag)
        .own_log()
        .args(&["-q", "-l", "{dir}/log", "--log-max-bytes", "2048", "--log-backups", "1"])
        .args(&["-s", "0", "-g", "2"])
        .args(&["-p", "quiet=sh -c 'echo first; sleep 0.1; echo second >&2; sleep 0.1; echo third; exec sleep 1000'"])
        .args(&["-p", "chatty=sh -c 'while :; do echo noise noise noise; sleep 0.002; done'"])
        .args(&[
            "-p",
            "pinger=sh -c 'while :; do if [ -e {dir}/go ]; then rm -f {dir}/go; echo ping; fi; sleep 0.01; done'",
        ])
        .main(&["sleep", "1000"])
        .start()
}

fn tail(init: &Init, words: &[&str]) -> (i32, String, String) {
    let mut all = vec!["tail"];
    all.extend_from_slice(words);
    ctl(init, &all)
}

/// A `tail -f` client, its stdout read line by line.
struct Follow {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follow {
    fn start(init: &Init, words: &[&str]) -> Follow {
        let mut child = Command::new(BIN)
            .arg("tail")
            .arg("-f")
            .args(words)
            .arg("--control")
            .arg(socket(init))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// The first line holding `needle` within `limit`.
    fn until(&self, needle: &str, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What init's fds are open on (`socket:[123]`, paths): a follower's
/// connection is a socket that was not there before.
fn open_files(init: &Init) -> std::collections::HashSet<String> {
    std::fs::read_dir(format!("/proc/{}/fd", init.pid()))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|target| target.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_programs_last_lines_outlive_the_logs_rotation() {
    for mode in MODES {
        let mut init = chatty_and_quiet(mode, "tail-rotation");
        wait_state(&init, "quiet", "RUNNING");
        // The chatty program rotates the 2 KB log many times over.
        init.wait_log_n("noise", 1, secs(10.0));
        std::thread::sleep(secs(1.0));
        assert!(
            !init.log_text().contains("quiet stdout: first"),
            "the log has let it go"
        );
        let (code, out, err) = tail(&init, &["quiet"]);
        assert_eq!(code, 0, "{out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].ends_with(" stdout: first"), "{out}");
        assert!(lines[1].ends_with(" stderr: second"), "{out}");
        assert!(lines[2].ends_with(" stdout: third"), "{out}");
        // The log's stamp: `2026-12-07 10:00:00,123 stdout: first`.
        assert_eq!(lines[0].find(" stdout"), Some(23), "{out}");
        // -n, and a program that printed a lot: its last lines only.
        let (code, out, _) = tail(&init, &["-n", "2", "quiet"]);
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.ends_with("stdout: third\n"), "{out}");
        let (_, out, _) = tail(&init, &["chatty"]);
        assert_eq!(out.lines().count(), 10, "tail(1)'s default: {out}");
        assert!(
            out.lines()
                .all(|l| l.ends_with("stdout: noise noise noise")),
            "{out}"
        );
        init.stop();
    }
}

#[test]
fn names_all_main_and_unknown_names() {
    for mode in MODES {
        let mut init = chatty_and_quiet(mode, "tail-names");
        wait_state(&init, "quiet", "RUNNING");
        // Several programs: each line says whose it is, in time order.
        let (code, out, _) = tail(&init, &["-n", "50", "quiet", "chatty"]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.lines()
                .all(|l| l.contains(" quiet std") || l.contains(" chatty stdout: ")),
            "{out}"
        );
        let stamps: Vec<&str> = out.lines().map(|l| &l[..23]).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{out}");
        let (code, out, _) = tail(&init, &["-n", "500", "all"]);
        assert_eq!(code, 0);
        assert!(out.contains(" quiet stdout: first"), "{out}");
        assert!(out.contains(" chatty stdout: noise"), "{out}");
        assert!(!out.contains("main"), "{out}");
        // The main command's output is init's own.
        let (code, out, _) = tail(&init, &["main"]);
        assert_eq!(code, 1);
        assert!(
            out.contains("main: ERROR (its output is not captured"),
            "{out}"
        );
        let (code, out, _) = tail(&init, &["nope"]);
        assert_eq!(code, 1);
        assert!(out.contains("nope: ERROR (no such program)"), "{out}");
        // Nothing to follow: answered and closed, not kept open.
        let (code, out, _) = tail(&init, &["-f", "nope"]);
        assert_eq!(code, 1, "{out}");
        // A usage error, before any init is asked.
        let (code, _, err) = tail(&init, &["-n", "x", "quiet"]);
        assert_eq!(code, 2, "{err}");
        init.stop();
    }
}

#[test]
fn a_follower_sees_new_lines_at_once_and_leaves_nothing_behind() {
    for mode in MODES {
        // No chatty neighbour here: its log rotations reopen the log's fds,
        // and init's fd count must move only with the follower.
        let mut init = init(mode, "tail-follow")
            .args(&["-s", "0", "-g", "2"])
            .args(&[
                "-p",
                "pinger=sh -c 'while :; do if [ -e {dir}/go ]; then rm -f {dir}/go; echo ping; fi; sleep 0.01; done'",
            ])
            .start();
        wait_state(&init, "pinger", "RUNNING");
        let before = open_files(&init);
        let follow = Follow::start(&init, &["-n", "0", "pinger"]);
        // Connected once init holds a socket it did not hold before.
        let theirs: Vec<String> = wait_for(secs(10.0), "the follower", || {
            let new: Vec<String> = open_files(&init)
                .difference(&before)
                .filter(|f| f.starts_with("socket:"))
                .cloned()
                .collect();
            (!new.is_empty()).then_some(new)
        });
        let asked = Instant::now();
        std::fs::write(init.scratch.path("go"), "").unwrap();
        let line = follow
            .until("stdout: ping", secs(10.0))
            .expect("no ping followed");
        assert!(!line.contains("pinger"), "one program: no name: {line}");
        let took = asked.elapsed();
        // The bar (200 ms) is the benchmark's; here: it came, and soon.
        assert!(took < secs(5.0), "{took:?}");
        // Killed: init closes its end; no fd is left.
        drop(follow);
        wait_for(secs(10.0), "the follower's fd closed", || {
            let open = open_files(&init);
            (!theirs.iter().any(|f| open.contains(f))).then_some(())
        });
        init.stop();
    }
}

#[test]
fn sixteen_followers_leave_status_probes_room() {
    for mode in MODES {
        let mut init = chatty_and_quiet(mode, "tail-many");
        wait_state(&init, "quiet", "RUNNING");
        let followers: Vec<Follow> = (0..16).map(|_| Follow::start(&init, &["chatty"])).collect();
        for f in &followers {
            assert!(
                f.until("noise", secs(10.0)).is_some(),
                "a follower got nothing"
            );
        }
        for _ in 0..5 {
            let (code, out, err) = ctl(&init, &["status", "quiet"]);
            assert_eq!(code, 0, "{out}{err}");
            assert!(out.contains("RUNNING"), "{out}");
        }
        // One more follower is told, not kept.
        let (code, out, _) = tail(&init, &["-f", "quiet"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("too many followers"), "{out}");
        drop(followers);
        init.stop();
    }
}

#[test]
fn a_follower_that_does_not_read_loses_lines_with_a_marker() {
    for mode in MODES {
        // A flood: a follower that stops reading falls behind at once.
        let mut init = init(mode, "tail-slow")
            .args(&["-s", "0", "-g", "2"])
            .args(&["-p", "flood=yes 0123456789012345678901234567890123456789"])
            .args(&["-p", "quiet=sleep 1000"])
            .start();
        wait_state(&init, "flood", "RUNNING");
        // Its reader sleeps: the pipe, the socket and init's buffer fill.
        let mut slow = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{BIN} tail -f flood --control {} | {{ sleep 3; cat; }}",
                socket(&init).display()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Meanwhile init goes on: status answers.
        for _ in 0..10 {
            let (code, _, _) = ctl(&init, &["status", "quiet"]);
            assert_eq!(code, 0);
            std::thread::sleep(secs(0.2));
        }
        let out = slow.stdout.take().unwrap();
        let (send, marker) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("lines dropped") {
                    let _ = send.send(line);
                    return;
                }
            }
        });
        let line = marker.recv_timeout(secs(20.0));
        let _ = slow.kill();
        let _ = Command::new("pkill").args(["-f", "tail -f flood"]).status();
        let _ = slow.wait();
        let line = line.expect("no marker of dropped lines");
        assert!(
            line.starts_with("… ") && line.ends_with(" lines dropped …"),
            "{line}"
        );
        init.stop();
    }
}
