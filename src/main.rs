//! cocalc-init: a small synchronous init for containers.
//!
//! `main` only wires the modules together and is the only place that exits:
//! signals blocked → parse (usage error → 2, before anything starts) → the
//! main command started → log → supervisor loop → exit with its status.
//!
//! init enters at the C `main` (`no_main`) and keeps std: std's own
//! start-up (stack-overflow handlers, SIGPIPE set to ignored, a poll of
//! fds 0-2) is not run. Of that, init wants only the fds: see
//! `open_standard_fds`. SIGPIPE is blocked with every other signal.
#![cfg_attr(not(test), no_main)]

mod check;
mod cli;
mod client;
mod config;
mod control;
mod destination;
mod expand;
mod folders;
mod glibc;
mod history;
mod logfile;
mod logging;
mod messages;
mod notify;
mod order;
mod outlet;
mod output;
mod probe;
mod procs;
mod program;
mod rotating;
mod schedule;
mod settings;
mod shellwords;
mod signals;
mod signame;
mod spawn;
mod stamp;
mod status;
mod stdio;
mod supervisor;
mod table;
mod user;
mod values;
mod verbs;

use std::ffi::OsString;
#[cfg(not(test))]
use std::ffi::{c_char, c_int};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::values::Level;

// Not in the unit-test build, whose harness has its own main.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    c_int::from(run())
}

/// A parent may start init with fd 0, 1 or 2 closed. Then the first file
/// init opens would take that number, and a child would inherit, say, the
/// signalfd as its stdout. Point any closed one at /dev/null.
#[cfg_attr(test, allow(dead_code))]
fn open_standard_fds() {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let standard: [BorrowedFd<'_>; 3] = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    for fd in standard {
        if nix::sys::stat::fstat(fd).err() == Some(Errno::EBADF) {
            // The lowest free number is the one just found closed; it stays
            // open (and inherited) for the life of init.
            if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
                let _ = null.into_raw_fd();
            }
        }
    }
}

#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
    open_standard_fds();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // `cocalc-init status` and the other verbs talk to a running init.
    if client::is_client(&args) {
        return client::run(&args);
    }
    // As PID 1, a signal that arrives before it is blocked is dropped by
    // the kernel, so keep that window short.
    let signals = signals::Signals::install();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut config = match cli::parse(&args, &cwd) {
        Ok(cli::Request::Run(config)) => *config,
        Ok(cli::Request::Check(config)) => return check(&config),
        Ok(cli::Request::Help) => return print_stdout(&cli::help_text()),
        Ok(cli::Request::Version) => return print_stdout(&cli::version_text()),
        Err(e) => {
            // Nothing has started: a blocking write is fine.
            let _ = writeln!(std::io::stderr(), "{e}");
            return 2;
        }
    };
    let signals = match signals {
        Ok(signals) => signals,
        Err(e) => {
            // Without signals init could neither reap nor stop: refuse to
            // start anything rather than run blind.
            stdio::init();
            logging::init(&config.log);
            logging::line(
                Level::Critical,
                messages::runtime_error("cannot set up signal handling", &e),
            );
            logging::flush();
            return 1;
        }
    };
    // The main command first: `docker run IMAGE CMD` should not wait for
    // init to open its log. What happened is logged right after.
    let launch = supervisor::launch(&mut config);
    stdio::init();
    let log_on_stderr = logging::init(&config.log);
    logging::info(messages::started(launch.me));
    supervisor::Supervisor::new(config, signals, launch, log_on_stderr).run()
}

/// `--check`: the configuration on stdout, each problem a start would
/// meet on stderr; 1 if there is any.
#[cfg_attr(test, allow(dead_code))]
fn check(config: &config::Config) -> u8 {
    let status = print_stdout(&check::describe(config));
    let problems = check::problems(config);
    for problem in &problems {
        let _ = writeln!(std::io::stderr(), "cocalc-init: {problem}");
    }
    if problems.is_empty() { status } else { 1 }
}

/// `--help`, `--version` and `--check` are the only output on stdout.
#[cfg_attr(test, allow(dead_code))]
fn print_stdout(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
