//! What the subcommands print, through [`outln!`], [`out!`] and [`errln!`]
//! instead of `println!` and `eprintln!`.
//!
//! A reader that goes away early (`warden policy explain ... | head -c 10`,
//! `warden audit tail ... | head -1`) closes the pipe, and the next write
//! fails with `EPIPE`. `println!` panics on that ("failed printing to
//! stdout: Broken pipe"). Here, once stdout is closed, the rest of the
//! output is dropped and the command runs to its end with its own exit
//! status (`warden audit tail`, whose only work is printing, stops; see
//! [`stdout_closed`]). Any other write error (a full disk behind a
//! redirection) fails the command with a message. Writes to stderr never
//! fail a command.
//!
//! SIGPIPE stays ignored, as the Rust runtime sets it before `main`, rather
//! than reset to its default action (terminate quietly), which is the usual
//! fix for command-line tools: the same binary, as `warden serve --stdio`,
//! writes MCP messages to its stdout and writes to the stdin pipes of its
//! upstream children. A reader going away there must be an I/O error that
//! the gateway handles (the session ends, and the shutdown closes the audit
//! log with a final checkpoint), not a signal that kills the process
//! between a call's intent record and its outcome.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write found stdout closed by its reader.
pub fn stdout_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Writes `args` to stdout and flushes; `Ok` when the reader has gone.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    stdout_with(|out| out.write_fmt(args))
}

/// Writes `bytes` to stdout and flushes; `Ok` when the reader has gone.
pub fn write_stdout_bytes(bytes: &[u8]) -> io::Result<()> {
    stdout_with(|out| out.write_all(bytes))
}

fn stdout_with(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> io::Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("writing to stdout: {error}"),
        )),
        Ok(()) => Ok(()),
    }
}

/// Writes `args` to stderr, ignoring failure (there is nowhere left to
/// report it).
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// `println!` that returns an `io::Result` and is quiet on a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns an `io::Result` and is quiet on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
