//! In-process backend processes that play a script (in the spirit of hyperfine's
//! `MockExecutor`): a [`Scripted`] launcher answers each spawn with a list of [`Step`]s —
//! lines on stdout, log lines, pauses, a hang, an exit, a memory peak — and the backend
//! under test supervises it exactly as it would a real child. Pauses and hangs use tokio's
//! clock, so a test that pauses time sees an 8-second timeout at once.
//!
//! What only a real process shows (signals reaching a process group, orphans, pipes) is
//! tested with real children beside these.

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::child::{BoxFuture, Launcher, Line, Process, Spawn};

/// One thing a scripted process does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A line on stdout.
    Line(String),
    /// Bytes on stdout that are not text: the reader fails.
    Unreadable,
    /// A line on stderr (what the log tail shows).
    Log(String),
    /// Takes this long before the next step.
    Sleep(Duration),
    /// Says nothing more and never exits by itself; stopped by SIGTERM, or only by SIGKILL
    /// (after the grace period) when `ignore_term`.
    Hang { ignore_term: bool },
    /// Closes stdout and goes on with the next steps (a process still running).
    CloseStdout,
    /// Exits with this status, closing stdout.
    Exit(ExitStatus),
    /// Resident memory reaches this many bytes: over the limit a backend set, the memory
    /// watchdog kills it (SIGKILL) and says so, as [`crate::child::Supervised`]'s does.
    Rss(u64),
}

/// A process that exited with `code`.
pub fn exit_code(code: i32) -> ExitStatus {
    ExitStatus::from_raw((code & 0xff) << 8)
}

/// A process killed by signal `sig`.
pub fn killed_by(sig: i32) -> ExitStatus {
    ExitStatus::from_raw(sig & 0x7f)
}

/// What a scripted process was started with, kept for the test to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Spawned {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub stdin: String,
}

type Play = dyn Fn(&Spawned) -> io::Result<Vec<Step>> + Send + Sync;

/// A launcher whose processes play the steps `play` returns for each spawn (an `Err` is a
/// spawn failure, as a missing program gives).
#[derive(Clone)]
pub struct Scripted {
    play: Arc<Play>,
    spawned: Arc<Mutex<Vec<Spawned>>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("spawned", &self.spawned())
            .finish_non_exhaustive()
    }
}

impl Scripted {
    pub fn new(
        play: impl Fn(&Spawned) -> io::Result<Vec<Step>> + Send + Sync + 'static,
    ) -> Scripted {
        Scripted {
            play: Arc::new(play),
            spawned: Arc::default(),
        }
    }

    /// Every spawn so far, in order (failed spawns included).
    pub fn spawned(&self) -> Vec<Spawned> {
        self.spawned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Launcher for Scripted {
    fn spawn<'a>(&'a self, s: Spawn<'a>) -> BoxFuture<'a, io::Result<Box<dyn Process>>> {
        let spawned = Spawned {
            program: s.program.to_path_buf(),
            args: s.args.to_vec(),
            envs: s.envs.to_vec(),
            stdin: s.stdin.to_string(),
        };
        let steps = (self.play)(&spawned);
        self.spawned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(spawned);
        Box::pin(async move { Ok(Box::new(ScriptedProcess::new(steps?)) as Box<dyn Process>) })
    }
}

/// A process playing its steps.
#[derive(Debug)]
pub struct ScriptedProcess {
    steps: VecDeque<Step>,
    status: Option<ExitStatus>,
    stdout_closed: bool,
    log: Vec<String>,
    limit: Option<u64>,
    over: Option<u64>,
}

impl ScriptedProcess {
    pub fn new(steps: Vec<Step>) -> ScriptedProcess {
        ScriptedProcess {
            steps: steps.into(),
            status: None,
            stdout_closed: false,
            log: Vec::new(),
            limit: None,
            over: None,
        }
    }

    fn exit(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.stdout_closed = true;
        self.steps.clear();
    }

    /// Plays steps until `until` (or a stdout line when `read` is set, or the end).
    /// Returns the line read, or `None` when `until` passed or the process exited.
    async fn play(&mut self, until: Instant, read: bool) -> Option<Line> {
        loop {
            if self.status.is_some() {
                return read.then_some(Line::Eof);
            }
            let Some(step) = self.steps.pop_front() else {
                self.exit(exit_code(0));
                return read.then_some(Line::Eof);
            };
            match step {
                // A line nobody reads sits in the pipe.
                Step::Line(t) => {
                    if read && !self.stdout_closed {
                        return Some(Line::Text(t));
                    }
                }
                Step::Unreadable => {
                    if read && !self.stdout_closed {
                        let why = "stream did not contain valid UTF-8".to_string();
                        return Some(Line::Unreadable(why));
                    }
                }
                Step::Log(l) => self.log.push(l),
                Step::Sleep(d) => {
                    let wake = Instant::now() + d;
                    if wake > until {
                        self.steps.push_front(Step::Sleep(wake - until));
                        tokio::time::sleep_until(until).await;
                        return read.then_some(Line::Timeout);
                    }
                    tokio::time::sleep_until(wake).await;
                }
                hang @ Step::Hang { .. } => {
                    self.steps.push_front(hang);
                    tokio::time::sleep_until(until).await;
                    return read.then_some(Line::Timeout);
                }
                Step::CloseStdout => {
                    self.stdout_closed = true;
                    if read {
                        return Some(Line::Eof);
                    }
                }
                Step::Exit(s) => {
                    self.exit(s);
                    return read.then_some(Line::Eof);
                }
                Step::Rss(bytes) => {
                    if self.limit.is_some_and(|l| bytes > l) {
                        self.over = Some(bytes);
                        self.exit(killed_by(libc::SIGKILL));
                        return read.then_some(Line::Eof);
                    }
                }
            }
            if read && self.stdout_closed {
                return Some(Line::Eof);
            }
        }
    }
}

impl Process for ScriptedProcess {
    fn pid(&self) -> Option<u32> {
        // No real process: telemetry has nothing to follow.
        None
    }

    fn limit_memory(&mut self, limit_bytes: u64) {
        self.limit = Some(limit_bytes);
    }

    fn over_limit(&self) -> Option<u64> {
        self.over
    }

    fn log_stdout(&mut self) {}

    fn exited(&mut self) -> Option<ExitStatus> {
        self.status
    }

    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Line> {
        Box::pin(async move {
            if self.stdout_closed {
                return Line::Eof;
            }
            self.play(deadline, true).await.unwrap_or(Line::Eof)
        })
    }

    fn log_tail(&mut self, max_lines: usize) -> BoxFuture<'_, String> {
        Box::pin(async move { self.log_tail_now(max_lines) })
    }

    fn log_tail_now(&self, max_lines: usize) -> String {
        self.log[self.log.len().saturating_sub(max_lines)..].join("\n")
    }

    fn wait_for(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>> {
        Box::pin(async move {
            self.play(Instant::now() + grace, false).await;
            self.status
        })
    }

    fn terminate(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>> {
        Box::pin(async move {
            if let Some(s) = self.status {
                return Some(s);
            }
            let deaf = self
                .steps
                .iter()
                .any(|s| matches!(s, Step::Hang { ignore_term: true }));
            if deaf {
                tokio::time::sleep(grace).await;
                self.exit(killed_by(libc::SIGKILL));
            } else {
                self.exit(killed_by(libc::SIGTERM));
            }
            self.status
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::describe_exit;

    #[tokio::test(start_paused = true)]
    async fn plays_lines_pauses_and_exits_on_tokio_s_clock() {
        let mut p = ScriptedProcess::new(vec![
            Step::Line("a".into()),
            Step::Log("warming up".into()),
            Step::Sleep(Duration::from_secs(5)),
            Step::Line("b".into()),
            Step::Exit(exit_code(3)),
        ]);
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(2);
        assert!(matches!(p.next_line(soon).await, Line::Text(t) if t == "a"));
        assert!(matches!(p.next_line(soon).await, Line::Timeout));
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        let later = t0 + Duration::from_secs(60);
        assert!(matches!(p.next_line(later).await, Line::Text(t) if t == "b"));
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        assert!(matches!(p.next_line(later).await, Line::Eof));
        assert_eq!(describe_exit(&p.exited().unwrap()), "exited with code 3");
        assert_eq!(p.log_tail(5).await, "warming up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_times_out_and_a_deaf_one_needs_sigkill() {
        let mut p = ScriptedProcess::new(vec![Step::Hang { ignore_term: false }]);
        let t0 = Instant::now();
        assert!(matches!(
            p.next_line(t0 + Duration::from_secs(8)).await,
            Line::Timeout
        ));
        let s = p.terminate(Duration::from_secs(3)).await.unwrap();
        assert!(describe_exit(&s).contains("SIGTERM"));
        assert_eq!(Instant::now() - t0, Duration::from_secs(8));

        let mut deaf = ScriptedProcess::new(vec![Step::Hang { ignore_term: true }]);
        let ended = deaf.wait_or_stop(Duration::from_secs(3)).await;
        assert!(ended.stopped);
        assert!(describe_exit(&ended.status.unwrap()).contains("SIGKILL"));
        assert_eq!(Instant::now() - t0, Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_over_the_limit_is_killed_and_remembered() {
        let steps = vec![Step::Rss(2 << 20), Step::Line("never".into())];
        let mut free = ScriptedProcess::new(steps.clone());
        let far = Instant::now() + Duration::from_secs(1);
        assert!(matches!(free.next_line(far).await, Line::Text(_)));
        let mut limited = ScriptedProcess::new(steps);
        limited.limit_memory(1 << 20);
        assert!(matches!(limited.next_line(far).await, Line::Eof));
        assert_eq!(limited.over_limit(), Some(2 << 20));
        assert!(describe_exit(&limited.exited().unwrap()).contains("SIGKILL"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_launcher_keeps_what_each_spawn_was_given() {
        let launcher = Scripted::new(|s| {
            if s.program.ends_with("missing") {
                Err(io::Error::from(io::ErrorKind::NotFound))
            } else {
                Ok(vec![Step::Line(s.stdin.clone())])
            }
        });
        let args = vec!["-x".to_string()];
        let spawn = |program: &'static str| Spawn {
            program: std::path::Path::new(program),
            args: &args,
            envs: &[],
            stdin: "job",
        };
        let mut p = launcher.spawn(spawn("engine")).await.unwrap();
        let far = Instant::now() + Duration::from_secs(1);
        assert!(matches!(p.next_line(far).await, Line::Text(t) if t == "job"));
        assert!(launcher.spawn(spawn("missing")).await.is_err());
        let spawned = launcher.spawned();
        assert_eq!(spawned.len(), 2);
        assert_eq!(spawned[0].args, args);
    }
}
