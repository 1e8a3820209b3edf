//! The case that motivates the subreaper: a real `sshd -D -e` with an open
//! session. sshd's per-connection children call setsid() and reach init
//! only when their parent dies; init, not as PID 1, must still reach them
//! and end within its grace.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

const SSHD: &str = "/usr/sbin/sshd";

fn keygen(path: &std::path::Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn shutdown_reaches_sshd_sessions_that_escaped_with_setsid() {
    if !std::path::Path::new(SSHD).exists() {
        panic!("{SSHD} is missing: .ci/run installs openssh-server");
    }
    let s = Scratch::new("sshd");
    keygen(&s.path("hostkey"));
    keygen(&s.path("id"));
    std::fs::copy(s.path("id.pub"), s.path("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = s.0.display().to_string();
    s.write(
        "sshd_config",
        &format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/hostkey\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n"
        ),
    );
    let mut init = init(Mode::Child, "sshd")
        .args(&[
            "-g",
            "2",
            "-p",
            &format!("sshd={SSHD} -D -e -f {dir}/sshd_config"),
        ])
        .start_in(Some(s));
    init.wait_log("Server listening on 127.0.0.1");

    let marker = format!("ssh-session-marker-{}", std::process::id());
    let mut client = Command::new("ssh")
        .args([
            "-i",
            &format!("{dir}/id"),
            "-p",
            &port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("root@127.0.0.1")
        .arg(format!(
            "trap '' TERM HUP; echo connected; sleep 1000; : {marker}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "connected");
    assert!(!pids_with(&marker).is_empty());

    let t0 = Instant::now();
    init.signal(Signal::SIGTERM);
    let code = init.exit_code(secs(15.0));
    let took = t0.elapsed();
    let _ = client.kill();
    let _ = client.wait();
    assert!(took < secs(4.0), "init took {took:?} with a grace of 2 s");
    assert!(
        pids_with(&marker).is_empty(),
        "the session outlived init:\n{}",
        init.log_text()
    );
    // The session ignores TERM, so it had to be killed.
    assert_eq!(code, 1, "{}", init.log_text());
}
