//! The scripts in examples/ do what they say under the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

#[test]
fn project_init_sh_writes_a_start_stamp_and_exits_expected() {
    let s = Scratch::new("example-sh");
    std::fs::copy(
        format!("{EXAMPLES}/project_init.sh"),
        s.path("project_init.sh"),
    )
    .unwrap();
    let init = init(Mode::Pid1, "example-sh")
        .args(&["-i", "{dir}/project_init.sh"])
        .start_in(Some(s));
    let log = init.wait_log("exited: project_init_sh (exit status 0; expected)");
    let stamp = std::fs::read_to_string(init.scratch.path("project-start")).unwrap();
    assert!(!stamp.trim().is_empty());
    assert!(
        log.contains(&format!(
            "project_init_sh stdout: project started at {}",
            stamp.trim()
        )),
        "{log}"
    );
}

#[test]
fn project_init_py_runs_its_task_periodically_through_exec() {
    let s = Scratch::new("example-py");
    std::fs::copy(
        format!("{EXAMPLES}/project_init.py"),
        s.path("project_init.py"),
    )
    .unwrap();
    s.write("project_init.sh", "exec python3 project_init.py\n");
    let init = init(Mode::Pid1, "example-py")
        .setup(|c| {
            c.env("INTERVAL", "0.2");
        })
        .args(&["-i", "{dir}/project_init.sh"])
        .start_in(Some(s));
    let log = init.wait_log("project_init_sh stdout: task 2 done");
    let tasks = std::fs::read_to_string(init.scratch.path("task_output.log")).unwrap();
    let lines: Vec<&str> = tasks.lines().collect();
    assert!(lines.len() >= 3, "{tasks}");
    assert!(
        lines[0].starts_with("Task 0: ") && lines[1].starts_with("Task 1: "),
        "{tasks}"
    );
    // exec: the script's pid is python's, and it is still running.
    assert_eq!(init.spawned_pids("project_init_sh").len(), 1);
    assert!(!log.contains("exited: project_init_sh"), "{log}");
}

#[test]
fn task_once_py_runs_at_its_times_one_run_each() {
    let s = Scratch::new("example-once");
    std::fs::copy(format!("{EXAMPLES}/task_once.py"), s.path("task_once.py")).unwrap();
    let mut init = init(Mode::Pid1, "example-once")
        .args(&[
            "-p",
            "task=python3 {dir}/task_once.py",
            "-o",
            "task.directory={dir}",
        ])
        .args(&["-o", "task.every=1"])
        .start_in(Some(s));
    let log = init.wait_log("task stdout: task 2 done");
    assert!(
        log.contains("INFO exited: task (exit status 0; expected)"),
        "{log}"
    );
    assert!(log.contains("INFO scheduled: task next run at "), "{log}");
    let tasks = std::fs::read_to_string(init.scratch.path("task_output.log")).unwrap();
    assert!(
        tasks.starts_with("Task 0: ") && tasks.contains("\nTask 2: "),
        "{tasks}"
    );
    init.stop();
}
