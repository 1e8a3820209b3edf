//! Splits a `-p NAME=COMMAND` command line into words the way a POSIX shell
//! would quote them — single quotes, double quotes, backslash — and nothing
//! more: no expansion, no globbing, no operators. The words are executed
//! directly, so `a|b` is one word, not a pipe; that is on purpose (a program
//! that wants a shell says `sh -c '…'`).
//!
//! A hand-written splitter rather than a crate: it is short, and it can say
//! *which* quote is unbalanced, which a usage error needs.

use std::fmt;

/// Why a command line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    UnclosedSingle,
    UnclosedDouble,
    TrailingBackslash,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitError::UnclosedSingle => "unbalanced single quote",
            SplitError::UnclosedDouble => "unbalanced double quote",
            SplitError::TrailingBackslash => "backslash at the end",
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Between,
    Word,
    Single,
    Double,
}

/// Splits `line` into words. An empty or blank line gives no words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut mode = Mode::Between;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match mode {
            Mode::Between | Mode::Word => match c {
                ' ' | '\t' | '\n' => {
                    if mode == Mode::Word {
                        words.push(std::mem::take(&mut word));
                        mode = Mode::Between;
                    }
                }
                '\'' => mode = Mode::Single,
                '"' => mode = Mode::Double,
                '\\' => match chars.next() {
                    // A quoted newline is a line continuation in sh.
                    Some('\n') => {}
                    Some(next) => {
                        word.push(next);
                        mode = Mode::Word;
                    }
                    None => return Err(SplitError::TrailingBackslash),
                },
                _ => {
                    word.push(c);
                    mode = Mode::Word;
                }
            },
            Mode::Single => match c {
                '\'' => mode = Mode::Word,
                _ => word.push(c),
            },
            Mode::Double => match c {
                '"' => mode = Mode::Word,
                // Inside double quotes a backslash only escapes these five
                // (POSIX 2.2.3); before anything else it stays literal.
                '\\' => match chars.next() {
                    Some(next @ ('$' | '`' | '"' | '\\')) => word.push(next),
                    Some('\n') => {}
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => return Err(SplitError::UnclosedDouble),
                },
                _ => word.push(c),
            },
        }
    }
    match mode {
        Mode::Single => Err(SplitError::UnclosedSingle),
        Mode::Double => Err(SplitError::UnclosedDouble),
        Mode::Word => {
            words.push(word);
            Ok(words)
        }
        Mode::Between => Ok(words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn plain_words_split_on_blanks() {
        assert_eq!(
            ok("  /usr/sbin/sshd  -D\t-e "),
            ["/usr/sbin/sshd", "-D", "-e"]
        );
    }

    #[test]
    fn blank_line_gives_no_words() {
        assert!(ok("").is_empty());
        assert!(ok("   \t").is_empty());
    }

    #[test]
    fn single_quotes_keep_everything_literal() {
        assert_eq!(
            ok(r#"sh -c 'echo "$HOME" \n'"#),
            ["sh", "-c", r#"echo "$HOME" \n"#]
        );
    }

    #[test]
    fn double_quotes_escape_only_five_characters() {
        assert_eq!(ok(r#""a \" \\ \$ \x""#), [r#"a " \ $ \x"#]);
    }

    #[test]
    fn backslash_outside_quotes_escapes_next_character() {
        assert_eq!(ok(r"a\ b c\'d"), ["a b", "c'd"]);
    }

    #[test]
    fn adjacent_quoted_parts_join_into_one_word() {
        assert_eq!(ok(r#"a'b c'"d e"f"#), ["ab cd ef"]);
    }

    #[test]
    fn empty_quotes_make_an_empty_word() {
        assert_eq!(ok("printf '' x"), ["printf", "", "x"]);
        assert_eq!(ok(r#""""#), [""]);
    }

    #[test]
    fn shell_operators_are_ordinary_characters() {
        assert_eq!(ok("a|b >c $X *"), ["a|b", ">c", "$X", "*"]);
    }

    #[test]
    fn line_continuation_is_dropped() {
        assert_eq!(ok("a\\\nb"), ["ab"]);
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert_eq!(split("sh -c 'echo"), Err(SplitError::UnclosedSingle));
        assert_eq!(split("sh -c \"echo"), Err(SplitError::UnclosedDouble));
        assert_eq!(split("echo \\"), Err(SplitError::TrailingBackslash));
        assert_eq!(split("\"a\\"), Err(SplitError::UnclosedDouble));
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(ok("echo 'grüß dich' ✓"), ["echo", "grüß dich", "✓"]);
    }
}
