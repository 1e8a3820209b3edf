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

#[test]
fn the_log_goes_to_standard_output_when_asked() {
    for mode in MODES {
        for spelling in ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"] {
            let s = Scratch::new("log-stdout");
            let out = s.path("stdout");
            let file = std::fs::File::create(&out).unwrap();
            let mut init = init(mode, "log-stdout")
                .own_log()
                .args(&[
                    "-l",
                    spelling,
                    "-p",
                    "hello=sh -c 'echo hi; exec sleep 1000'",
                ])
                .setup(move |c| {
                    c.stdout(file.try_clone().unwrap());
                })
                .start_in(Some(s));
            wait_for(secs(10.0), "the program's line on stdout", || {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                text.contains("INFO hello stdout: hi").then_some(())
            });
            assert_eq!(init.stop(), 0);
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(
                text.contains("exiting with status 0"),
                "{mode:?} {spelling}: {text}"
            );
            assert!(
                !init.stderr_text().contains("hello stdout"),
                "{mode:?} {spelling}: {}",
                init.stderr_text()
            );
        }
    }
}

#[test]
fn check_and_the_run_agree_on_a_log_behind_a_link() {
    let s = Scratch::new("log-link");
    let link = s.path("log");
    std::os::unix::fs::symlink(s.path("target"), &link).unwrap();
    let (code, err) = run_to_end(
        &[
            "--check".as_ref(),
            "-l".as_ref(),
            link.as_os_str(),
            "--".as_ref(),
            "true".as_ref(),
        ],
        secs(10.0),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is a symbolic link, which init does not follow"),
        "{err}"
    );
}

#[test]
fn a_program_finds_its_init_through_its_environment() {
    for mode in MODES {
        let kick = format!(
            "kick=sh -c 'echo \"prog=$COCALC_INIT_PROGRAM ctl=$COCALC_INIT_CONTROL\"; \
             {BIN} restart web; echo \"restart=$?\"; exec sleep 1000'"
        );
        let mut init = init(mode, "env-control")
            .args(&["-p", "web=sleep 1000", "-p", &kick, "-o", "kick.after=web"])
            .main(&[
                "sh",
                "-c",
                "echo \"main=$COCALC_INIT_PROGRAM\" >&2; exec sleep 1000",
            ])
            .start();
        let log = init.wait_log("kick stdout: restart=");
        let sock = socket(&init).to_string_lossy().to_string();
        assert!(
            log.contains(&format!("kick stdout: prog=kick ctl={sock}")),
            "{log}"
        );
        assert!(log.contains("kick stdout: restart=0"), "{log}");
        assert_eq!(init.spawned_pids("web").len(), 2, "{log}");
        assert!(
            init.stderr_text().contains("main=main"),
            "{}",
            init.stderr_text()
        );
        // The main command's status: SIGTERM.
        assert_eq!(init.stop(), 143);
    }
}

#[test]
fn a_restart_of_an_after_chain_answers_once_all_are_back() {
    for mode in MODES {
        let mut init = init(mode, "chain")
            .args(&[
                "-s",
                "0.3",
                "-p",
                "xvfb=sleep 1000",
                "-p",
                "x11vnc=sleep 1000",
                "-o",
                "x11vnc.after=xvfb",
                "-p",
                "novnc=sleep 1000",
                "-o",
                "novnc.after=x11vnc",
            ])
            .start();
        wait_state(&init, "novnc", "RUNNING");
        let (code, out, err) = ctl(&init, &["restart", "xvfb", "x11vnc", "novnc"]);
        assert_eq!(code, 0, "{out}{err}\n{}", init.log_text());
        assert_eq!(
            out, "xvfb: restarted\nx11vnc: restarted\nnovnc: restarted\n",
            "{err}"
        );
        for name in ["xvfb", "x11vnc", "novnc"] {
            assert_eq!(init.spawned_pids(name).len(), 2, "{}", init.log_text());
        }
        assert_eq!(init.stop(), 0);
    }
}
