//! What a supervisord set-up moved to cocalc-init relies on, against the
//! real binary as PID 1 and as a plain child: `%(ENV_X)s` and
//! `%(program_name)s` in commands and values, `key = value` with spaces,
//! children that find their init, per-program output destinations, the
//! log on init's standard output, and a restart of an `after=` chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

#[test]
fn supervisord_expansions_and_spaced_keys_are_understood() {
    for mode in MODES {
        let mut init = init(mode, "expand")
            .args(&[
                "-p",
                "show=sh -c 'echo \"cmd=%(ENV_MIG_WORD)s/%(program_name)s 100%% $APP\"; exec sleep 1000'",
                "-o",
                "show.environment = APP=\"%(ENV_MIG_WORD)s-%(program_name)s\"",
                "-o",
                "show.stopwaitsecs = 3 ",
            ])
            .setup(|c| {
                c.env("MIG_WORD", "hello world");
            })
            .start();
        init.wait_log("cmd=hello world/show 100% hello world-show");
        assert_eq!(init.stop(), 0);
    }
}

#[test]
fn an_undefined_variable_is_a_usage_error_that_names_it() {
    refused(
        &["-p", "web=echo %(ENV_MIG_NOT_SET_ANYWHERE)s"],
        "--program 'web=echo %(ENV_MIG_NOT_SET_ANYWHERE)s': %(ENV_MIG_NOT_SET_ANYWHERE)s: \
         the variable MIG_NOT_SET_ANYWHERE is not in init's environment",
    );
    refused(
        &[
            "-p",
            "web=true",
            "-o",
            "web.directory=%(ENV_MIG_NOT_SET_ANYWHERE)s",
        ],
        "--option 'web.directory=%(ENV_MIG_NOT_SET_ANYWHERE)s': %(ENV_MIG_NOT_SET_ANYWHERE)s",
    );
    refused(&["-p", "web=echo %(here)s"], "%(here)s is not known");
}
