//! Scheduled programs: `every=` runs after each run ends, `cron=` at its
//! wall-clock times (libfaketime sets the clock just before them, daylight
//! saving changes included), each run judged and logged, the verbs and
//! `status` as the man page says.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use common::*;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The wall clock starts at `at` (seconds since 1970) and runs on, in
/// zone `tz`; the monotonic clock is left alone. (An offset rather than a
/// local date: a date in a repeated hour would be ambiguous.)
fn faked(builder: Builder, at: u64, tz: &'static str) -> Builder {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: .ci/run installs faketime"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let offset = at as i64 - now as i64;
    builder.setup(move |cmd| {
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME", format!("{offset:+}"))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_NO_CACHE", "1")
            .env("TZ", tz);
    })
}

/// The log's stamp of a line, in milliseconds of the day.
fn millis(line: &str) -> u64 {
    let time = &line[11..23];
    let h: u64 = time[0..2].parse().unwrap();
    let m: u64 = time[3..5].parse().unwrap();
    let s: u64 = time[6..8].parse().unwrap();
    let ms: u64 = time[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[test]
fn every_runs_after_each_run_ends_and_never_overlaps() {
    for mode in MODES {
        let mut init = init(mode, "every")
            .args(&["-g", "2"])
            .args(&["-p", "job=sh -c 'echo run; sleep 0.3'", "-o", "job.every=1"])
            .start();
        let log = init.wait_log_n("spawned: 'job'", 3, secs(15.0));
        assert!(
            log.contains("INFO exited: job (exit status 0; expected)"),
            "{log}"
        );
        assert!(log.contains("INFO scheduled: job next run at "), "{log}");
        // Each run starts a second after the one before ended.
        let lines: Vec<&str> = log.lines().collect();
        let ends: Vec<u64> = lines
            .iter()
            .filter(|l| l.contains("exited: job"))
            .map(|l| millis(l))
            .collect();
        let starts: Vec<u64> = lines
            .iter()
            .filter(|l| l.contains("spawned: 'job'"))
            .map(|l| millis(l))
            .collect();
        for (end, next) in ends.iter().zip(starts.iter().skip(1)) {
            assert!(
                next >= end && next - end >= 950,
                "ended {end}, next {next}\n{log}"
            );
        }
        let row = wait_for(secs(10.0), "a SCHEDULED row", || {
            let (code, out, _) = ctl(&init, &["status", "job"]);
            out.contains("SCHEDULED").then_some((code, out))
        });
        assert_eq!(row.0, 0, "{}", row.1);
        assert!(
            row.1.contains("next run at ") && row.1.contains("; last run: exit status 0 at "),
            "{}",
            row.1
        );
        init.stop();
    }
}

#[test]
fn a_failed_run_waits_for_its_next_time_and_status_says_so() {
    for mode in MODES {
        let mut init = init(mode, "every-fail")
            .args(&["-g", "2"])
            .args(&["-p", "job=sh -c 'exit 1'", "-o", "job.every=2"])
            .start();
        let log = init.wait_log_n("exited: job (exit status 1; not expected)", 2, secs(15.0));
        assert!(
            log.contains("WARN exited: job (exit status 1; not expected)"),
            "{log}"
        );
        assert!(!log.contains("backoff:"), "no restart between times: {log}");
        let starts: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("spawned: 'job'"))
            .map(millis)
            .collect();
        assert!(starts[1] - starts[0] >= 1900, "{log}");
        // A liveness probe sees the failing job.
        let (code, out, _) = ctl(&init, &["status", "job"]);
        if out.contains("SCHEDULED") {
            assert_eq!(code, 3, "{out}");
            assert!(out.contains("last run: exit status 1 at"), "{out}");
        }
        init.stop();
    }
}

#[test]
fn verbs_take_a_scheduled_program_off_and_back_on_its_schedule() {
    for mode in MODES {
        let mut init = init(mode, "every-verbs")
            .args(&["-g", "2"])
            .args(&["-p", "job=sh -c 'echo run'", "-o", "job.every=1"])
            .args(&["-p", "later=sh -c 'echo later'", "-o", "later.every=1d"])
            .start();
        init.wait_log("exited: later (exit status 0; expected)");
        wait_state(&init, "later", "SCHEDULED");
        // wait: up once a run ended as expected.
        let (code, out, _) = ctl(&init, &["wait", "later"]);
        assert_eq!(code, 0, "{out}");
        // start all: a scheduled program is where start takes it.
        let (code, out, _) = ctl(&init, &["start", "all"]);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("later"), "{out}");
        std::thread::sleep(secs(0.5));
        assert_eq!(init.log_text().matches("later stdout: later").count(), 1);
        // start: a run now; it stays scheduled.
        let (code, out, _) = ctl(&init, &["start", "later"]);
        assert_eq!((code, out.trim()), (0, "later: started"));
        init.wait_log_n("later stdout: later", 2, secs(10.0));
        wait_state(&init, "later", "SCHEDULED");
        // stop: off its schedule.
        let (code, out, _) = ctl(&init, &["stop", "job"]);
        assert_eq!(code, 0, "{out}");
        wait_state(&init, "job", "STOPPED");
        let runs = init.log_text().matches("job stdout: run").count();
        std::thread::sleep(secs(2.5));
        assert_eq!(
            init.log_text().matches("job stdout: run").count(),
            runs,
            "stopped, not run"
        );
        // start: back, a run now.
        let (code, _, _) = ctl(&init, &["start", "job"]);
        assert_eq!(code, 0);
        init.wait_log_n("job stdout: run", runs + 1, secs(10.0));
        init.stop();
    }
}

#[test]
fn a_cron_program_waits_for_its_time_runs_on_it_and_plans_the_next() {
    for mode in MODES {
        let mut init = faked(init(mode, "cron"), 1796698797, "UTC")
            .args(&["-g", "2"])
            .args(&[
                "-p",
                "backup=sh -c 'echo backing up'",
                "-o",
                "backup.cron=0 3 * * *",
            ])
            .args(&["-p", "slow=sleep 75", "-o", "slow.cron=* * * * *"])
            .start();
        let log = init.wait_log("scheduled: backup next run at 2026-12-08 03:00:00");
        assert!(
            log.contains("INFO scheduled: slow next run at 2026-12-08 03:00:00"),
            "{log}"
        );
        let (code, out, _) = ctl(&init, &["status", "backup"]);
        assert_eq!(code, 0, "never run yet is fine: {out}");
        assert!(
            out.contains("SCHEDULED") && out.contains("never run"),
            "{out}"
        );
        init.wait_log("backup stdout: backing up");
        let log = init.wait_log("scheduled: backup next run at 2026-12-09 03:00:00");
        let spawned = log
            .lines()
            .find(|l| l.contains("spawned: 'backup'"))
            .unwrap();
        assert!(spawned.contains(" 03:00:0"), "on time: {spawned}");
        init.stop();
    }
}

#[test]
fn daylight_saving_neither_loses_nor_doubles_a_run() {
    // Spring: 02:30 does not exist on 2027-03-28 in Berlin; it runs at 03:00
    // (from 01:59:57 CET).
    let mut init = faked(
        init(Mode::Child, "cron-spring"),
        1_806_195_597,
        "Europe/Berlin",
    )
    .args(&["-g", "2"])
    .args(&["-p", "job=sh -c 'echo ran'", "-o", "job.cron=30 2 * * *"])
    .start();
    init.wait_log("scheduled: job next run at 2027-03-28 03:00:00");
    init.wait_log("job stdout: ran");
    init.wait_log("scheduled: job next run at 2027-03-29 02:30:00");
    init.stop();
    // Autumn: 02:30 comes twice on 2027-10-31; it runs once (from 02:29:57
    // CEST, the first of the two).
    let mut init = faked(init_child("cron-autumn"), 1_824_942_597, "Europe/Berlin")
        .args(&["-g", "2"])
        .args(&["-p", "job=sh -c 'echo ran'", "-o", "job.cron=30 2 * * *"])
        .start();
    init.wait_log("job stdout: ran");
    let log = init.wait_log("scheduled: job next run at 2027-11-01 02:30:00");
    assert_eq!(log.matches("job stdout: ran").count(), 1, "{log}");
    init.stop();
}

fn init_child(tag: &str) -> Builder {
    init(Mode::Child, tag)
}

#[test]
fn bad_schedules_are_usage_errors_naming_the_program_and_value() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-p", "a=x", "-o", "a.cron=0 0 31 2 *"],
            "'a.cron=0 0 31 2 *': '0 0 31 2 *' never comes",
        ),
        (
            &["-p", "a=x", "-o", "a.cron=0 0 *"],
            "is not a cron expression",
        ),
        (
            &["-p", "a=x", "-o", "a.every=0"],
            "'a.every=0': '0': a run needs at least 1 second",
        ),
        (
            &["-p", "a=x", "-o", "a.every=-5"],
            "'a.every=-5': '-5' is not a duration",
        ),
        (&["-p", "a=x", "-o", "a.every=5x"], "is not a duration"),
        (&["-p", "a=x", "-o", "a.every=400d"], "more than 366 days"),
        (
            &["-p", "a=x", "-o", "a.every=5", "-o", "a.cron=@daily"],
            "give one schedule, not both",
        ),
        (
            &["-p", "a=x", "-o", "a.every=5", "-o", "a.autorestart=true"],
            "a is scheduled",
        ),
        (
            &["-p", "a=x", "-o", "a.every=5", "-o", "a.essential=true"],
            "a is scheduled",
        ),
        (
            &[
                "-p",
                "a=x",
                "-o",
                "a.cron=@hourly",
                "-p",
                "b=y",
                "-o",
                "b.after=a",
            ],
            "a wait for it could last a day",
        ),
        (
            &["-o", "main.every=5", "--", "true"],
            "so every does not apply",
        ),
    ];
    for (args, needle) in cases {
        refused(args, needle);
    }
}

#[test]
fn a_cron_time_that_comes_while_the_last_run_goes_is_skipped() {
    // From 02:59:58, a run every minute that lasts 62 s: 03:01 finds the
    // 03:00 run still going.
    let mut init = faked(init_child("cron-skip"), 1_796_698_798, "UTC")
        .args(&["-g", "2"])
        .args(&["-p", "slow=sleep 62", "-o", "slow.cron=* * * * *"])
        .start();
    init.wait_log("spawned: 'slow'");
    let log = init.wait_log_n("skipped: slow still running since", 1, secs(90.0));
    let line = log.lines().find(|l| l.contains("skipped: slow")).unwrap();
    assert!(
        line.contains(" WARN skipped: slow still running since 2026-12-08 03:00:0"),
        "{line}"
    );
    assert_eq!(
        log.matches("spawned: 'slow'").count(),
        1,
        "no second copy: {log}"
    );
    let (_, out, _) = ctl(&init, &["status", "slow"]);
    assert!(out.contains("RUNNING"), "{out}");
    init.stop();
}

#[test]
fn a_scheduled_init_script_not_there_yet_is_looked_for_at_each_time() {
    for mode in MODES {
        let mut init = init(mode, "every-script")
            .args(&["-g", "2", "-i", "{dir}/later.sh", "-o", "later_sh.every=1"])
            .start();
        let missing = format!(
            "INFO skipped: {} does not exist",
            init.scratch.path("later.sh").display()
        );
        init.wait_log_n(&missing, 2, secs(10.0));
        let (code, out, _) = ctl(&init, &["status", "later_sh"]);
        assert!(out.contains("SCHEDULED"), "{out}");
        assert_eq!(code, 0, "{out}");
        std::fs::write(init.scratch.path("later.sh"), "echo here now\n").unwrap();
        init.wait_log("later_sh stdout: here now");
        init.wait_log("exited: later_sh (exit status 0; expected)");
        init.stop();
    }
}
