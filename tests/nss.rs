//! `user=` reads users and groups from `/etc/passwd` and `/etc/group`
//! only, whatever `/etc/nsswitch.conf` names besides `files`: the static
//! build cannot load an image's NSS modules (with `files systemd` it died
//! of SIGSEGV at its first lookup). Here the static binary runs in a mount
//! namespace where an nsswitch.conf naming `systemd` and `sss`, and a
//! passwd and group file of the test's own, are bind-mounted over the
//! host's, as PID 1 and not. tests/oci.rs does the same in a runc root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

/// The three files, written into `s`.
fn etc_files(s: &Scratch) -> [PathBuf; 3] {
    [
        s.write(
            "nsswitch.conf",
            "passwd: files systemd sss\ngroup: files systemd sss\n\
             initgroups: files systemd sss\nshadow: files systemd sss\n",
        ),
        s.write(
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\n\
             tuser:x:4242:4242:test user:/home/tuser:/bin/sh\n",
        ),
        s.write(
            "group",
            "root:x:0:\ntuser:x:4242:\nextra:x:4243:tuser\nmore:x:4244:other,tuser\n\
             none:x:4245:other\n",
        ),
    ]
}

/// `static_bin ARGS` inside a new mount namespace (and PID namespace for
/// Pid1) with the files over `/etc`: (exit code, standard error).
fn run_with_etc(mode: Mode, etc: &[PathBuf; 3], static_bin: &Path, args: &[&str]) -> (i32, String) {
    let s = Scratch::new("nss-run");
    let err = s.path("stderr");
    let mut cmd = Command::new("timeout");
    cmd.args(["20", "unshare", "--mount"]);
    if mode == Mode::Pid1 {
        cmd.args(["--pid", "--fork", "--mount-proc"]);
    }
    cmd.args([
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/nsswitch.conf && mount --bind \"$2\" /etc/passwd \
         && mount --bind \"$3\" /etc/group && shift 3 && exec \"$@\"",
        "sh",
    ])
    .args(etc)
    .arg(static_bin)
    .args(
        args.iter()
            .map(|a| a.replace("{err}", &err.to_string_lossy())),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&err).unwrap());
    let t0 = Instant::now();
    let status = cmd.status().unwrap();
    assert!(t0.elapsed() < secs(19.0), "timed out");
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

const IDS: &str = "sh -c 'grep -E \"^(Uid|Gid|Groups):\" /proc/self/status; echo \"home=$HOME\"'";

#[test]
fn users_come_from_files_whatever_nsswitch_conf_names() {
    let static_bin = build_static();
    let s = Scratch::new("nss");
    let etc = etc_files(&s);
    for mode in MODES {
        // A user with supplementary groups, by name, and the same user by
        // uid: both one-shot programs; the main command waits for their
        // lines, then init ends with its status.
        let byname = format!("byname={IDS}");
        let byuid = format!("byuid={IDS}");
        let (code, log) = run_with_etc(
            mode,
            &etc,
            &static_bin,
            &[
                "-l",
                "-",
                "-p",
                &byname,
                "-o",
                "byname.user=tuser",
                "-o",
                "byname.autorestart=false",
                "-p",
                &byuid,
                "-o",
                "byuid.user=4242",
                "-o",
                "byuid.autorestart=false",
                "--",
                "sh",
                "-c",
                "until [ \"$(grep -c 'home=' '{err}')\" -ge 2 ]; do sleep 0.05; done",
            ],
        );
        assert_eq!(code, 0, "{mode:?}: {log}");
        for name in ["byname", "byuid"] {
            for line in [
                "Uid:\t4242\t4242\t4242\t4242",
                "Gid:\t4242\t4242\t4242\t4242",
                "Groups:\t4242 4243 4244",
                "home=/home/tuser",
            ] {
                let want = format!("{name} stdout: {line}");
                assert!(log.contains(&want), "{mode:?}: no {want:?} in\n{log}");
            }
        }

        // An unknown user: a usage error, before anything starts.
        let (code, err) = run_with_etc(
            mode,
            &etc,
            &static_bin,
            &["-l", "-", "-p", "a=sleep 1", "-o", "a.user=postgres2"],
        );
        assert_eq!(code, 2, "{mode:?}: {err}");
        assert!(
            err.contains("no user 'postgres2' in the user database"),
            "{mode:?}: {err}"
        );
    }
}
