//! Bad command lines: two lines on stderr, the first naming the value,
//! exit 2, and nothing else — no child started, no log file created.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::*;

fn bad(extra: &[&str], needle: &str) {
    let s = Scratch::new(&format!("bad-{}", needle.len()));
    let log = s.path("sub/log");
    let marker = s.path("started");
    let touch = format!("first=touch {}", marker.display());
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("-l"),
        log.as_os_str(),
        OsStr::new("-p"),
        OsStr::new(&touch),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let (code, stderr) = run_to_end(&args, secs(10.0));
    assert_eq!(code, 2, "{extra:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{extra:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{extra:?}: {stderr:?} lacks {needle:?}"
    );
    assert!(stderr.contains("--help"), "{stderr}");
    std::thread::sleep(secs(0.1));
    assert!(
        !log.exists() && !log.parent().unwrap().exists(),
        "{extra:?} created the log"
    );
    assert!(!marker.exists(), "{extra:?} started a child");
}

#[test]
fn unknown_flag() {
    bad(&["--bogus"], "bogus");
}

#[test]
fn missing_value() {
    bad(&["-x"], "'-x' needs a value");
}

#[test]
fn program_without_equals() {
    bad(&["-p", "sshd"], "'sshd'");
}

#[test]
fn empty_name_or_command() {
    bad(&["-p", "=true"], "NAME is empty");
    bad(&["-p", "a="], "COMMAND is empty");
}

#[test]
fn name_with_bad_characters() {
    bad(&["-p", "my prog=true"], "'my prog'");
    bad(&["-p", "a:b=true"], "'a:b'");
    // A newline in the value is shown as one, not printed.
    bad(&["-p", "my\nprog=true"], r"'my\nprog'");
}

#[test]
fn duplicate_names_also_between_program_and_init_script() {
    bad(&["-p", "first=true"], "'first' is used twice");
    bad(
        &[
            "-p",
            "project_init_sh=true",
            "-i",
            "/nowhere/project_init.sh",
        ],
        "'project_init_sh' is used twice",
    );
}

#[test]
fn main_is_a_reserved_name() {
    bad(&["-p", "main=true"], "reserved");
}

#[test]
fn bad_exit_codes() {
    bad(&["-x", "0,256"], "'256'");
    bad(&["-x", "one"], "'one'");
}

#[test]
fn negative_or_non_numeric_seconds() {
    bad(&["-s", "-1"], "'-1'");
    bad(&["-g", "ten"], "'ten'");
    bad(&["-b", "1x"], "'1x'");
}

#[test]
fn unbalanced_quotes() {
    bad(&["-p", "q=sh -c 'echo hi"], "unbalanced single quote");
}

#[test]
fn bad_log_sizes() {
    bad(&["--log-max-bytes", "-1"], "'-1'");
    bad(&["--log-max-bytes", "10MB"], "'10MB'");
    bad(&["--log-backups", "many"], "'many'");
}

#[test]
fn nothing_to_run() {
    let (code, stderr) = run_to_end(&[OsStr::new("-q")], secs(10.0));
    assert_eq!(code, 2);
    assert!(stderr.contains("nothing to run"), "{stderr}");
    let (code, stderr) = run_to_end(&[OsStr::new("--")], secs(10.0));
    assert_eq!(code, 2);
    assert!(stderr.contains("nothing to run"), "{stderr}");
}

#[test]
fn non_utf8_option_is_a_usage_error_but_main_command_may_be_anything() {
    let (code, stderr) = run_to_end(
        &[OsStr::new("-p"), OsStr::from_bytes(b"a=\xff")],
        secs(10.0),
    );
    assert_eq!(code, 2, "{stderr}");
    // After `--` the bytes pass through untouched to the command.
    let (code, stderr) = run_to_end(
        &[
            OsStr::new("-q"),
            OsStr::new("-l"),
            OsStr::new("-"),
            OsStr::new("--"),
            OsStr::new("test"),
            OsStr::from_bytes(b"\xff"),
            OsStr::new("="),
            OsStr::from_bytes(b"\xff"),
        ],
        secs(10.0),
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn help_and_version_print_to_stdout_and_exit_0() {
    for flag in ["-h", "--help"] {
        let out = std::process::Command::new(BIN).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("Usage: cocalc-init"), "{text}");
        assert!(text.contains("man cocalc-init"));
    }
    for flag in ["-V", "--version"] {
        let out = std::process::Command::new(BIN).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .starts_with("cocalc-init ")
        );
    }
}

#[test]
fn check_finds_commands_that_would_not_start() {
    let s = Scratch::new("check");
    let bad_shebang = s.write("bad.sh", "#!/no/such/shell\n");
    std::fs::set_permissions(
        &bad_shebang,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let missing_script = s.path("project_init.sh");
    let run = |args: &[&OsStr]| {
        let out = std::process::Command::new(BIN)
            .arg("--check")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&[
        OsStr::new("-p"),
        OsStr::new("nope=sshdd -D"),
        OsStr::new("-p"),
        OsStr::new("fine=sleep 1"),
        OsStr::new("-i"),
        missing_script.as_os_str(),
        OsStr::new("--"),
        bad_shebang.as_os_str(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("program nope: sshdd -D"), "{stdout}");
    assert!(
        stderr.contains("cocalc-init: nope: spawnerr: can't find command 'sshdd'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("main: spawnerr: couldn't run command")
            && stderr.contains("No such file or directory"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    // A missing init script is fine: it is optional.
    let (code, _, stderr) = run(&[
        OsStr::new("-p"),
        OsStr::new("fine=sleep 1"),
        OsStr::new("-i"),
        missing_script.as_os_str(),
    ]);
    assert_eq!((code, stderr.as_str()), (0, ""));
}
