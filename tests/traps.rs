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

use common::*;

fn executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `--check` with `args`: exit status, and what it said on stderr.
fn check(args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = check_args(args);
    (code, stderr)
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

#[test]
fn the_commonest_slips_are_usage_errors_that_name_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        // The shell split an unquoted -p: its first option, or word.
        (
            &["-p", "sshd=/usr/sbin/sshd", "-D", "-e"],
            "unknown option '-D': is it part of the command of -p sshd? quote NAME=COMMAND as one argument",
        ),
        (
            &["-p", "web=python3", "app.py"],
            "unexpected argument 'app.py': is it part of the command of -p web?",
        ),
        (
            &["-p", "sshd", "/usr/sbin/sshd"],
            "-p 'sshd': NAME and COMMAND are one argument, joined by '=': -p 'sshd=/usr/sbin/sshd …'",
        ),
        // A verb misspelt, or one supervisorctl has and we do not.
        (
            &["stauts"],
            "unknown command 'stauts'; did you mean 'status'? commands: status, start, stop, restart, signal, wait",
        ),
        (&["reread"], "unknown command 'reread'; commands: status,"),
        // A main command without its '--' is still said as such.
        (&["/bin/true"], "put the main command after '--'"),
        // -o for a program that is not there: the ones that are.
        (
            &["-p", "web=x", "-p", "db=y", "-o", "b.startsecs=1"],
            "no program is named 'b'; programs: web, db",
        ),
    ];
    for (args, needle) in cases {
        refused(args, needle);
    }
}

#[test]
fn a_client_with_no_init_says_a_tini_style_init_has_no_socket() {
    let s = Scratch::new("no-init");
    let (code, _, err) = ctl_at(&s.path("none.sock"), &["status"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no init answers at")
            && err.contains("an init started without -p or -i has no control socket"),
        "{err}"
    );
}

#[test]
fn a_second_init_on_the_same_log_says_so() {
    for mode in MODES {
        let s = Scratch::new("shared-log");
        let log = s.path("shared.log");
        let mut first = init(mode, "shared-log-1")
            .log_at(&log)
            .args(&["-q", "-l", log.to_str().unwrap()])
            .args(&["-p", "a=sleep 100"])
            .args(&["--control", s.path("1.sock").to_str().unwrap()])
            .start();
        first.wait_log("spawned: 'a'");
        let (code, stderr) = run_to_end(
            &[
                "-q",
                "-l",
                log.to_str().unwrap(),
                "--control",
                "none",
                "--",
                "true",
            ]
            .map(std::ffi::OsStr::new),
            secs(10.0),
        );
        assert_eq!(code, 0, "{stderr}");
        let text = std::fs::read_to_string(&log).unwrap();
        let warning = text
            .lines()
            .find(|l| l.contains("another process writes to the log"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            warning.contains(" WARN ") && warning.contains("give each init its own -l FILE"),
            "{warning}"
        );
        if mode == Mode::Child {
            // The first init is in our PID namespace: its pid is named.
            assert!(
                warning.contains(&format!("(pid {})", first.pid())),
                "{warning}"
            );
        }
        first.stop();
        // Alone on the file, the next init says nothing of it.
        let (code, _) = run_to_end(
            &["-q", "-l", log.to_str().unwrap(), "--", "true"].map(std::ffi::OsStr::new),
            secs(10.0),
        );
        assert_eq!(code, 0);
        let count = std::fs::read_to_string(&log)
            .unwrap()
            .matches("another process writes to the log")
            .count();
        assert_eq!(count, 1);
    }
}
