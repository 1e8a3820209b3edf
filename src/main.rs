//! cocalc-init: a small synchronous init for containers.
//!
//! `main` only wires the modules together and is the only place that exits:
//! parse (usage error → 2, before anything starts) → fd hygiene → log →
//! signals → supervisor loop → exit with its status.
//!
//! `main` is the C entry point (`no_main`): std's own start-up wrapper
//! brings its stack-overflow handler and unwinding set-up, which a
//! single-threaded init with `panic = "abort"` does not use, at 11% of the
//! static binary. What of it we need — fds 0, 1 and 2 open — is done here.
#![cfg_attr(not(test), no_main)]

mod cli;
mod config;
mod logfile;
mod messages;
mod output;
mod procs;
mod program;
mod shellwords;
mod signals;
mod spawn;
mod status;
mod supervisor;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::logfile::{Level, Logger, write_stderr};

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // std reads argv itself (from glibc's init hook), so env::args_os works.
    open_standard_fds();
    // Nothing is buffered at this point: the log and stdout were flushed.
    std::ffi::c_int::from(run())
}

/// A parent may start init with fd 0, 1 or 2 closed. Then the first file
/// init opens would take that number, and a child would inherit, say, the
/// signalfd as its stdout. Point any closed one at /dev/null.
#[cfg_attr(test, allow(dead_code))]
fn open_standard_fds() {
    for fd in 0..=2 {
        // SAFETY: fcntl and open with plain arguments.
        unsafe {
            if nix::libc::fcntl(fd, nix::libc::F_GETFD) < 0 {
                // The lowest free number is the one just found closed.
                nix::libc::open(c"/dev/null".as_ptr(), nix::libc::O_RDWR);
            }
        }
    }
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    // First thing: as PID 1, a signal that arrives before it is blocked is
    // dropped by the kernel, so keep that window as short as it can be.
    let signals = signals::Signals::install();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let config = match cli::parse(&args, &cwd) {
        Ok(cli::Request::Run(config)) => *config,
        Ok(cli::Request::Check(config)) => return print_stdout(&cli::describe(&config)),
        Ok(cli::Request::Help) => return print_stdout(&cli::help_text()),
        Ok(cli::Request::Version) => return print_stdout(&cli::version_text()),
        Err(e) => {
            write_stderr(format!("{e}\n").as_bytes());
            return 2;
        }
    };
    spawn::keep_inherited_fds_from_children();
    let mut log = Logger::open(&config.log);
    let signals = match signals {
        Ok(signals) => signals,
        Err(e) => {
            // Without signals init could neither reap nor stop: refuse to
            // start anything rather than run blind.
            log.line(
                Level::Critical,
                &messages::runtime_error("cannot set up signal handling", &e),
            );
            log.flush();
            return 1;
        }
    };
    log.info(&messages::started(nix::unistd::Pid::this()));
    supervisor::Supervisor::new(config, log, signals).run()
}

/// `--help`, `--version` and `--check` are the only output on stdout.
fn print_stdout(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
