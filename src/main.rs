//! cocalc-init: a small synchronous init for containers.
//!
//! `main` only wires the modules together and is the only place that exits:
//! signals blocked → parse (usage error → 2, before anything starts) → fd
//! hygiene → the main command started → log → supervisor loop → exit with
//! its status.
//!
//! init is built without std (`no_std`, `no_main`; `alloc` for its
//! strings and vectors): std's panic machinery — a backtrace symbolizer
//! that `panic = "abort"` keeps — with its `Command`, files and
//! `io::Error` text (strerror pulls gettext into a static glibc) were a
//! quarter of the static binary. What std did for a program, init does itself: `main` is the C
//! entry point, `runtime` supplies the heap (glibc's malloc) and the panic
//! handler, `sys` wraps the system calls. Unit tests build with std.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

mod cli;
mod config;
mod localtime;
mod logfile;
mod messages;
mod output;
mod path;
mod procs;
mod program;
#[cfg(not(test))]
mod runtime;
mod shellwords;
mod signals;
mod spawn;
mod status;
mod stderr;
mod supervisor;
mod sys;
mod time;

use alloc::format;
use alloc::vec::Vec;
use core::ffi::{CStr, c_char, c_int};

use crate::logfile::{Level, Logger};

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    open_standard_fds();
    // SAFETY: argc and argv are what the C runtime passed to main.
    c_int::from(unsafe { run(argc, argv) })
}

/// The arguments after the program name, as the OS gave them. They are
/// borrowed, not copied: argv lives as long as the process.
///
/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings.
#[cfg_attr(test, allow(dead_code))]
unsafe fn args_from(argc: c_int, argv: *const *const c_char) -> Vec<&'static CStr> {
    let count = usize::try_from(argc).unwrap_or(0);
    (1..count)
        .filter_map(|i| {
            // SAFETY: i < argc, so argv[i] is one of the strings.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: a NUL-terminated string from the C runtime, never
            // freed or changed.
            (!arg.is_null()).then(|| unsafe { CStr::from_ptr(arg) })
        })
        .collect()
}

/// A parent may start init with fd 0, 1 or 2 closed. Then the first file
/// init opens would take that number, and a child would inherit, say, the
/// signalfd as its stdout. Point any closed one at /dev/null.
#[cfg_attr(test, allow(dead_code))]
fn open_standard_fds() {
    for fd in 0..=2 {
        // SAFETY: fcntl and open with plain arguments.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) < 0 {
                // The lowest free number is the one just found closed.
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}

/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings.
#[cfg_attr(test, allow(dead_code))]
unsafe fn run(argc: c_int, argv: *const *const c_char) -> u8 {
    // First thing: as PID 1, a signal that arrives before it is blocked is
    // dropped by the kernel, so keep that window as short as it can be.
    let signals = signals::Signals::install();
    // SAFETY: as promised by the caller.
    let args = unsafe { args_from(argc, argv) };
    let cwd = sys::current_dir().unwrap_or_else(|| b"/".to_vec());
    let config = match cli::parse(&args, &cwd) {
        Ok(cli::Request::Run(config)) => *config,
        Ok(cli::Request::Check(config)) => return print_stdout(&cli::describe(&config)),
        Ok(cli::Request::Help) => return print_stdout(&cli::help_text()),
        Ok(cli::Request::Version) => return print_stdout(&cli::version_text()),
        Err(e) => {
            stderr::write(format!("{e}\n").as_bytes());
            return 2;
        }
    };
    spawn::keep_inherited_fds_from_children();
    let mut config = config;
    let signals = match signals {
        Ok(signals) => signals,
        Err(e) => {
            // Without signals init could neither reap nor stop: refuse to
            // start anything rather than run blind.
            stderr::init();
            let mut log = Logger::open(&config.log);
            log.line(
                Level::Critical,
                &messages::runtime_error("cannot set up signal handling", &e),
            );
            log.flush();
            return 1;
        }
    };
    // The main command first: `docker run IMAGE CMD` should not wait for
    // init to open its log. What happened is logged right after.
    let early = supervisor::start_early(&mut config);
    stderr::init();
    let mut log = Logger::open(&config.log);
    log.info(&messages::started(early.me));
    supervisor::Supervisor::new(config, log, signals, early).run()
}

/// `--help`, `--version` and `--check` are the only output on stdout.
#[cfg_attr(test, allow(dead_code))]
fn print_stdout(text: &str) -> u8 {
    match sys::write_all(1, text.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
