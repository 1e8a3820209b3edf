//! The docs cannot drift from the code: `--help` and the man page list the
//! same flags with the same defaults, every example command line in
//! README.md, the man page and examples/Dockerfile is accepted by the real
//! parser (`--check`), and the man page lints and renders cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;

const MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/cocalc-init.1");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const DOCKERFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/Dockerfile");

/// roff escapes and fonts → plain text.
fn unroff(s: &str) -> String {
    s.replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\e", "\\")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\&", "")
}

/// long flag → (short flag, default)
type Flags = BTreeMap<String, (Option<String>, Option<String>)>;

fn help_flags() -> Flags {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = help.lines().collect();
    let mut flags = Flags::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if !t.starts_with('-') || t.starts_with("-- ") {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let (short, long) = if words[0].ends_with(',') {
            (Some(words[0].trim_end_matches(',').to_string()), words[1])
        } else {
            (None, words[0])
        };
        let default_in = |l: &str| {
            l.rfind('[').and_then(|a| {
                l[a + 1..]
                    .find(']')
                    .map(|b| l[a + 1..a + 1 + b].to_string())
            })
        };
        let default = default_in(line).or_else(|| {
            lines
                .get(i + 1)
                .filter(|next| next.trim_start().starts_with('['))
                .and_then(|next| default_in(next))
        });
        flags.insert(long.to_string(), (short, default));
    }
    flags
}

fn section<'a>(man: &'a str, name: &str) -> &'a str {
    let start = man
        .find(&format!(".SH {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}"));
    let rest = &man[start + 5..];
    &rest[..rest.find("\n.SH ").unwrap_or(rest.len())]
}

fn man_flags() -> Flags {
    let man = std::fs::read_to_string(MAN).unwrap();
    let options = section(&man, "OPTIONS");
    let mut flags = Flags::new();
    for block in options.split("\n.TP\n").skip(1) {
        let mut lines = block.lines();
        let tag = unroff(lines.next().unwrap());
        let words: Vec<String> = tag
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .filter(|w| w.starts_with('-'))
            .map(str::to_string)
            .collect();
        let Some(long) = words.iter().find(|w| w.starts_with("--") && w.len() > 2) else {
            continue;
        };
        let short = words.iter().find(|w| !w.starts_with("--")).cloned();
        let body: Vec<&str> = block.lines().collect();
        let default = body.iter().position(|l| *l == "Default:").map(|at| {
            let value = unroff(body[at + 1]);
            value
                .trim_start_matches(".BR ")
                .trim_end_matches(" .")
                .trim()
                .to_string()
        });
        flags.insert(long.clone(), (short, default));
    }
    flags
}

#[test]
fn help_and_man_page_list_the_same_flags_with_the_same_defaults() {
    let help = help_flags();
    let man = man_flags();
    assert!(help.len() >= 14, "{help:?}");
    assert_eq!(help, man);
}

#[test]
fn help_and_man_page_name_every_key_of_o() {
    // The binary's own list, from its usage error for an unknown key.
    let out = std::process::Command::new(BIN)
        .args(["-p", "a=true", "-o", "a.no_such_key=1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let keys = err
        .split("the keys are ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("{err}"));
    let keys: Vec<&str> = keys.split(", ").collect();
    assert!(keys.len() >= 20, "{keys:?}");
    let man = std::fs::read_to_string(MAN).unwrap();
    let settings = unroff(section(&man, "PROGRAM SETTINGS"));
    let help = String::from_utf8(
        std::process::Command::new(BIN)
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .replace("{stdout,stderr}_logfile_{maxbytes,backups}", {
        "stdout_logfile_maxbytes stdout_logfile_backups \
         stderr_logfile_maxbytes stderr_logfile_backups"
    });
    for key in keys {
        assert!(settings.contains(&format!("{key}=")), "man page: no {key}=");
        assert!(
            help.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|w| w == key),
            "--help: no {key}"
        );
    }
}

/// The example parses: --check exits 0, or 1 when only a command it names
/// is not installed here (2 is a usage error).
fn check(args: &[String], origin: &str) {
    let out = Command::new(BIN)
        .arg("--check")
        .args(args)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(2),
        "{origin}: {args:?} does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks a shell command line whose first word(s) stand for cocalc-init.
fn check_shell(line: &str, origin: &str) {
    let script = format!("exec \"$BIN\" --check {line}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("BIN", BIN)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(2),
        "{origin}: {line} does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// JSON string arrays after `ENTRYPOINT` (with a `CMD` array right after
/// it appended), from text whose line continuations are joined.
fn entrypoints(text: &str) -> Vec<Vec<String>> {
    let text = text.replace("\\\n", " ");
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("ENTRYPOINT [") {
        rest = &rest[at + "ENTRYPOINT ".len()..];
        let (mut words, after) = json_array(rest);
        let trimmed = after.trim_start();
        if let Some(cmd) = trimmed.strip_prefix("CMD ") {
            words.extend(json_array(cmd).0);
        }
        words.remove(0); // "cocalc-init"
        found.push(words);
        rest = after;
    }
    found
}

fn json_array(s: &str) -> (Vec<String>, &str) {
    let s = s.trim_start().strip_prefix('[').unwrap();
    let mut words = Vec::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ']' => return (words, &s[i + 1..]),
            '"' => {
                let mut w = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => w.push(chars.next().unwrap().1),
                        '"' => break,
                        c => w.push(c),
                    }
                }
                words.push(w);
            }
            _ => {}
        }
    }
    panic!("unterminated array")
}

#[test]
fn example_command_lines_parse() {
    let readme = std::fs::read_to_string(README).unwrap();
    let mut count = 0;
    for line in readme.lines() {
        if let Some((_, args)) = line.split_once("cargo run --release -- ") {
            check_shell(args, "README.md");
            count += 1;
        }
    }
    for words in entrypoints(&readme) {
        check(&words, "README.md");
        count += 1;
    }
    assert!(count >= 3, "README.md: only {count} examples found");

    let man = std::fs::read_to_string(MAN).unwrap();
    let examples = unroff(section(&man, "EXAMPLES"));
    let mut count = 0;
    for line in examples.lines() {
        if let Some(args) = line.strip_prefix("cocalc-init ") {
            check_shell(args, "man page");
            count += 1;
        }
    }
    for words in entrypoints(&examples) {
        check(&words, "man page");
        count += 1;
    }
    assert!(count >= 3, "man page: only {count} examples found");

    let dockerfile = std::fs::read_to_string(DOCKERFILE).unwrap();
    let found = entrypoints(&dockerfile);
    // The static image's and the project image's.
    assert_eq!(found.len(), 2);
    for words in &found {
        check(words, "examples/Dockerfile");
    }
}

#[test]
fn check_rejects_what_the_real_run_rejects() {
    let out = Command::new(BIN)
        .args(["--check", "-p", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["--check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_lints_clean() {
    let out = Command::new("mandoc")
        .args(["-T", "lint", "-W", "warning", MAN])
        .output()
        .expect("mandoc is needed: .ci/run installs it");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.is_empty() && out.status.success(), "{said}");
}

#[test]
fn man_page_renders_within_80_columns() {
    let out = Command::new("man")
        .args(["-l", MAN])
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
        .expect("man is needed: .ci/run installs man-db");
    assert!(out.status.success());
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "{warnings}");
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SIGNALS",
        "RESTART POLICY",
        "INIT SCRIPTS",
        "LOG",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "COMING FROM SUPERVISORD",
        "SEE ALSO",
    ] {
        assert!(text.lines().any(|l| l == section), "no {section} section");
    }
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
    // Words run together: a macro line whose arguments were meant to be
    // words (`.RI "a b" c` without the spaces, `.BR x ; 1 a`) renders
    // them with no space between. No English word here is that long.
    for word in text.split_whitespace() {
        let letters = word.trim_matches(|c: char| !c.is_alphabetic());
        let run = letters.chars().all(|c| c.is_ascii_lowercase()) && letters.len() > 22;
        assert!(!run, "words run together: {word}");
        assert!(!word.contains(";1"), "words run together: {word}");
    }
}
