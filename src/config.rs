//! Validated configuration: every value here has already passed its checks,
//! so the rest of init never re-validates or fails on it.

use std::ffi::CString;
use std::fmt;
use std::path::PathBuf;

use crate::settings::Settings;
use crate::values::{Level, Policy, Role};

/// The name of the main command in log lines, and so a name no `-p` may take.
pub const MAIN_NAME: &str = "main";
/// What the control verbs take for every program: no program's name.
pub const ALL_NAME: &str = "all";

/// A program name: non-empty, only `[A-Za-z0-9_.-]`, never `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramName(String);

impl ProgramName {
    pub fn new(name: &str) -> Result<ProgramName, String> {
        if name.is_empty() {
            return Err("the NAME is empty".into());
        }
        if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(format!(
                "the NAME '{name}' has '{bad}': only letters, digits, '_', '.' and '-' are allowed"
            ));
        }
        if name == MAIN_NAME {
            return Err(format!(
                "the NAME '{MAIN_NAME}' is reserved for the command after '--'"
            ));
        }
        if name == ALL_NAME {
            return Err(format!(
                "the NAME '{ALL_NAME}' is reserved: it means every program"
            ));
        }
        if name.starts_with('-') {
            return Err(format!("the NAME '{name}' may not begin with '-'"));
        }
        Ok(ProgramName(name.to_string()))
    }

    /// The main command's name, which no `-p` may take.
    pub fn main() -> ProgramName {
        ProgramName(MAIN_NAME.to_string())
    }

    /// The program name of an init script: its file name with every
    /// character a name may not hold (and every `.`) made `_`, as supervisord
    /// set-ups named `project_init.sh` → `project_init_sh`.
    pub fn for_script(file_name: &str) -> ProgramName {
        let mut name: String = file_name
            .chars()
            .map(|c| if is_name_char(c) && c != '.' { c } else { '_' })
            .collect();
        if name.starts_with('-') {
            name.replace_range(..1, "_");
        }
        if name.is_empty() || name == MAIN_NAME || name == ALL_NAME {
            return ProgramName(format!("{name}_"));
        }
        ProgramName(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgramName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// What a supervised program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramKind {
    /// `-p NAME=COMMAND`: COMMAND split into words.
    Command(Vec<String>),
    /// `-i PATH`: an absolute script path, run by bash (or sh) in its folder.
    InitScript(PathBuf),
    /// The command after `--`, kept as the OS gave it (need not be UTF-8).
    Main(Vec<CString>),
}

impl ProgramKind {
    pub fn role(&self) -> Role {
        match self {
            ProgramKind::Main(_) => Role::Main,
            ProgramKind::Command(_) | ProgramKind::InitScript(_) => Role::Program,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    pub name: ProgramName,
    pub kind: ProgramKind,
    /// The global flags' values with its own `-o` keys over them.
    pub settings: Settings,
}

/// The control socket's path, in every child's environment where there
/// is one; the client reads it when --control is not given.
pub const CONTROL_VAR: &str = "COCALC_INIT_CONTROL";
/// The program's own name, in its environment.
pub const PROGRAM_VAR: &str = "COCALC_INIT_PROGRAM";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// An absolute path.
    File(PathBuf),
    /// `-l -`: standard error only.
    Stderr,
    /// `-l /dev/stdout`: standard output only.
    Stdout,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub target: LogTarget,
    /// 0 = never rotate.
    pub max_bytes: u64,
    pub backups: u32,
    pub quiet: bool,
    /// The least severe lines the log keeps.
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `-p` and `-i` programs, in command-line order, then the main
    /// command (the one of role [`Role::Main`]), if there is one.
    pub programs: Vec<ProgramSpec>,
    pub policy: Policy,
    pub log: LogConfig,
    /// The control socket, if any.
    pub control: Option<PathBuf>,
}

impl Config {
    /// Whether there is a `-p` program or an `-i` script: what supervises
    /// programs has something to control.
    pub fn supervises(&self) -> bool {
        self.programs.iter().any(|p| p.kind.role() == Role::Program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_allowed_characters() {
        assert!(ProgramName::new("A-z_0.9").is_ok());
        assert!(ProgramName::new("").is_err());
        assert!(ProgramName::new("a b").is_err());
        assert!(ProgramName::new("a/b").is_err());
        assert!(ProgramName::new("main").is_err());
        assert!(ProgramName::new("main2").is_ok());
        assert!(ProgramName::new("all").is_err());
        assert!(ProgramName::new("-x").is_err());
        assert_eq!(ProgramName::for_script("all").as_str(), "all_");
        assert_eq!(ProgramName::for_script("-x.sh").as_str(), "_x_sh");
    }

    #[test]
    fn script_names_turn_dots_into_underscores() {
        assert_eq!(
            ProgramName::for_script("project_init.sh").as_str(),
            "project_init_sh"
        );
        assert_eq!(
            ProgramName::for_script("my init.v2.sh").as_str(),
            "my_init_v2_sh"
        );
        assert_eq!(ProgramName::for_script("main").as_str(), "main_");
    }
}
