//! The log file: format, rotation with no line lost, and failures that
//! must not stop supervision.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use common::*;
use nix::sys::signal::Signal;
use std::ffi::OsStr;

#[test]
fn lines_have_the_supervisord_format() {
    let init = init(Mode::Child, "format")
        .args(&["-p", "hello=echo hi"])
        .start();
    let log = init.wait_log("exited: hello");
    for line in log.lines() {
        let b = line.as_bytes();
        assert!(line.len() > 29, "{line}");
        assert!(b[..4].iter().all(u8::is_ascii_digit), "{line}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19], b[23]),
            (b'-', b'-', b' ', b':', b':', b',', b' '),
            "{line}"
        );
        let level = &line[24..28];
        assert!(
            ["INFO", "WARN", "ERRO", "DEBG", "CRIT"].contains(&level),
            "{line}"
        );
    }
    assert!(log.contains(" INFO hello stdout: hi\n"), "{log}");
}

#[test]
fn rotation_loses_no_line() {
    let s = Scratch::new("rotation");
    let count = 4000;
    let program =
        format!("n=sh -c 'i=0; while [ $i -lt {count} ]; do echo line-$i; i=$((i+1)); done'");
    let init = init(Mode::Child, "rotation")
        .args(&[
            "--log-max-bytes",
            "20000",
            "--log-backups",
            "100",
            "-p",
            &program,
        ])
        .start_in(Some(s));
    init.wait_log("exited: n (exit status 0; expected)");
    let mut files: Vec<std::path::PathBuf> = (1..=100)
        .map(|k| init.scratch.path(&format!("log.{k}")))
        .filter(|p| p.exists())
        .collect();
    assert!(files.len() >= 5, "only {} rotated files", files.len());
    files.reverse();
    files.push(init.log.clone());
    let mut all = String::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.len() <= 20000,
            "{} has {} bytes",
            f.display(),
            text.len()
        );
        assert!(text.ends_with('\n'));
        all.push_str(&text);
    }
    let got: Vec<&str> = all
        .lines()
        .filter_map(|l| l.split_once(" n stdout: ").map(|(_, v)| v))
        .collect();
    let want: Vec<String> = (0..count).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn an_unwritable_log_does_not_stop_supervision() {
    // The log path is a directory: it can never be opened as a file.
    let s = Scratch::new("unwritable");
    std::fs::create_dir(s.path("log")).unwrap();
    let mut init = init(Mode::Child, "unwritable")
        .args(&["-s", "0", "-b", "0.1", "-p", "r=sh -c 'echo round; exit 1'"])
        .start_in(Some(s));
    wait_for(secs(10.0), "restarts on stderr", || {
        (init
            .stderr_text()
            .matches("exited: r (exit status 1; not expected)")
            .count()
            >= 3)
            .then_some(())
    });
    let err = init.stderr_text();
    // Told once, even with -q, and every line still reaches stderr.
    assert_eq!(err.matches("cannot write the log file").count(), 1, "{err}");
    assert!(err.contains("r stdout: round"), "{err}");
    assert_eq!(init.stop(), 0);
}

/// An init (child) whose one program prints `round` and fails, started
/// again every `backoff` seconds, logging to `log` (in `s`).
fn rounds(tag: &str, s: Scratch, log: &Path, backoff: &str) -> Init {
    let logs = log.to_string_lossy().to_string();
    init(Mode::Child, tag)
        .own_log()
        .args(&[
            "-q",
            "-l",
            &logs,
            "-s",
            "0",
            "-b",
            backoff,
            "-p",
            "r=sh -c 'echo round; exit 1'",
        ])
        .start_in(Some(s))
}

/// Waits until `log` holds a `round` line.
fn wait_round(log: &Path, what: &str) {
    wait_for(secs(10.0), what, || {
        std::fs::read_to_string(log)
            .ok()
            .filter(|t| t.contains("round"))
    });
}

#[test]
fn a_log_renamed_away_by_logrotate_is_started_anew() {
    let s = Scratch::new("renamed");
    let log = s.path("log");
    let old = s.path("log.1");
    let init = rounds("renamed", s, &log, "0.1");
    wait_round(&log, "first lines");
    // What logrotate does without copytruncate.
    std::fs::rename(&log, &old).unwrap();
    wait_round(&log, "a new log file");
    let kept = std::fs::read_to_string(&old).unwrap();
    let before = std::fs::read_to_string(&log)
        .unwrap()
        .matches("round")
        .count();
    wait_for(secs(10.0), "more lines in the new file", || {
        let now = std::fs::read_to_string(&log).ok()?.matches("round").count();
        (now >= before + 3).then_some(())
    });
    // Nothing more went into the renamed file.
    assert_eq!(std::fs::read_to_string(&old).unwrap(), kept);
    drop(init);
}

#[test]
fn a_full_stderr_pipe_never_stops_init() {
    for mode in MODES {
        // Standard error is a pipe nobody reads (a stalled log driver):
        // it fills after 64 KiB, and init must go on all the same.
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let mut write_end = Some(write_end);
        let flood = "i=0; while [ $i -lt 3000 ]; do \
                     echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; \
                     i=$((i+1)); done; echo flood-done; sleep 30";
        let init = init(mode, "full-stderr")
            .own_log()
            .args(&["-l", "{dir}/log", "-p", &format!("flood=sh -c '{flood}'")])
            .setup(move |c| {
                if let Some(fd) = write_end.take() {
                    c.stderr(std::process::Stdio::from(fd));
                }
            })
            .start();
        let log_path = init.scratch.path("log");
        let log = wait_for(secs(10.0), "every line in the log file", || {
            std::fs::read_to_string(&log_path)
                .ok()
                .filter(|t| t.contains("flood stdout: flood-done"))
        });
        assert_eq!(log.matches("flood stdout: line-").count(), 3000);
        assert!(log.contains("WARN standard error is full"), "{log}");
        // Still itself: it takes a signal and stops its program, while
        // the pipe is drained so that its last lines fit.
        let (drained, was_drained) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut file = std::fs::File::from(read_end);
            // The whole pipe in one read: init is idle, so it is empty after.
            let mut seen = vec![0; 1 << 20];
            let n = std::io::Read::read(&mut file, &mut seen).unwrap();
            seen.truncate(n);
            drained.send(()).unwrap();
            // To the end: when init (and unshare) are gone.
            std::io::Read::read_to_end(&mut file, &mut seen).unwrap();
            seen
        });
        // Only once the pipe has room: lines written while it is still full
        // are dropped by design, and the reader thread may start late.
        was_drained.recv_timeout(secs(10.0)).unwrap();
        let mut init = init;
        assert_eq!(init.stop(), 0, "{mode:?}");
        let seen = reader.join().unwrap();
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("flood stdout: line-0-"), "{mode:?}");
        let tail = &text[text.len().saturating_sub(600)..];
        assert!(
            text.contains("cocalc-init: standard error was full:"),
            "{mode:?}: {tail}"
        );
        assert!(tail.contains("exiting with status 0"), "{mode:?}: {tail}");
    }
}

#[test]
fn a_deleted_log_folder_is_made_again() {
    let s = Scratch::new("deleted");
    let log = s.path("sub/dir/log");
    let init = rounds("deleted", s, &log, "0.2");
    wait_round(&log, "first lines");
    std::fs::remove_dir_all(init.scratch.path("sub")).unwrap();
    wait_round(&log, "the log back");
}

#[test]
fn lines_are_copied_to_stderr_unless_quiet() {
    let s = Scratch::new("copy");
    let logs = s.path("log").to_string_lossy().to_string();
    let mut loud = init(Mode::Child, "loud")
        .own_log()
        .args(&["-l", &logs])
        .main(&["echo"])
        .start_in(Some(s));
    loud.exit_code(secs(10.0));
    assert!(loud.stderr_text().contains("spawned: 'main'"));
    assert!(loud.log_text().contains("spawned: 'main'"));
    let mut quiet = init(Mode::Child, "quiet").main(&["echo"]).start();
    quiet.exit_code(secs(10.0));
    assert_eq!(quiet.stderr_text(), "");
    assert!(quiet.log_text().contains("spawned: 'main'"));
}

#[test]
fn log_dash_means_stderr_only_whatever_quiet_says() {
    let mut init = init(Mode::Child, "dash")
        .own_log()
        .args(&["-q", "-l", "-"])
        .main(&["true"])
        .start();
    init.exit_code(secs(10.0));
    assert!(init.stderr_text().contains("exited: main (exit status 0)"));
    assert!(!init.log.exists());
}

#[test]
fn tini_style_runs_print_nothing_but_errors() {
    let quiet: [&[&str]; 3] = [
        &["-l", "-", "--log-level", "error"],
        &["-l", "-", "--log-level", "warn"],
        &["-l", "/dev/null"],
    ];
    for flags in quiet {
        let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        args.extend(["--", "true"].map(OsStr::new));
        let (code, stderr) = run_to_end(&args, secs(10.0));
        assert_eq!((code, stderr.as_str()), (0, ""), "{flags:?}");
    }
    // An error still shows, at `error` and with the log on /dev/null.
    for flags in [
        &["-l", "-", "--log-level", "error"][..],
        &["-l", "/dev/null"],
    ] {
        let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        args.extend(["--", "no-such-command-here"].map(OsStr::new));
        let (code, stderr) = run_to_end(&args, secs(10.0));
        assert_eq!(code, 127, "{flags:?}");
        assert!(
            stderr.contains("can't find command 'no-such-command-here'"),
            "{flags:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{flags:?}: {stderr}");
    }
}

#[test]
fn log_dev_stderr_means_stderr_and_warn_keeps_warnings() {
    let mut init = init(Mode::Child, "dev-stderr")
        .own_log()
        .args(&["-l", "/dev/stderr", "--log-level", "warn"])
        .args(&["-s", "0", "-b", "0.1", "-p", "bad=sh -c 'echo out; exit 1'"])
        .start();
    init.signal(Signal::SIGTERM);
    init.exit_code(secs(10.0));
    let text = init.stderr_text();
    assert!(text.contains("WARN received SIGTERM"), "{text}");
    assert!(!text.contains(" INFO "), "{text}");
}

#[test]
fn a_closed_stderr_neither_stops_init_nor_reaches_the_programs() {
    // Init's stderr is a pipe nobody reads: every copy of a log line
    // raises SIGPIPE in init, which must not be forwarded as if sent to it.
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    drop(read_end);
    let mut write_end = Some(write_end);
    let s = Scratch::new("epipe");
    let logs = s.path("log").to_string_lossy().to_string();
    let mut init = init(Mode::Child, "epipe")
        .own_log()
        .args(&["-l", &logs])
        .args(&["-p", "t=bash -c 'trap \"echo PIPE >> {dir}/got\" PIPE; for i in $(seq 50); do echo $i; sleep 0.01; done; sleep 30'"])
        .setup(move |c| {
            if let Some(fd) = write_end.take() {
                c.stderr(std::process::Stdio::from(fd));
            }
        })
        .start_in(Some(s));
    init.wait_log("t stdout: 50");
    assert!(
        !init.scratch.path("got").exists(),
        "SIGPIPE reached the program"
    );
    // A SIGPIPE sent to init from outside is still forwarded. One that
    // lands while a self-raised one is pending merges with it in the
    // kernel (signals of one kind coalesce), so send until one gets
    // through; without forwarding none ever would.
    let got = init.scratch.path("got");
    for _ in 0..20 {
        init.signal(Signal::SIGPIPE);
        if wait_until(secs(0.5), || got.exists()) {
            break;
        }
    }
    assert!(got.exists(), "an outside SIGPIPE was not forwarded");
    assert_eq!(init.stop(), 0);
}

fn minute_of_day(line: &str) -> i32 {
    line[11..13].parse::<i32>().unwrap() * 60 + line[14..16].parse::<i32>().unwrap()
}

#[test]
fn stamps_are_local_time_per_tz() {
    let mut minutes = Vec::new();
    // A POSIX rule, and a zone file by name (CI installs tzdata).
    for tz in ["UTC0", "JST-9", "<+0530>-5:30", "Asia/Tokyo"] {
        let mut init = init(Mode::Child, "tz")
            .setup(move |c| {
                c.env("TZ", tz);
            })
            .main(&["true"])
            .start();
        init.exit_code(secs(10.0));
        minutes.push(minute_of_day(init.log_text().lines().next().unwrap()));
    }
    // The runs are apart by a little: a minute may turn in between.
    for (i, want) in [(1, 9 * 60), (2, 5 * 60 + 30), (3, 9 * 60)] {
        let got = (minutes[i] - minutes[0]).rem_euclid(24 * 60);
        assert!((want..=want + 1).contains(&got), "{minutes:?}");
    }
}

#[test]
fn a_very_long_line_is_split_never_dropped() {
    let init = init(Mode::Child, "long-line")
        .args(&[
            "-p",
            "long=sh -c 'head -c 20000 /dev/zero | tr \"\\\\0\" x; echo; echo after'",
        ])
        .start();
    let log = init.wait_log("exited: long");
    let pieces: Vec<usize> = log
        .lines()
        .filter_map(|l| l.split_once(" long stdout: ").map(|(_, v)| v))
        .filter(|v| v.starts_with('x'))
        .map(str::len)
        .collect();
    assert_eq!(pieces, [8192, 8192, 20000 - 2 * 8192], "{log}");
    assert!(log.contains("long stdout: after"));
}
