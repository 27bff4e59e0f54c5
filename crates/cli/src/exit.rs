//! Exit codes, documented in `tokbench --help` and the README.

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// tokbench itself failed (I/O, database).
    ToolError = 1,
    /// Bad input: an invalid suite, a missing or corrupt model file, bad arguments.
    BadInput = 2,
    /// `tokbench check`: a confirmed regression (verdicts are stored first).
    Regression = 3,
    /// The run finished but some benchmark cells failed (their rows say why).
    SomeFailed = 4,
    /// Interrupted by SIGINT/SIGTERM; the run is marked interrupted and can be resumed.
    Interrupted = 130,
}

/// An error that is the user's input, not tokbench's fault.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// The exit code for an error: bad input is 2, anything else 1.
pub fn code_of(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|c| c.is::<BadInput>()) {
        ExitCode::BadInput
    } else {
        ExitCode::ToolError
    }
}

/// Stdout was closed by its reader (a pipe into `head`): the command stops quietly, exit 0.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// True when `e` is stdout going away, which is no failure of a command that only prints.
pub fn stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// Writes to stdout (what [`out!`] and [`outln!`] expand to): a closed pipe is
/// [`StdoutClosed`], any other failure an error naming stdout.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// A failed write to stdout as [`write_stdout`] reports it: a closed pipe is
/// [`StdoutClosed`], anything else an error naming stdout.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}
