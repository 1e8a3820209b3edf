//! The traps that used to fail silently or misleadingly: files with
//! Windows line endings, said for what they are at the start, in the log
//! and by `--check`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `--check` with `args`: exit status, and what it said on stderr.
fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("--check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_crlf_hashbang_line_is_named_at_start_and_by_check() {
    for mode in MODES {
        let s = Scratch::new("crlf-hashbang");
        let web = s.write("web.sh", "#!/bin/sh\r\necho hello\r\nsleep 100\r\n");
        executable(&web);
        let program = format!("web={}", web.display());
        let mut init = init(mode, "crlf-hashbang")
            .args(&["-s", "0", "-b", "5", "-p", &program])
            .start();
        let line = init.wait_log("Windows line endings");
        assert!(
            line.contains(&format!(
                "spawnerr: {} has Windows line endings (CRLF) on its #! line; \
                 convert it with dos2unix or sed -i 's/\\r$//'",
                web.display()
            )),
            "{line}"
        );
        init.stop();
        let (code, stderr) = check(&["-p", &program]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("web: spawnerr:") && stderr.contains("on its #! line"),
            "{stderr}"
        );
    }
}

#[test]
fn a_crlf_init_script_is_run_as_it_is_and_named_at_each_start() {
    for mode in MODES {
        let s = Scratch::new("crlf-script");
        let script = s.write("project_init.sh", "echo started\r\nexit 0\r\n");
        let before = std::fs::read(&script).unwrap();
        let path = script.to_str().unwrap();
        let mut init = init(mode, "crlf-script")
            .args(&["-s", "0", "-i", path])
            .start();
        let line = init.wait_log("has Windows line endings (CRLF)");
        assert!(
            line.contains("WARN") && line.contains(&format!("project_init_sh: {path}")),
            "{line}"
        );
        // Run as it is: bash's own complaint follows, and the file stays.
        init.wait_log("exited: project_init_sh (exit status 2; expected)");
        assert_eq!(std::fs::read(&script).unwrap(), before);
        // Said again at a start by hand.
        let (code, out, err) = ctl(&init, &["start", "project_init_sh"]);
        assert_eq!(code, 0, "{out}{err}");
        init.wait_log_n("has Windows line endings (CRLF)", 2, secs(10.0));
        init.stop();
        let (code, stderr) = check(&["-i", path]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("has Windows line endings (CRLF)"),
            "{stderr}"
        );
        // A script with plain line endings passes.
        let fine = s.write("fine.sh", "echo fine\nexit 0\n");
        let (code, stderr) = check(&["-i", fine.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
    }
}
