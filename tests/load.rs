//! Load: zombie and signal storms, an output flood through rotation, a
//! crash loop, many programs. Each test prints the figure it reached.
//! Heavier runs of the same live in bench/stress.sh.

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

/// `COCALC_STRESS=1` (bench/stress.sh) runs the full sizes: 100 MB per
/// program in the flood, a 60 s crash loop.
fn stress() -> bool {
    std::env::var_os("COCALC_STRESS").is_some()
}

fn vm_rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .unwrap()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = text[text.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn zombie_storm_every_orphan_is_reaped_and_memory_returns() {
    let count = 20_000;
    let mut init = init(Mode::Pid1, "zombies")
        .args(&["-p", &format!(
            "storm=perl -e 'for (1..{count}) {{ my $p = fork(); exit 0 if defined $p && $p == 0; }} open(my $f, \">\", \"{{dir}}/forked\"); exit 0'"
        )])
        .start();
    init.wait_log("spawned: 'storm'");
    let pid = init.pid().as_raw();
    let idle = vm_rss_kib(pid);
    let forked = init.scratch.path("forked");
    let t0 = Instant::now();
    wait_for(secs(60.0), "the forks", || forked.exists().then_some(()));
    init.wait_log_n("exited: storm (exit status 0; expected)", 1, secs(60.0));
    // The 20,000 zombies come to init at once when perl exits.
    wait_for(secs(30.0), "no zombie left", || {
        let zombies = init
            .children()
            .into_iter()
            .filter(|(_, s)| *s == 'Z')
            .count();
        (zombies == 0).then_some(())
    });
    let took = t0.elapsed();
    let after = vm_rss_kib(pid);
    eprintln!(
        "zombie storm: {count} orphans reaped, {:.0} orphans/s end to end; VmRSS {idle} KiB idle, {after} KiB after",
        count as f64 / took.as_secs_f64()
    );
    assert!(after <= idle + 256, "init grew from {idle} to {after} KiB");
    assert_eq!(init.stop(), 0);
}

#[test]
fn signal_storm_init_survives_and_forwards_what_it_received() {
    let s = Scratch::new("sigstorm");
    s.write(
        "counter.sh",
        "n=0\ntrap 'n=$((n+1)); echo $n > count' USR1\ntouch ready\nwhile :; do sleep 0.01; done\n",
    );
    let mut init = init(Mode::Pid1, "sigstorm")
        .arg("-v")
        .args(&["-i", "{dir}/counter.sh"])
        .start_in(Some(s));
    let ready = init.scratch.path("ready");
    wait_for(secs(10.0), "ready", || ready.exists().then_some(()));
    let pid = init.pid();
    for _ in 0..1000 {
        nix::sys::signal::kill(pid, Signal::SIGUSR1).unwrap();
    }
    // Let the last forwarded signals land.
    std::thread::sleep(secs(0.5));
    let log = init.log_text();
    let forwarded = log
        .matches("INFO received SIGUSR1: forwarded to counter_sh")
        .count();
    let lost = log.matches("received SIGUSR1: no program").count();
    let counted: usize = std::fs::read_to_string(init.scratch.path("count"))
        .map(|t| t.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    eprintln!(
        "signal storm: 1000 sent, {forwarded} received and forwarded by init, {counted} counted by the program"
    );
    assert!(forwarded >= 1 && lost == 0, "{log}");
    assert!(counted >= 1 && counted <= forwarded, "{log}");
    assert_eq!(init.stop(), 0);
}

#[test]
fn output_flood_through_rotation_keeps_every_line_once_in_order() {
    // Each output line is 12 bytes: 8.4 M of them make 100 MB.
    let (lines, max_bytes) = if stress() {
        (8_400_000, "50000000")
    } else {
        (300_000, "1000000")
    };
    let program = |name: &str| format!("{name}=seq -f '{name}-%09.0f' 1 {lines}");
    let mut init = init(Mode::Pid1, "outflood")
        .args(&["--log-max-bytes", max_bytes, "--log-backups", "100"])
        .args(&[
            "-p",
            &program("a"),
            "-p",
            &program("b"),
            "-p",
            &program("c"),
        ])
        .start();
    let t0 = Instant::now();
    // Done when init has no child left once the flood has begun (log.1
    // exists). Not by looking for the exit lines: one program may end well
    // before the others, whose output then rotates its line out of any
    // fixed set of files while the test looks.
    wait_for(secs(600.0), "the three programs to finish", || {
        (init.scratch.path("log.1").exists() && init.children().is_empty()).then_some(())
    });
    let took = t0.elapsed();
    init.stop();
    let mut files: Vec<std::path::PathBuf> = (1..=100)
        .rev()
        .map(|k| init.scratch.path(&format!("log.{k}")))
        .filter(|p| p.exists())
        .collect();
    files.push(init.log.clone());
    let mut per: [Vec<u64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut exited = [false; 3];
    let mut bytes = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.len() <= max_bytes.parse().unwrap());
        bytes += text.len();
        for line in text.lines() {
            for (i, name) in ["a", "b", "c"].iter().enumerate() {
                if let Some((_, v)) = line.split_once(&format!(" {name} stdout: {name}-")) {
                    per[i].push(v.parse().unwrap());
                } else if line.ends_with(&format!(" INFO exited: {name} (exit status 0; expected)"))
                {
                    exited[i] = true;
                }
            }
        }
    }
    assert_eq!(exited, [true; 3], "exit lines of a, b, c");
    let want: Vec<u64> = (1..=lines).collect();
    for (i, got) in per.iter().enumerate() {
        assert!(
            got == &want,
            "program {i}: {} lines, first difference at {:?}",
            got.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
    eprintln!(
        "output flood: {} lines kept in {} files ({:.1} MB) in {:.2} s",
        3 * lines,
        files.len(),
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
}

#[test]
fn crash_loop_follows_the_backoff_and_costs_almost_nothing() {
    let mut init = init(Mode::Pid1, "crashloop")
        .args(&[
            "-s",
            "1",
            "-b",
            "2",
            "--log-max-bytes",
            "4000",
            "--log-backups",
            "2",
            "-p",
            "crash=false",
        ])
        .start();
    init.wait_log("spawned: 'crash'");
    let pid = init.pid().as_raw();
    let (ticks0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(secs(if stress() { 60.0 } else { 7.5 }));
    let (ticks, took) = (cpu_ticks(pid) - ticks0, t0.elapsed());
    let hz = 100.0; // USER_HZ on Linux
    let cpu = ticks as f64 / hz / took.as_secs_f64() * 100.0;
    let mut log = String::new();
    for name in ["log.2", "log.1", "log"] {
        let text = std::fs::read_to_string(init.scratch.path(name)).unwrap_or_default();
        assert!(text.len() <= 4000, "{name} has {} bytes", text.len());
        log.push_str(&text);
    }
    assert!(!init.scratch.path("log.3").exists());
    let waits: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.split_once("backoff: crash starts again in ")
                .map(|(_, w)| w)
        })
        .collect();
    let restarts = init.log_text().matches("spawned: 'crash'").count();
    eprintln!(
        "crash loop: {} s, init CPU {cpu:.2}% of a core, log bounded to 3 files of 4000 bytes",
        took.as_secs()
    );
    assert!(restarts >= 1);
    // The backoff exactly: 1 s, then doubling to the 2 s cap. Where
    // rotation has dropped the start (the 60 s stress run), the newest
    // waits are all at the cap.
    if log.contains("started with pid") {
        assert_eq!(
            &waits[..4],
            ["1 seconds", "2 seconds", "2 seconds", "2 seconds"],
            "{log}"
        );
    } else {
        assert!(
            waits.len() >= 3 && waits.iter().all(|w| *w == "2 seconds"),
            "{log}"
        );
    }
    assert!(cpu < 1.0, "init used {cpu:.2}% of a core");
    assert_eq!(init.stop(), 0);
}

#[test]
fn a_hundred_programs_start_and_stop_cleanly() {
    let mut args: Vec<String> = vec!["-g".into(), "5".into()];
    for i in 0..100 {
        args.push("-p".into());
        args.push(format!("p{i:03}=sleep 1000"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut init = init(Mode::Pid1, "hundred").args(&refs).start();
    init.wait_log_n("spawned: 'p", 100, secs(20.0));
    let t0 = Instant::now();
    assert_eq!(init.stop(), 0);
    let log = init.log_text();
    assert_eq!(log.matches("INFO stopped: p").count(), 100, "{log}");
    eprintln!(
        "100 programs: stopped in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
}

#[test]
fn a_thousand_programs_and_a_megabyte_of_arguments_parse() {
    let mut args: Vec<String> = vec!["--check".into()];
    for i in 0..1000 {
        args.push("-p".into());
        args.push(format!("n{i}=true {i}"));
    }
    let out = std::process::Command::new(BIN)
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("program n")
            .count(),
        1000
    );
    // A megabyte of arguments to the main command, passed on whole.
    let word = "x".repeat(1000);
    let mut init = init(Mode::Child, "megabyte")
        .main(
            &[
                &["sh", "-c", "echo $# > {dir}/argc", "sh"][..],
                &vec![word.as_str(); 1000][..],
            ]
            .concat(),
        )
        .start();
    assert_eq!(init.exit_code(secs(10.0)), 0);
    assert_eq!(
        std::fs::read_to_string(init.scratch.path("argc"))
            .unwrap()
            .trim(),
        "1000"
    );
}
