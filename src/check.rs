//! `--check`: the configuration as init understood it, and what would
//! fail at the start, found as a start would find it. Nothing is started.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::{Config, LogTarget, ProgramKind};
use crate::messages;
use crate::schedule::{self, Schedule};
use crate::settings::Settings;
use crate::spawn;

/// What `--check` finds would fail at the start, one line a problem, in
/// the words a start would log: every program's and the main command's
/// working folder and command, and each init script that exists but
/// cannot be read (a missing one is fine: they are optional), and the log
/// file. Users were looked up when the options were read.
pub fn problems(config: &Config) -> Vec<String> {
    let mut found = Vec::new();
    let check = |name: &str, command: Option<&std::ffi::OsStr>, dir: Option<&Path>| {
        let result = match dir {
            Some(dir) => spawn::check_folder(dir),
            None => Ok(()),
        }
        .and_then(|()| command.map_or(Ok(()), |c| spawn::preflight(c, dir)));
        result
            .err()
            .map(|e| format!("{name}: {}", messages::spawnerr(&e)))
    };
    // The main command's, after the log's, as when it was said apart.
    let mut main = None;
    for program in &config.programs {
        let dir = program.settings.directory.as_deref();
        match &program.kind {
            ProgramKind::Main(argv) => {
                main = argv.first().and_then(|word| {
                    check(
                        program.name.as_str(),
                        Some(std::ffi::OsStr::from_bytes(word.as_bytes())),
                        dir,
                    )
                });
            }
            ProgramKind::Command(words) => {
                found.extend(check(
                    program.name.as_str(),
                    words.first().map(std::ffi::OsStr::new),
                    dir,
                ));
            }
            ProgramKind::InitScript(script) => {
                if script.exists() {
                    found.extend(check(program.name.as_str(), None, dir));
                    if let Err(e) = std::fs::File::open(script) {
                        found.push(format!(
                            "{}: cannot read {}: {e}",
                            program.name,
                            script.display()
                        ));
                    } else if spawn::has_crlf_lines(script) {
                        found
                            .push(messages::crlf_script(program.name.as_str(), script).to_string());
                    }
                }
            }
        }
    }
    if let LogTarget::File(path) = &config.log.target {
        if let Err(e) = crate::rotating::check(path) {
            found.push(format!("the log: {e}"));
        }
    }
    found.extend(main);
    found
}

/// A scheduled program's next three times from now (in the local zone),
/// or how its interval runs.
fn next_runs(schedule: &Schedule) -> String {
    let zone = crate::stamp::zone();
    let mut at = std::time::SystemTime::now();
    let mut times = Vec::new();
    for _ in 0..3 {
        match schedule::next_after(schedule, at, zone) {
            Some(next) => {
                times.push(schedule::local_text(next, zone));
                at = next;
            }
            None => break,
        }
    }
    match schedule {
        Schedule::Every(_) => "runs at start, then that long after each run ends".to_string(),
        Schedule::Cron(..) => format!("next runs: {}", times.join(", ")),
    }
}

/// What `--check` prints: the configuration as init understood it.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let defaults = Settings::defaults(&config.policy);
    let settings = |out: &mut String, settings: &Settings| {
        for line in settings.differences(&defaults) {
            out.push_str(&format!("  {line}\n"));
        }
    };
    for program in &config.programs {
        match &program.kind {
            ProgramKind::Command(words) => {
                out.push_str(&format!(
                    "program {}: {}\n",
                    program.name,
                    quote_words(words.iter().map(String::as_str))
                ));
            }
            ProgramKind::Main(argv) => {
                let words: Vec<String> = argv
                    .iter()
                    .map(|w| w.to_string_lossy().into_owned())
                    .collect();
                out.push_str(&format!(
                    "{}: {}\n",
                    program.name,
                    quote_words(words.iter().map(String::as_str))
                ));
            }
            ProgramKind::InitScript(script) => {
                let folder = script.parent().unwrap_or(Path::new("/"));
                let folder = program.settings.directory.as_deref().unwrap_or(folder);
                out.push_str(&format!(
                    "init script {}: bash {} (in {}, if it exists at start)\n",
                    program.name,
                    shell_quote(&script.to_string_lossy()),
                    folder.display()
                ));
            }
        }
        settings(&mut out, &program.settings);
        if let Some(schedule) = &program.settings.schedule {
            out.push_str(&format!("  {}\n", next_runs(schedule)));
        }
    }
    let p = &config.policy;
    out.push_str(&format!(
        "expected exit codes: {}; startsecs {}; backoff-max {}; grace {}\n",
        p.exitcodes, p.startsecs, p.backoff_max, p.grace
    ));
    match &config.control {
        Some(path) => out.push_str(&format!("control socket: {}\n", path.display())),
        None => out.push_str("control socket: none\n"),
    }
    let l = &config.log;
    let rotation = match l.max_bytes {
        0 => "never rotated".to_string(),
        n => format!("rotated at {n} bytes, {} kept", l.backups),
    };
    match &l.target {
        LogTarget::Stderr => out.push_str(&format!(
            "log: standard error only, {} and above\n",
            l.level.name()
        )),
        LogTarget::Stdout => out.push_str(&format!(
            "log: standard output only, {} and above\n",
            l.level.name()
        )),
        LogTarget::File(file) => out.push_str(&format!(
            "log: {} ({rotation}), {} and above{}\n",
            file.display(),
            l.level.name(),
            if l.quiet {
                ""
            } else {
                ", copied to standard error"
            }
        )),
    }
    out
}

fn quote_words<'a>(words: impl Iterator<Item = &'a str>) -> String {
    words.map(shell_quote).collect::<Vec<_>>().join(" ")
}

/// A word as a shell would need it quoted to read it back.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Request, parse};
    use std::ffi::OsString;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn check_describes_the_configuration() {
        let c = match parse(
            &args(&[
                "--check",
                "-p",
                "a=sh -c 'echo hi'",
                "-i",
                "/h/p.sh",
                "-x",
                "0,3,3",
                "--",
                "x y",
            ]),
            Path::new("/"),
        ) {
            Ok(Request::Check(c)) => c,
            other => panic!("{other:?}"),
        };
        let text = describe(&c);
        assert!(text.contains("program a: sh -c 'echo hi'\n"), "{text}");
        assert!(
            text.contains("init script p_sh: bash /h/p.sh (in /h, if it exists at start)\n"),
            "{text}"
        );
        assert!(text.contains("main: 'x y'\n"), "{text}");
        assert!(
            text.contains("expected exit codes: 0,3; startsecs 1; backoff-max 60; grace 8\n"),
            "{text}"
        );
        assert!(text.contains("log: /tmp/.cocalc/cocalc-init.log (rotated at 10485760 bytes, 3 kept), info and above, copied to standard error\n"), "{text}");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
