//! Faults that must not stop supervision: a full disk, a read-only log,
//! misbehaving programs, too few file descriptors, fault signals from
//! outside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs (needs root)");
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, mode: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn ticker(name: &str) -> String {
    format!("{name}=sh -c 'i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.02; done'")
}

#[test]
fn a_full_disk_does_not_stop_supervision_and_the_log_resumes() {
    let s = Scratch::new("disk-full");
    let fs = Tmpfs::mount(&s.path("small"), "64k");
    // Leave about 8 KiB free.
    std::fs::write(fs.0.join("filler"), vec![0u8; 56 * 1024]).unwrap();
    let log = fs.0.join("log");
    let logs = log.to_string_lossy().to_string();
    let mut init = init(Mode::Pid1, "disk-full")
        .log_at(&log)
        .args(&[
            "-q",
            "-l",
            &logs,
            "-s",
            "0",
            "-b",
            "0.1",
            "-p",
            &ticker("t"),
            "-p",
            "r=sh -c 'sleep 0.2; exit 1'",
        ])
        .start_in(Some(s));
    wait_for(secs(20.0), "the disk to fill", || {
        init.stderr_text()
            .contains("cannot write the log file")
            .then_some(())
    });
    let err = init.stderr_text();
    assert!(err.contains("No space left on device"), "{err}");
    // Supervision goes on: restarts keep happening, lines reach stderr.
    let before = init
        .stderr_text()
        .matches("exited: r (exit status 1; not expected)")
        .count();
    wait_for(secs(10.0), "restarts while full", || {
        (init
            .stderr_text()
            .matches("exited: r (exit status 1; not expected)")
            .count()
            >= before + 3)
            .then_some(())
    });
    assert_eq!(
        init.stderr_text()
            .matches("cannot write the log file")
            .count(),
        1,
        "said once"
    );
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    wait_for(secs(10.0), "the log to resume", || {
        init.stderr_text()
            .contains("writing the log file")
            .then_some(())
    });
    let size = std::fs::metadata(&log).unwrap().len();
    wait_for(secs(10.0), "new lines in the file", || {
        (std::fs::metadata(&log).unwrap().len() > size + 200).then_some(())
    });
    init.signal(Signal::SIGTERM);
    assert!([0, 1].contains(&init.exit_code(secs(15.0))));
    drop(fs);
}

#[test]
fn a_read_only_log_does_not_stop_supervision() {
    let s = Scratch::new("read-only");
    let fs = Tmpfs::mount(&s.path("ro"), "1m");
    fs.remount("ro");
    let log = fs.0.join("log");
    let logs = log.to_string_lossy().to_string();
    let mut init = init(Mode::Child, "read-only")
        .log_at(&log)
        .args(&["-q", "-l", &logs, "-p", &ticker("t")])
        .start_in(Some(s));
    wait_for(secs(10.0), "ticks on stderr", || {
        init.stderr_text()
            .contains("t stdout: tick-3")
            .then_some(())
    });
    let err = init.stderr_text();
    assert!(
        err.contains("cannot write the log file") && err.contains("Read-only file system"),
        "{err}"
    );
    fs.remount("rw");
    wait_for(secs(10.0), "the log to resume", || {
        init.stderr_text()
            .contains("writing the log file")
            .then_some(())
    });
    wait_for(secs(10.0), "ticks in the file", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("t stdout: tick"))
    });
    assert_eq!(init.stop(), 0);
    drop(fs);
}

#[test]
fn odd_output_is_logged_with_invalid_utf8_replaced() {
    let init = init(Mode::Child, "odd-output")
        .args(&["-p", r"bytes=printf 'nul:\000:ff:\377:cr:\r:end\n'"])
        .args(&[
            "-p",
            "closer=sh -c 'exec >&-; echo still here >&2; exit 3'",
            "-x",
            "0,3",
        ])
        .start();
    init.wait_log("exited: bytes (exit status 0; expected)");
    init.wait_log("exited: closer (exit status 3; expected)");
    let raw = std::fs::read(&init.log).unwrap();
    // NUL and CR are kept; the byte that is not UTF-8 is U+FFFD.
    let needle = "bytes stdout: nul:\x00:ff:\u{fffd}:cr:\r:end\n".as_bytes();
    assert!(
        raw.windows(needle.len()).any(|w| w == needle),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(init.log_text().contains("closer stderr: still here"));
}

#[test]
fn a_program_that_stops_itself_is_still_stopped_within_the_grace() {
    for mode in MODES {
        let mut init = init(mode, "sigstop")
            .args(&[
                "-g",
                "5",
                "-p",
                "stopper=sh -c 'touch {dir}/ready; kill -STOP $$; sleep 30'",
            ])
            .start();
        let ready = init.scratch.path("ready");
        wait_for(secs(10.0), "ready", || ready.exists().then_some(()));
        // The program can run before init has written its spawn line.
        init.wait_log("spawned: 'stopper'");
        let pid = init.spawned_pids("stopper")[0];
        if mode == Mode::Child {
            wait_for(secs(10.0), "stopped", || {
                (stat_of(pid)?.state == 'T').then_some(())
            });
        }
        let t0 = Instant::now();
        // SIGCONT follows the stop signal: no wait for the grace.
        assert_eq!(init.stop(), 0, "{mode:?}: {}", init.log_text());
        assert!(t0.elapsed() < secs(3.0), "{mode:?}: {:?}", t0.elapsed());
        assert!(
            init.log_text()
                .contains("stopped: stopper (terminated by SIGTERM)")
        );
    }
}

#[test]
fn a_flooding_program_does_not_delay_the_others() {
    let mut init = init(Mode::Child, "flood")
        .args(&["--log-max-bytes", "0"])
        .args(&["-p", "flood=sh -c 'yes 0123456789012345678901234567890123456789 | head -c 50000000; sleep 30'"])
        .args(&["-p", "tick=sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.1; done; touch {dir}/ticked; sleep 30'"])
        .start();
    let ticked = init.scratch.path("ticked");
    wait_for(secs(30.0), "the ticks", || ticked.exists().then_some(()));
    std::thread::sleep(secs(0.2));
    init.stop();
    let log = init.log_text();
    let stamps: Vec<i64> = log
        .lines()
        .filter(|l| l.contains("tick stdout: tick-"))
        .map(|l| {
            let t = &l[11..23];
            let (h, m, s, ms): (i64, i64, i64, i64) = (
                t[0..2].parse().unwrap(),
                t[3..5].parse().unwrap(),
                t[6..8].parse().unwrap(),
                t[9..12].parse().unwrap(),
            );
            ((h * 60 + m) * 60 + s) * 1000 + ms
        })
        .collect();
    let worst = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    eprintln!("flood: largest gap between ticks logged 100 ms apart: {worst} ms");
    assert!(worst < 1000, "ticks were held up: {stamps:?}");
}

#[test]
fn too_few_file_descriptors_give_spawn_errors_and_the_rest_runs() {
    let mut args: Vec<String> = vec!["-s".into(), "0".into(), "-b".into(), "0.5".into()];
    for i in 0..20 {
        args.push("-p".into());
        args.push(format!("p{i}=sleep 30"));
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut init = init(Mode::Child, "nofile")
        .args(&arg_refs)
        .setup(|c| unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                let lim = nix::libc::rlimit {
                    rlim_cur: 32,
                    rlim_max: 32,
                };
                nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        })
        .start();
    let log = init.wait_log_n("Too many open files", 2, secs(10.0));
    let running = (0..20)
        .filter(|i| !init.spawned_pids(&format!("p{i}")).is_empty())
        .count();
    eprintln!("nofile: {running} of 20 programs running with RLIMIT_NOFILE 32");
    assert!((5..20).contains(&running), "{log}");
    assert!(
        log.contains("spawnerr: couldn't run command 'sleep': Too many open files"),
        "{log}"
    );
    assert_eq!(init.stop(), 0);
}

#[test]
fn as_pid1_fault_signals_sent_from_outside_do_not_kill_init() {
    let mut init = init(Mode::Pid1, "segv").args(&["-p", "s=sleep 30"]).start();
    init.wait_log("spawned: 's'");
    for sig in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGABRT,
        Signal::SIGSYS,
        Signal::SIGTRAP,
    ] {
        init.signal(sig);
    }
    std::thread::sleep(secs(0.3));
    assert!(init.child.try_wait().unwrap().is_none(), "init died");
    assert_eq!(init.stop(), 0);
}

#[test]
fn the_log_file_is_private_even_with_a_zero_umask() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("umask");
    let log = s.path("new/dir/log");
    let logs = log.to_string_lossy().to_string();
    let mut init = init(Mode::Child, "umask")
        .own_log()
        .args(&["-q", "-l", &logs])
        .setup(|c| unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                nix::libc::umask(0);
                Ok(())
            });
        })
        .main(&["true"])
        .start_in(Some(s));
    init.exit_code(secs(10.0));
    let file_mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    let dir_mode = std::fs::metadata(log.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(file_mode, 0o640);
    assert_eq!(dir_mode, 0o750);
}

#[test]
fn a_symlink_planted_at_the_log_path_is_not_followed() {
    let s = Scratch::new("planted");
    let target = s.write("victim", "");
    std::os::unix::fs::symlink(&target, s.path("log")).unwrap();
    let mut init = init(Mode::Child, "planted")
        .main(&["echo", "x"])
        .start_in(Some(s));
    assert_eq!(init.exit_code(secs(10.0)), 0);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    assert!(init.stderr_text().contains("cannot write the log file"));
}
