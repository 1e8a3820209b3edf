//! The static build (`cargo static`) runs where there is no libc at all:
//! a root folder that holds only the binary and a static busybox — the
//! `FROM scratch` story.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

#[test]
fn the_static_binary_supervises_in_a_root_with_no_libc() {
    assert!(
        std::path::Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: .ci/run installs busybox-static"
    );
    let bin = build_static();
    let file = Command::new("file").arg(&bin).output().unwrap();
    let kind = String::from_utf8_lossy(&file.stdout).to_string();
    assert!(kind.contains("static-pie linked"), "{kind}");
    eprintln!(
        "static binary: {} bytes",
        std::fs::metadata(&bin).unwrap().len()
    );

    let s = Scratch::new("static-root");
    let root = s.path("root");
    for dir in ["bin", "proc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(&bin, root.join("bin/cocalc-init")).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    assert!(
        !root.join("lib").exists() && !root.join("lib64").exists() && !root.join("usr").exists()
    );

    let err = s.path("stderr");
    let mut child = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--root"])
        .arg(&root)
        .args([
            "/bin/cocalc-init",
            "-l",
            "-",
            "-s",
            "0",
            "-b",
            "0.2",
            "-p",
            "t=busybox sh -c \"echo hi; exit 1\"",
        ])
        .env("PATH", "/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let outer = child.id();
    let log = || std::fs::read_to_string(&err).unwrap_or_default();
    wait_for(secs(20.0), "two restarts", || {
        (log()
            .matches("exited: t (exit status 1; not expected)")
            .count()
            >= 2)
            .then_some(())
    });
    assert!(log().contains("t stdout: hi"), "{}", log());
    let init_pid: i32 = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > secs(10.0) {
            let _ = child.kill();
            panic!("no exit after SIGTERM:\n{}", log());
        }
        std::thread::sleep(secs(0.02));
    };
    assert_eq!(status.code(), Some(0), "{}", log());
    assert!(log().contains("received SIGTERM indicating exit request"));
}
