//! What a supervisord set-up moved to cocalc-init relies on, against the
//! real binary as PID 1 and as a plain child: `%(ENV_X)s` and
//! `%(program_name)s` in commands and values, `key = value` with spaces,
//! children that find their init, per-program output destinations, the
//! log on init's standard output, and a restart of an `after=` chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

#[test]
fn supervisord_expansions_and_spaced_keys_are_understood() {
    for mode in MODES {
        let mut init = init(mode, "expand")
            .args(&[
                "-p",
                "show=sh -c 'echo \"cmd=%(ENV_MIG_WORD)s/%(program_name)s 100%% $APP\"; exec sleep 1000'",
                "-o",
                "show.environment = APP=\"%(ENV_MIG_WORD)s-%(program_name)s\"",
                "-o",
                "show.stopwaitsecs = 3 ",
            ])
            .setup(|c| {
                c.env("MIG_WORD", "hello world");
            })
            .start();
        init.wait_log("cmd=hello world/show 100% hello world-show");
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn an_undefined_variable_is_a_usage_error_that_names_it() {
    refused(
        &["-p", "web=echo %(ENV_MIG_NOT_SET_ANYWHERE)s"],
        "--program 'web=echo %(ENV_MIG_NOT_SET_ANYWHERE)s': %(ENV_MIG_NOT_SET_ANYWHERE)s: \
         the variable MIG_NOT_SET_ANYWHERE is not in init's environment",
    );
    refused(
        &[
            "-p",
            "web=true",
            "-o",
            "web.directory=%(ENV_MIG_NOT_SET_ANYWHERE)s",
        ],
        "--option 'web.directory=%(ENV_MIG_NOT_SET_ANYWHERE)s': %(ENV_MIG_NOT_SET_ANYWHERE)s",
    );
    refused(&["-p", "web=echo %(here)s"], "%(here)s is not known");
}

#[test]
fn the_log_goes_to_standard_output_when_asked() {
    for mode in MODES {
        for spelling in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            let s = Scratch::new("log-stdout");
            let out = s.path("stdout");
            let file = std::fs::File::create(&out).unwrap();
            let mut init = init(mode, "log-stdout")
                .own_log()
                .args(&[
                    "-l",
                    spelling,
                    "-p",
                    "hello=sh -c 'echo hi; exec sleep 1000'",
                ])
                .setup(move |c| {
                    c.stdout(file.try_clone().unwrap());
                })
                .start_in(Some(s));
            wait_for(secs(10.0), "the program's line on stdout", || {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                text.contains("INFO hello stdout: hi").then_some(())
            });
            assert_eq!(init.stop(), 0);
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(
                text.contains("exiting with status 0"),
                "{mode:?} {spelling}: {text}"
            );
            assert!(
                !init.stderr_text().contains("hello stdout"),
                "{mode:?} {spelling}: {}",
                init.stderr_text()
            );
        }
    }
}

#[test]
fn check_and_the_run_agree_on_a_log_behind_a_link() {
    let s = Scratch::new("log-link");
    let link = s.path("log");
    std::os::unix::fs::symlink(s.path("target"), &link).unwrap();
    let (code, err) = run_to_end(
        &[
            "--check".as_ref(),
            "-l".as_ref(),
            link.as_os_str(),
            "--".as_ref(),
            "true".as_ref(),
        ],
        secs(10.0),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is a symbolic link, which init does not follow"),
        "{err}"
    );
}

#[test]
fn a_program_finds_its_init_through_its_environment() {
    for mode in MODES {
        let kick = format!(
            "kick=sh -c 'echo \"prog=$COCALC_INIT_PROGRAM ctl=$COCALC_INIT_CONTROL\"; \
             {BIN} restart web; echo \"restart=$?\"; exec sleep 1000'"
        );
        let mut init = init(mode, "env-control")
            .args(&["-p", "web=sleep 1000", "-p", &kick, "-o", "kick.after=web"])
            .main(&[
                "sh",
                "-c",
                "echo \"main=$COCALC_INIT_PROGRAM\" >&2; exec sleep 1000",
            ])
            .start();
        let log = init.wait_log("kick stdout: restart=");
        let sock = socket(&init).to_string_lossy().to_string();
        assert!(
            log.contains(&format!("kick stdout: prog=kick ctl={sock}")),
            "{log}"
        );
        assert!(log.contains("kick stdout: restart=0"), "{log}");
        assert_eq!(init.spawned_pids("web").len(), 2, "{log}");
        assert!(
            init.stderr_text().contains("main=main"),
            "{}",
            init.stderr_text()
        );
        // The main command's status: SIGTERM.
        assert_eq!(init.stop(), 143);
    }
}

#[test]
fn a_restart_of_an_after_chain_answers_once_all_are_back() {
    for mode in MODES {
        let mut init = init(mode, "chain")
            .args(&[
                "-s",
                "0.3",
                "-p",
                "xvfb=sleep 1000",
                "-p",
                "x11vnc=sleep 1000",
                "-o",
                "x11vnc.after=xvfb",
                "-p",
                "novnc=sleep 1000",
                "-o",
                "novnc.after=x11vnc",
            ])
            .start();
        wait_state(&init, "novnc", "RUNNING");
        let (code, out, err) = ctl(&init, &["restart", "xvfb", "x11vnc", "novnc"]);
        assert_eq!(code, 0, "{out}{err}\n{}", init.log_text());
        assert_eq!(
            out, "xvfb: restarted\nx11vnc: restarted\nnovnc: restarted\n",
            "{err}"
        );
        for name in ["xvfb", "x11vnc", "novnc"] {
            assert_eq!(init.spawned_pids(name).len(), 2, "{}", init.log_text());
        }
        assert_eq!(init.stop(), 0);
    }
}

/// A program that prints `count` numbered lines as fast as it can.
fn printer(name: &str, count: usize) -> String {
    format!(
        "{name}=sh -c 'i=0; while [ $i -lt {count} ]; do echo \"{name} $i {{\\\"level\\\":\\\"info\\\",\\\"n\\\":$i}}\"; i=$((i+1)); done'"
    )
}

#[test]
fn raw_output_reaches_inits_stdout_as_printed_with_lines_whole() {
    for mode in MODES {
        let s = Scratch::new("raw-stdout");
        let out = s.path("stdout");
        let file = std::fs::File::create(&out).unwrap();
        let mut args: Vec<String> = Vec::new();
        for name in ["p1", "p2", "p3", "p4"] {
            args.extend([
                "-p".into(),
                printer(name, 400),
                "-o".into(),
                format!("{name}.stdout_logfile=/dev/stdout"),
                "-o".into(),
                format!("{name}.stdout_logfile_maxbytes=0"),
                "-o".into(),
                format!("{name}.autorestart=false"),
            ]);
        }
        // Bytes as they are: no newline at the end, not UTF-8, a tab, a CR.
        args.extend([
            "-p".into(),
            "bytes=printf 'a\\377\\tb\\r\\nlast'".into(),
            "-o".into(),
            "bytes.stderr_logfile=/dev/fd/2".into(),
            "-o".into(),
            "bytes.stdout_logfile=/proc/self/fd/2".into(),
            "-o".into(),
            "bytes.autorestart=false".into(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut init = init(mode, "raw-stdout")
            .args(&args)
            .setup(move |c| {
                c.stdout(file.try_clone().unwrap());
            })
            .start_in(Some(s));
        for name in ["p1", "p2", "p3", "p4", "bytes"] {
            init.wait_log(&format!("exited: {name} (exit status 0; expected)"));
        }
        assert_eq!(init.stop(), 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let mut seen = [0usize; 4];
        for line in text.lines() {
            let (name, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let k: usize = name.trim_start_matches('p').parse().unwrap();
            let n = seen[k - 1];
            assert_eq!(
                rest,
                format!("{n} {{\"level\":\"info\",\"n\":{n}}}"),
                "{mode:?}: a line cut or out of order"
            );
            seen[k - 1] += 1;
        }
        assert_eq!(seen, [400; 4], "{mode:?}");
        assert!(text.ends_with('\n'));
        let log = init.log_text();
        assert!(
            !log.contains("p1 stdout") && !log.contains("bytes std"),
            "{log}"
        );
        let stderr = std::fs::read(init.scratch.path("stderr")).unwrap();
        assert!(
            stderr.windows(10).any(|w| w == b"a\xff\tb\r\nlast"),
            "{mode:?}: {}",
            String::from_utf8_lossy(&stderr)
        );
    }
}

#[test]
fn a_programs_own_file_is_rotated_raw_with_its_stderr_and_none_drops() {
    for mode in MODES {
        let s = Scratch::new("own-file");
        let file = s.path("logs/web/out.log");
        let file_arg = file.to_string_lossy().to_string();
        let mut init = init(mode, "own-file")
            .args(&[
                "-p",
                &printer("web", 200).replace("done'", "done; echo oops >&2'"),
                "-o",
                &format!("web.stdout_logfile={file_arg}"),
                "-o",
                "web.stdout_logfile_maxbytes = 1KB",
                "-o",
                "web.stdout_logfile_backups=2",
                "-o",
                "web.redirect_stderr=true",
                "-o",
                "web.autorestart=false",
                "-p",
                "quiet=sh -c 'echo hidden; echo hidden too >&2; exit 3'",
                "-o",
                "quiet.stdout_logfile=NONE",
                "-o",
                "quiet.stderr_logfile=NONE",
                "-o",
                "quiet.autorestart=false",
            ])
            .start_in(Some(s));
        init.wait_log("exited: web (exit status 0; expected)");
        init.wait_log("exited: quiet (exit status 3; not expected)");
        let mut kept = Vec::new();
        for suffix in [".2", ".1", ""] {
            let path = format!("{file_arg}{suffix}");
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(bytes.len() <= 1024, "{path}: {} bytes", bytes.len());
            assert!(bytes.ends_with(b"\n"), "{path}");
            kept.extend(bytes);
        }
        assert!(!std::path::Path::new(&format!("{file_arg}.3")).exists());
        let kept = String::from_utf8(kept).unwrap();
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(lines.last(), Some(&"oops"), "stderr follows stdout");
        let numbers: Vec<usize> = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        let first = numbers[0];
        assert_eq!(
            numbers,
            (first..200).collect::<Vec<_>>(),
            "the newest, whole, in order"
        );
        let log = init.log_text();
        assert!(
            !log.contains("web stdout") && !log.contains("web stderr"),
            "{log}"
        );
        assert!(!log.contains("hidden"), "{log}");
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn output_keys_are_checked() {
    refused(
        &["-p", "a=true", "-o", "a.stdout_logfile=x.log"],
        "'x.log' is not an absolute path",
    );
    refused(
        &["-p", "a=true", "-o", "a.stdout_logfile_maxbytes=1TB"],
        "'1TB' is not a size",
    );
    refused(
        &[
            "-p",
            "a=true",
            "-o",
            "a.redirect_stderr=true",
            "-o",
            "a.stderr_logfile=/tmp/x",
        ],
        "stderr goes where stdout does",
    );
    refused(
        &["-o", "main.stdout_logfile=/dev/stdout", "--", "true"],
        "the main command's output is init's own",
    );
    refused(
        &[
            "-l",
            "/tmp/l",
            "-p",
            "a=true",
            "-o",
            "a.stdout_logfile=/tmp/l",
        ],
        "that is init's own log",
    );
}

#[test]
fn a_blocked_stdout_stalls_neither_the_loop_nor_the_other_programs() {
    use std::io::Read;
    for mode in MODES {
        // Init's stdout is a pipe nobody reads, until the end.
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let mut init = init(mode, "blocked-stdout")
            .args(&[
                "-p",
                "flood=sh -c 'while :; do echo \"a line of output that nobody reads just now\"; done'",
                "-o",
                "flood.stdout_logfile=/dev/stdout",
                "-p",
                "tick=sh -c 'i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 0.1; done'",
            ])
            .setup(move |c| {
                c.stdout(write_end.try_clone().unwrap());
            })
            .start();
        init.wait_log("tick stdout: tick 5");
        // init answers while the flood's output waits.
        wait_state(&init, "flood", "RUNNING");
        init.wait_log("tick stdout: tick 15");
        // Room again: what was held goes out, and the drop is counted.
        let mut reader = std::fs::File::from(read_end);
        nix::fcntl::fcntl(
            &reader,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let limit = std::time::Instant::now() + secs(10.0);
        let mut text = Vec::new();
        while !init
            .log_text()
            .contains("of program output sent there were dropped")
        {
            assert!(
                std::time::Instant::now() < limit,
                "{mode:?}: no drop count\n{}",
                init.log_text()
            );
            if let Ok(n) = reader.read(&mut buf) {
                text.extend_from_slice(&buf[..n.min(buf.len())]);
            }
        }
        let log = init.log_text();
        assert!(
            log.contains("WARN init's standard output was full: "),
            "{log}"
        );
        let text = String::from_utf8_lossy(&text);
        assert!(text.lines().count() > 10, "{mode:?}");
        let last_whole = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
        for line in last_whole.lines() {
            assert_eq!(line, "a line of output that nobody reads just now");
        }
        drop(reader);
        init.stop();
    }
}

/// Reads `read_end` slowly, in small pieces, until it ends.
fn slow_reader(
    read_end: std::os::fd::OwnedFd,
    start_after: f64,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        use std::io::Read;
        std::thread::sleep(secs(start_after));
        let mut file = std::fs::File::from(read_end);
        let mut all = Vec::new();
        let mut buf = [0u8; 997];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(secs(0.0005));
        }
        all
    })
}

#[test]
fn raw_output_and_the_logs_copy_never_cut_into_each_other() {
    for mode in MODES {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let reader = slow_reader(read_end, 0.0);
        let raw = "raw=sh -c 'i=0; while [ $i -lt 8000 ]; do \
                   echo \"RAWLINE-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; \
                   i=$((i+1)); done' ";
        let mut init = init(mode, "no-tearing")
            .own_log()
            .args(&[
                "-l",
                "{dir}/log",
                "-p",
                raw,
                "-o",
                "raw.stdout_logfile=/dev/stderr",
                "-o",
                "raw.autorestart=false",
                "-p",
                "tagged=sh -c 'i=0; while [ $i -lt 400 ]; do echo tagged-$i; i=$((i+1)); done'",
                "-o",
                "tagged.autorestart=false",
            ])
            .setup(move |c| {
                c.stderr(std::process::Stdio::from(write_end.try_clone().unwrap()));
            })
            .start();
        init.wait_log("exited: raw (exit status 0; expected)");
        init.wait_log("exited: tagged (exit status 0; expected)");
        init.stop();
        let seen = reader.join().unwrap();
        let text = String::from_utf8_lossy(&seen);
        let mut raw_lines = 0;
        for line in text.lines() {
            let whole_raw = line.starts_with("RAWLINE-")
                && line.ends_with("xxxxxxxxxx")
                && line.matches("RAWLINE").count() == 1;
            let log_line = line.starts_with("20") && !line.contains("RAWLINE");
            let note = line.starts_with("cocalc-init: ") && !line.contains("RAWLINE");
            assert!(
                whole_raw || log_line || note,
                "{mode:?}: a cut line: {line:?}"
            );
            raw_lines += usize::from(whole_raw);
        }
        assert!(raw_lines > 100, "{mode:?}: {raw_lines} raw lines");
    }
}

#[test]
fn held_raw_output_still_reaches_a_reader_a_moment_late() {
    for mode in MODES {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let reader = slow_reader(read_end, 1.0);
        let mut init = init(mode, "late-reader")
            .args(&[
                "-p",
                "seq=seq 1 15000",
                "-o",
                "seq.stdout_logfile=/dev/stdout",
                "-o",
                "seq.autorestart=false",
            ])
            .main(&["sleep", "0.3"])
            .setup(move |c| {
                c.stdout(std::process::Stdio::from(write_end.try_clone().unwrap()));
            })
            .start();
        assert_eq!(init.exit_code(secs(10.0)), 0);
        let seen = reader.join().unwrap();
        let expected: String = (1..=15000).map(|n| format!("{n}\n")).collect();
        assert_eq!(
            String::from_utf8_lossy(&seen),
            expected,
            "{mode:?}: {}",
            init.log_text()
        );
    }
}

#[test]
fn a_closed_stdout_is_said_once() {
    for mode in MODES {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let mut init = init(mode, "closed-stdout")
            .args(&[
                "-p",
                "talk=sh -c 'while :; do echo hi; sleep 0.01; done'",
                "-o",
                "talk.stdout_logfile=/dev/stdout",
            ])
            .setup(move |c| {
                c.stdout(std::process::Stdio::from(write_end.try_clone().unwrap()));
            })
            .start();
        init.wait_log("cannot write init's standard output");
        std::thread::sleep(secs(1.0));
        let log = init.log_text();
        assert_eq!(
            log.matches("cannot write init's standard output").count(),
            1,
            "{mode:?}: {log}"
        );
        assert!(!log.contains("was full"), "{mode:?}: {log}");
        init.stop();
    }
}

#[test]
fn a_restart_answers_for_an_after_outside_the_request_at_once() {
    for mode in MODES {
        let mut init = init(mode, "chain-outside")
            .args(&[
                "-s",
                "0.3",
                "-p",
                "a=sleep 1000",
                "-p",
                "c=sh -c 'sleep 0.1; exit 1'",
                "-p",
                "b=sleep 1000",
                "-o",
                "b.after=a,c",
            ])
            .start();
        wait_state(&init, "a", "RUNNING");
        let t0 = std::time::Instant::now();
        let (code, out, err) = ctl(&init, &["restart", "a", "b"]);
        assert!(t0.elapsed() < secs(5.0), "{mode:?}: {:?}", t0.elapsed());
        assert_eq!(code, 3, "{mode:?}: {out}{err}");
        assert!(out.contains("a: restarted"), "{out}");
        assert!(out.contains("b: waiting for a, c"), "{out}");
        init.stop();
    }
}
