//! supervisord's `%(NAME)s` expansions in a `-p` command and a `-o` value,
//! done once at start: `%(ENV_X)s` is the variable X of init's own
//! environment, `%(program_name)s` (and `%(group_name)s`: every program
//! is its own group here) the program's name, `%(process_num)s` 0 (one
//! process a program), `%(host_node_name)s` the host name. `%%` is one
//! `%`. Any other `%` is kept as it is: supervisord would refuse it, and
//! a command written for cocalc-init (`date +%s`) keeps working.

/// What an expansion may refer to.
pub struct Context<'a> {
    pub program: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub host: &'a dyn Fn() -> String,
}

/// `text` with its expansions done; an unknown name or an undefined
/// variable is an error that names it.
pub fn expand(text: &str, context: &Context<'_>) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        if let Some(after) = from.strip_prefix("%%") {
            out.push('%');
            rest = after;
            continue;
        }
        let Some((name, after)) = from
            .strip_prefix("%(")
            .and_then(|inner| inner.split_once(")s"))
            .filter(|(name, _)| !name.contains(['(', ')', '%']))
        else {
            out.push('%');
            rest = from.get(1..).unwrap_or("");
            continue;
        };
        out.push_str(&value_of(name, context)?);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

fn value_of(name: &str, context: &Context<'_>) -> Result<String, String> {
    if let Some(variable) = name.strip_prefix("ENV_") {
        return (context.env)(variable).ok_or_else(|| {
            format!("%({name})s: the variable {variable} is not in init's environment")
        });
    }
    match name {
        "program_name" | "group_name" => Ok(context.program.to_string()),
        "process_num" => Ok("0".to_string()),
        "host_node_name" => Ok((context.host)()),
        _ => Err(format!(
            "%({name})s is not known: the names are ENV_VARIABLE, program_name, \
             group_name, process_num and host_node_name"
        )),
    }
}

/// The context of init's real environment and host name.
pub fn expand_for(program: &str, text: &str) -> Result<String, String> {
    let env = |name: &str| std::env::var(name).ok();
    let host = || {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    expand(
        text,
        &Context {
            program,
            env: &env,
            host: &host,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, String> {
        let env = |name: &str| match name {
            "HOME" => Some("/home/me".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let host = || "box".to_string();
        expand(
            text,
            &Context {
                program: "web",
                env: &env,
                host: &host,
            },
        )
    }

    #[test]
    fn names_are_expanded() {
        assert_eq!(
            run("%(ENV_HOME)s/logs/%(program_name)s.log").unwrap(),
            "/home/me/logs/web.log"
        );
        assert_eq!(run("[%(ENV_EMPTY)s]").unwrap(), "[]");
        assert_eq!(
            run("%(group_name)s-%(process_num)s@%(host_node_name)s").unwrap(),
            "web-0@box"
        );
    }

    #[test]
    fn a_double_percent_is_one_and_a_lone_one_stays() {
        assert_eq!(run("100%% sure").unwrap(), "100% sure");
        assert_eq!(run("date +%s").unwrap(), "date +%s");
        assert_eq!(run("50% (%(x").unwrap(), "50% (%(x");
        assert_eq!(run("%").unwrap(), "%");
        assert_eq!(run("%%(ENV_HOME)s").unwrap(), "%(ENV_HOME)s");
        assert_eq!(run("no percent").unwrap(), "no percent");
        assert_eq!(run("é%(program_name)sé").unwrap(), "éwebé");
    }

    #[test]
    fn undefined_variables_and_unknown_names_are_named() {
        let e = run("x %(ENV_NOPE)s").unwrap_err();
        assert!(e.contains("NOPE is not in init's environment"), "{e}");
        let e = run("%(here)s").unwrap_err();
        assert!(e.contains("%(here)s is not known"), "{e}");
    }
}
