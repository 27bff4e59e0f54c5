//! A supervised child process: its own process group, stdout read as lines with a
//! deadline, stderr kept as a bounded tail for error reasons, SIGTERM → grace → SIGKILL to
//! the whole group, killed when dropped, and (on Linux) killed by the kernel if tokbench
//! itself dies.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

/// How much of a child's stderr is kept.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// A bounded tail of a child's log.
#[derive(Debug, Default)]
pub struct LogTail {
    buf: VecDeque<u8>,
}

impl LogTail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes);
        while self.buf.len() > LOG_TAIL_BYTES {
            self.buf.pop_front();
        }
    }

    /// The last `max_lines` lines.
    pub fn last_lines(&self, max_lines: usize) -> String {
        let bytes: Vec<u8> = self.buf.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

/// What reading the next line gave.
#[derive(Debug)]
pub enum Line {
    Text(String),
    /// stdout closed: the child exited or closed it.
    Eof,
    /// The deadline passed first.
    Timeout,
    /// stdout could not be read as text (not UTF-8, or an I/O error).
    Unreadable(String),
}

/// A child under supervision.
#[derive(Debug)]
pub struct Supervised {
    child: Child,
    pid: Option<u32>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    log: Arc<Mutex<LogTail>>,
    /// The task copying stderr into `log`; awaited (bounded) before a failure's tail is read.
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    /// The resident memory at which the memory watchdog stopped the child, if it did.
    over_limit: Arc<Mutex<Option<u64>>>,
    /// Set to stop the memory watchdog's thread.
    watchdog: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// How a child ended when asked to wait or stop.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub status: Option<ExitStatus>,
    /// True if tokbench had to signal it (it did not exit by itself in time).
    pub stopped: bool,
}

/// A description of how a process ended, for result rows: "exited with code 3",
/// "killed by signal 9 (SIGKILL)".
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return format!("killed by signal {sig} ({name}{core})");
    }
    "ended for an unknown reason".into()
}

/// Returns true if and only if the process died from a signal (crash, kill, OOM killer).
pub fn died_by_signal(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal().is_some()
}

impl Supervised {
    /// Spawns `program args…` (an argument vector, never a shell) in its own process group
    /// with `stdin_text` written to its stdin.
    pub async fn spawn<I, S>(
        program: &Path,
        args: I,
        envs: &[(String, String)],
        stdin_text: &str,
    ) -> std::io::Result<Supervised>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the new process.
        unsafe {
            cmd.pre_exec(|| {
                // If tokbench dies (even by SIGKILL), the kernel kills the child.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        // Written in its own task: a child that never reads (or exits at once) must not
        // block us past any deadline, and a broken pipe is not a start failure — how the
        // child ended is reported by the usual end-of-output path.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut job = stdin_text.as_bytes().to_vec();
        job.push(b'\n');
        tokio::spawn(async move {
            let _ = stdin.write_all(&job).await;
        });
        let stdout = Some(BufReader::new(child.stdout.take().expect("stdout is piped")).lines());
        let log = Arc::new(Mutex::new(LogTail::default()));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        let stderr_task = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().expect("log lock").push(&buf[..n]);
            }
        });
        Ok(Supervised {
            child,
            pid,
            stdout,
            log,
            stderr_task: Some(stderr_task),
            over_limit: Arc::new(Mutex::new(None)),
            watchdog: None,
        })
    }

    /// Kills the child's process tree with SIGKILL once its resident memory (`VmRSS`
    /// summed over the child and its descendants, mmapped weights included) passes
    /// `limit_bytes`, checked every 50 ms. Linux only: where there is no `/proc`, nothing
    /// is watched. [`Supervised::over_limit`] then says what was seen. The watch runs on a
    /// thread of its own: reading `/proc` must not stall the runtime that times requests.
    pub fn limit_memory(&mut self, limit_bytes: u64) {
        let Some(pid) = self.pid else { return };
        let proc = tokbench_telemetry::procfs::ProcFs::real();
        if !proc.exists() {
            return;
        }
        let seen = Arc::clone(&self.over_limit);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.watchdog = Some(Arc::clone(&stop));
        std::thread::spawn(move || {
            let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
            let rss_of = |tree: &[u32]| -> u64 {
                tree.iter()
                    .filter_map(|p| proc.status(*p).ok()?.vm_rss_bytes)
                    .sum()
            };
            let mut tree = vec![pid];
            for tick in 0u64.. {
                if stopped() {
                    return;
                }
                // The tree (a server's workers) is listed again every half second.
                if tick % 10 == 0 {
                    tree = proc.tree(&[pid]);
                    if tree.is_empty() {
                        return;
                    }
                }
                if rss_of(&tree) > limit_bytes {
                    // Listed afresh before anything is killed: a worker reaped since the
                    // last listing may have left its pid to an unrelated process.
                    tree = proc.tree(&[pid]);
                    let rss = rss_of(&tree);
                    if rss > limit_bytes && !stopped() {
                        *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(rss);
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        for p in &tree {
                            let _ =
                                nix::sys::signal::kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
                        }
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }

    fn stop_watchdog(&mut self) {
        if let Some(stop) = self.watchdog.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The resident memory (bytes) at which [`Supervised::limit_memory`] killed the child.
    pub fn over_limit(&self) -> Option<u64> {
        *self.over_limit.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// For a child that talks over the network (a server): its stdout joins the log tail
    /// instead of being read as lines, so a chatty child never blocks on a full pipe.
    pub fn log_stdout(&mut self) {
        let Some(stdout) = self.stdout.take() else {
            return;
        };
        let sink = Arc::clone(&self.log);
        tokio::spawn(async move {
            let mut inner = stdout.into_inner();
            let mut buf = [0u8; 8192];
            while let Ok(n) = inner.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&buf[..n]);
            }
        });
    }

    /// Whether the child has exited (without waiting).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.reaped(status)
    }

    /// Once the child is reaped its pid may be reused: the memory watchdog stops watching
    /// it (a zombie's pid is never reused, so until here the pid is the child's).
    fn reaped(&mut self, status: Option<ExitStatus>) -> Option<ExitStatus> {
        if status.is_some() {
            self.stop_watchdog();
        }
        status
    }

    /// The next stdout line, or EOF, or a timeout at `deadline`.
    pub async fn next_line(&mut self, deadline: Instant) -> Line {
        let Some(stdout) = self.stdout.as_mut() else {
            return Line::Eof;
        };
        match tokio::time::timeout_at(deadline, stdout.next_line()).await {
            Err(_) => Line::Timeout,
            Ok(Ok(Some(line))) => Line::Text(line),
            Ok(Ok(None)) => Line::Eof,
            Ok(Err(e)) => Line::Unreadable(e.to_string()),
        }
    }

    /// The last lines the child wrote to stderr, once the stderr reader has caught up
    /// (it is given up to a second after the child is gone: a grandchild may hold the pipe).
    pub async fn log_tail(&mut self, max_lines: usize) -> String {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        self.log.lock().expect("log lock").last_lines(max_lines)
    }

    /// What the child has written to stderr so far (for a child that is still running).
    pub fn log_tail_now(&self, max_lines: usize) -> String {
        self.log.lock().expect("log lock").last_lines(max_lines)
    }

    /// Waits up to `grace` for the child to exit by itself.
    pub async fn wait_for(&mut self, grace: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(grace, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        self.reaped(status)
    }

    fn signal_group(&self, sig: Signal) {
        if let Some(pid) = self.pid {
            let _ = killpg(Pid::from_raw(pid as i32), sig);
        }
    }

    /// Stops the child's whole process group: SIGTERM, `grace`, then SIGKILL; reaps it.
    /// (A stopped child — SIGSTOP — is continued so it can see the TERM.)
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            // The leader is gone, but what it started may not be (a server's worker
            // processes): the rest of its group goes too.
            self.signal_group(Signal::SIGKILL);
            return Some(status);
        }
        self.signal_group(Signal::SIGTERM);
        self.signal_group(Signal::SIGCONT);
        if let Some(status) = self.wait_for(grace).await {
            return Some(status);
        }
        self.signal_group(Signal::SIGKILL);
        let _ = self.child.start_kill();
        self.wait_for(Duration::from_secs(10)).await
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop_watchdog();
        // kill_on_drop kills the leader; take the rest of its group with it (also when the
        // leader has exited and left children behind).
        self.signal_group(Signal::SIGKILL);
    }
}

/// A boxed future, as the object-safe traits below return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A running backend process as a backend sees it: lines on its stdout, a log tail, an end.
/// [`Supervised`] is the real one; [`crate::scripted::ScriptedProcess`] plays a script
/// in-process, so the supervision logic is tested in milliseconds (time paused).
pub trait Process: Send {
    fn pid(&self) -> Option<u32>;
    /// See [`Supervised::limit_memory`].
    fn limit_memory(&mut self, limit_bytes: u64);
    /// See [`Supervised::over_limit`].
    fn over_limit(&self) -> Option<u64>;
    /// See [`Supervised::log_stdout`].
    fn log_stdout(&mut self);
    /// Whether the process has exited (without waiting).
    fn exited(&mut self) -> Option<ExitStatus>;
    /// The next stdout line, or EOF, or a timeout at `deadline`.
    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Line>;
    /// The last lines of its log, once it has been read to the end (bounded).
    fn log_tail(&mut self, max_lines: usize) -> BoxFuture<'_, String>;
    /// What it has logged so far.
    fn log_tail_now(&self, max_lines: usize) -> String;
    /// Waits up to `grace` for it to exit by itself.
    fn wait_for(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>>;
    /// Stops it: SIGTERM, `grace`, SIGKILL; reaps it.
    fn terminate(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>>;

    /// Waits up to `grace` for it to exit by itself, then stops it.
    fn wait_or_stop(&mut self, grace: Duration) -> BoxFuture<'_, Ended> {
        Box::pin(async move {
            if let Some(status) = self.wait_for(grace).await {
                return Ended {
                    status: Some(status),
                    stopped: false,
                };
            }
            Ended {
                status: self.terminate(grace).await,
                stopped: true,
            }
        })
    }
}

/// What a backend asks to start: `program args…` with `envs`, and `stdin` written to it.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub envs: &'a [(String, String)],
    pub stdin: &'a str,
}

/// How backends start their processes: [`RealProcesses`] spawns them under supervision;
/// tests may play scripts instead ([`crate::scripted::Scripted`]).
pub trait Launcher: Send + Sync + std::fmt::Debug {
    fn spawn<'a>(&'a self, spawn: Spawn<'a>) -> BoxFuture<'a, std::io::Result<Box<dyn Process>>>;
}

/// Real child processes, each a [`Supervised`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RealProcesses;

impl Launcher for RealProcesses {
    fn spawn<'a>(&'a self, s: Spawn<'a>) -> BoxFuture<'a, std::io::Result<Box<dyn Process>>> {
        Box::pin(async move {
            let child = Supervised::spawn(s.program, s.args, s.envs, s.stdin).await?;
            Ok(Box::new(child) as Box<dyn Process>)
        })
    }
}

impl Process for Supervised {
    fn pid(&self) -> Option<u32> {
        Supervised::pid(self)
    }
    fn limit_memory(&mut self, limit_bytes: u64) {
        Supervised::limit_memory(self, limit_bytes);
    }
    fn over_limit(&self) -> Option<u64> {
        Supervised::over_limit(self)
    }
    fn log_stdout(&mut self) {
        Supervised::log_stdout(self);
    }
    fn exited(&mut self) -> Option<ExitStatus> {
        Supervised::exited(self)
    }
    fn next_line(&mut self, deadline: Instant) -> BoxFuture<'_, Line> {
        Box::pin(Supervised::next_line(self, deadline))
    }
    fn log_tail(&mut self, max_lines: usize) -> BoxFuture<'_, String> {
        Box::pin(Supervised::log_tail(self, max_lines))
    }
    fn log_tail_now(&self, max_lines: usize) -> String {
        Supervised::log_tail_now(self, max_lines)
    }
    fn wait_for(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>> {
        Box::pin(Supervised::wait_for(self, grace))
    }
    fn terminate(&mut self, grace: Duration) -> BoxFuture<'_, Option<ExitStatus>> {
        Box::pin(Supervised::terminate(self, grace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> &'static Path {
        Path::new("/bin/sh")
    }

    #[tokio::test]
    async fn reads_lines_and_keeps_stderr_tail() {
        let mut c = Supervised::spawn(
            sh(),
            ["-c", "read x; echo got-$x; echo oops >&2"],
            &[],
            "hi",
        )
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        match c.next_line(deadline).await {
            Line::Text(t) => assert_eq!(t, "got-hi"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.next_line(deadline).await, Line::Eof));
        let status = c.wait_for(Duration::from_secs(10)).await.unwrap();
        assert_eq!(describe_exit(&status), "exited with code 0");
        assert_eq!(c.log_tail(5).await, "oops");
    }

    #[tokio::test]
    async fn a_hung_child_times_out_and_is_killed_with_its_group() {
        // The shell ignores TERM and starts a grandchild; both must die.
        let mut c = Supervised::spawn(sh(), ["-c", "trap '' TERM; sleep 1000 & wait"], &[], "")
            .await
            .unwrap();
        let pgid = c.pid().unwrap() as i32;
        let deadline = Instant::now() + Duration::from_millis(200);
        assert!(matches!(c.next_line(deadline).await, Line::Timeout));
        let status = c.terminate(Duration::from_millis(300)).await.unwrap();
        assert!(died_by_signal(&status), "{}", describe_exit(&status));
        assert!(describe_exit(&status).contains("SIGKILL"));
        // No member of the group is left (killpg with signal 0 fails with ESRCH).
        let mut gone = false;
        for _ in 0..100 {
            if killpg(Pid::from_raw(pgid), None).is_err() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "process group {pgid} outlived terminate()");
    }
}
