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
