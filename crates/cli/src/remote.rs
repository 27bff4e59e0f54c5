//! The target side of remote runs (`tokbench run --target`, `tokbench targets`): what a
//! controller asks a tokbench on another machine over SSH. `tokbench remote info` says what
//! this tokbench is and whether its workdir can be written; `tokbench run --stream FILE`
//! appends each stored cell to FILE as a JSON line ([`StreamLine`]), which the controller
//! follows and writes into its own database; `tokbench remote snapshot` copies the
//! database, whole and consistent, to stdout for `tokbench targets sync`.
//!
//! The target stores every cell in its own database first (its journal): a controller that
//! loses the connection loses nothing, and `targets sync` brings the rest home.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokbench_core::{BackendBuild, CellResult, HostInfo, ModelRecord};
use tokbench_store::NewRun;

use crate::exit::{BadInput, ExitCode};

/// The version of what a controller and a target say to each other (the stream's lines and
/// `remote info`); both sides must speak the same.
pub const PROTOCOL: u32 = 1;

/// `tokbench run`'s flags for a run a controller starts (hidden: a person never types them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteRunArgs {
    /// The new run's UUID (the controller's, so both databases name the run alike).
    #[arg(long, hide = true, value_name = "UUID")]
    pub run_uuid: Option<String>,
    /// The id shared by the runs one command started on several targets.
    #[arg(long, hide = true, value_name = "ID")]
    pub invocation: Option<String>,
    /// Append each stored cell to this file as a JSON line.
    #[arg(long, hide = true, value_name = "FILE")]
    pub stream: Option<PathBuf>,
}

/// A run as the stream announces it: what [`NewRun`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRun {
    pub uuid: String,
    pub started_at: String,
    pub suite_name: String,
    pub suite_path: Option<String>,
    pub config_text: Option<String>,
    pub tokbench_version: String,
    pub trigger: String,
    pub cells_total: usize,
    pub hardware: Option<String>,
}

impl StreamRun {
    pub fn of(r: &NewRun) -> StreamRun {
        StreamRun {
            uuid: r.uuid.clone(),
            started_at: r.started_at.clone(),
            suite_name: r.suite_name.clone(),
            suite_path: r.suite_path.clone(),
            config_text: r.config_text.clone(),
            tokbench_version: r.tokbench_version.clone(),
            trigger: r.trigger.clone(),
            cells_total: r.cells_total,
            hardware: r.hardware.clone(),
        }
    }

    pub fn new_run(&self) -> NewRun {
        NewRun {
            uuid: self.uuid.clone(),
            started_at: self.started_at.clone(),
            suite_name: self.suite_name.clone(),
            suite_path: self.suite_path.clone(),
            config_text: self.config_text.clone(),
            tokbench_version: self.tokbench_version.clone(),
            trigger: self.trigger.clone(),
            cells_total: self.cells_total,
            source: None,
            hardware: self.hardware.clone(),
        }
    }
}

/// One line of a run's stream, in the order the target stored them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum StreamLine {
    /// The run began (or was resumed).
    Run {
        protocol: u32,
        run: StreamRun,
        invocation: Option<String>,
        host: HostInfo,
    },
    /// The run's environment (drivers, governor, …), as `run.environment_json` holds it.
    Environment { json: String },
    /// A cell was stored: its result, and any other result of the same cell (a server's
    /// own figures beside the client's).
    Cell {
        build: BackendBuild,
        model: Option<ModelRecord>,
        model_name: String,
        repetitions_expected: u32,
        results: Vec<CellResult>,
    },
    /// The run ended with this status.
    Finish { status: String, finished_at: String },
    /// Written by `remote follow`, not the run: the run's process ended without a
    /// `finish` line (it refused the suite, or was killed); the end of its log says why,
    /// and its exit code where `follow` could see it (a signal or an unknown end: none).
    Ended {
        log_tail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
    },
}

/// Where a run appends its [`StreamLine`]s: a file, or stdout (`-`).
pub struct Stream {
    out: Box<dyn Write + Send>,
    path: PathBuf,
}

impl Stream {
    pub fn open(path: &Path) -> anyhow::Result<Stream> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the stream file {}", path.display()))?,
            )
        };
        Ok(Stream {
            out,
            path: path.to_path_buf(),
        })
    }

    /// Appends `line` in one write, so a reader following the file never sees two lines
    /// interleaved.
    pub fn write(&mut self, line: &StreamLine) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(line).context("cannot encode a stream line")?;
        text.push('\n');
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .with_context(|| format!("cannot write the stream {}", self.path.display()))
    }
}

/// What `tokbench remote info` prints: enough for a controller to decide whether it can
/// run here, and for `tokbench targets` to list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub protocol: u32,
    pub version: String,
    /// The newest database schema (migration version) this tokbench knows.
    pub schema: i64,
    /// `std::env::consts::OS` and `ARCH`: whether the controller's binary runs here.
    pub os: String,
    pub arch: String,
    pub hostname: String,
    /// The embedded engine's accelerator build (cpu, cuda, vulkan, metal).
    pub accel: String,
    /// The hardware detected, as the catalog names it.
    pub hardware: Option<String>,
    /// The workdir, absolute, and why it cannot be written, if it cannot.
    pub workdir: String,
    pub workdir_error: Option<String>,
}

/// The newest migration this binary carries.
pub fn schema_version() -> i64 {
    tokbench_store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// `tokbench remote …`: the target side of `targets` and `run --target`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RemoteCommand {
    /// Print this tokbench's version, schema, engine build and hardware as JSON, after
    /// making sure WORKDIR exists and can be written.
    Info {
        #[arg(long, default_value = ".")]
        workdir: PathBuf,
    },
    /// Write a consistent copy of the database to stdout.
    Snapshot {
        #[arg(long, default_value = "tokbench.db")]
        db: PathBuf,
    },
    /// Re-measure cells of a stored run as a new run (what `tokbench check` does to a
    /// suspect), streaming it to stdout.
    Rerun {
        #[arg(long, default_value = "tokbench.db")]
        db: PathBuf,
        /// The run whose suite and cells are measured again.
        #[arg(long)]
        run: String,
        /// The cells, by index.
        #[arg(long, value_delimiter = ',', required = true)]
        cells: Vec<usize>,
        #[arg(long)]
        trigger: String,
        /// The new run's UUID.
        #[arg(long)]
        run_uuid: String,
    },
    /// Print FILE's lines as a run appends them, until its `finish` line, or until
    /// process PID has ended and the file is read to its end (then an `ended` line with
    /// the end of LOG). GNU `tail --pid`, on every system a target may run.
    Follow {
        file: PathBuf,
        #[arg(long)]
        pid: i32,
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

pub async fn command(c: &RemoteCommand) -> anyhow::Result<ExitCode> {
    match c {
        RemoteCommand::Info { workdir } => {
            let info = info(workdir).await?;
            outln!("{}", serde_json::to_string(&info)?)?;
            Ok(ExitCode::Ok)
        }
        RemoteCommand::Snapshot { db } => {
            let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
            let copy = dir.path().join("snapshot.db");
            tokbench_store::snapshot(db, &copy)
                .await
                .map_err(|e| BadInput(format!("{}: {e:#}", db.display())))?;
            let mut f = std::fs::File::open(&copy).context("cannot read the snapshot")?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut f, &mut out).map_err(crate::exit::stdout_error)?;
            out.flush().map_err(crate::exit::stdout_error)?;
            Ok(ExitCode::Ok)
        }
        RemoteCommand::Rerun {
            db,
            run,
            cells,
            trigger,
            run_uuid,
        } => {
            let remote = crate::run::Remote {
                uuid: Some(run_uuid.clone()),
                stream: Some(PathBuf::from("-")),
                ..Default::default()
            };
            let cells = cells.iter().copied().collect();
            let (_, code) = crate::run::rerun_cells(db, run, &cells, trigger, remote).await?;
            Ok(code)
        }
        RemoteCommand::Follow { file, pid, log } => {
            let run = Run::new(*pid);
            let mut out = std::io::stdout().lock();
            follow(
                file,
                || run.alive(),
                || run.exit_code(),
                log.as_deref(),
                &mut out,
                POLL,
            )?;
            Ok(ExitCode::Ok)
        }
    }
}

/// How often `remote follow` looks for new lines.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The run `remote follow` watches. The remote shell starts the run in the background and
/// then becomes `follow` (`exec`), so the run is `follow`'s child: once it exits it stays a
/// zombie until reaped, and `kill(pid, 0)` on a zombie succeeds. So `follow` reaps it
/// (`waitpid`, which also gives its exit code); a run that is not its child (started
/// otherwise) is watched with `kill(pid, 0)`.
struct Run {
    pid: nix::unistd::Pid,
    exit_code: std::cell::Cell<Option<i32>>,
    reaped: std::cell::Cell<bool>,
}

impl Run {
    fn new(pid: i32) -> Run {
        Run {
            pid: nix::unistd::Pid::from_raw(pid),
            exit_code: std::cell::Cell::new(None),
            reaped: std::cell::Cell::new(false),
        }
    }

    fn alive(&self) -> bool {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        if self.reaped.get() {
            return false;
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => true,
            Ok(WaitStatus::Exited(_, code)) => {
                self.exit_code.set(Some(code));
                self.reaped.set(true);
                false
            }
            Ok(WaitStatus::Signaled(..)) => {
                self.reaped.set(true);
                false
            }
            // Stopped or continued: still there.
            Ok(_) => true,
            // Not our child: ask whether it exists.
            Err(_) => nix::sys::signal::kill(self.pid, None).is_ok_or_eperm(),
        }
    }

    fn exit_code(&self) -> Option<i32> {
        self.exit_code.get()
    }
}

/// `kill(pid, 0)`'s answer as "the process exists": EPERM means it does, not ours.
trait Exists {
    fn is_ok_or_eperm(&self) -> bool;
}

impl Exists for nix::Result<()> {
    fn is_ok_or_eperm(&self) -> bool {
        matches!(self, Ok(()) | Err(nix::errno::Errno::EPERM))
    }
}

/// Copies `file`'s complete lines to `out` as they are appended (the file may not exist
/// yet), until a `finish` line has been copied, or `alive` says the writer is gone and a
/// last read finds nothing more; then, without a `finish` line, an `ended` line with the
/// end of `log`. A closed `out` (the controller went away) ends it quietly: the run goes
/// on and keeps its results.
pub fn follow(
    file: &Path,
    alive: impl Fn() -> bool,
    exit_code: impl Fn() -> Option<i32>,
    log: Option<&Path>,
    out: &mut impl Write,
    poll: std::time::Duration,
) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut offset = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut last_chance = false;
    loop {
        // Asked before reading: a writer gone now wrote everything it will before the read.
        let gone = !alive();
        let mut grew = false;
        if let Ok(mut f) = std::fs::File::open(file) {
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            offset += buf.len() as u64;
            grew = !buf.is_empty();
            pending.extend_from_slice(&buf);
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
            let finished = serde_json::from_slice::<StreamLine>(&line)
                .is_ok_and(|l| matches!(l, StreamLine::Finish { .. }));
            if finished {
                return Ok(());
            }
        }
        if gone && !grew {
            if !last_chance {
                last_chance = true;
                continue;
            }
            let log_tail = log
                .and_then(|l| std::fs::read(l).ok())
                .map(|b| {
                    let text = String::from_utf8_lossy(&b);
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join("\n")
                })
                .unwrap_or_default();
            let mut text = serde_json::to_string(&StreamLine::Ended {
                log_tail,
                exit_code: exit_code(),
            })?;
            text.push('\n');
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

async fn info(workdir: &Path) -> anyhow::Result<TargetInfo> {
    let workdir_error = std::fs::create_dir_all(workdir)
        .and_then(|()| tempfile::tempfile_in(workdir).map(drop))
        .err()
        .map(|e| e.to_string());
    let absolute = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    let host = tokbench_runner::host::detect();
    let engine = crate::run::own_engine()?;
    let accel = match tokbench_runner::probe_engine(&engine).await {
        Ok(b) => b.accel,
        Err(e) => format!("unknown (the engine does not start: {e})"),
    };
    let hardware = crate::hardware::load_catalog(None)
        .ok()
        .and_then(|c| crate::hardware::detected_hardware(&c, &host, &accel))
        .map(|c| c.display_name);
    Ok(TargetInfo {
        protocol: PROTOCOL,
        version: env!("CARGO_PKG_VERSION").into(),
        schema: schema_version(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        hostname: host.hostname,
        accel,
        hardware,
        workdir: absolute.display().to_string(),
        workdir_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_line_reads_back_as_written() {
        let line = StreamLine::Finish {
            status: "ok".into(),
            finished_at: "2026-12-06T00:00:00Z".into(),
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"line":"finish""#), "{text}");
        assert_eq!(serde_json::from_str::<StreamLine>(&text).unwrap(), line);
        let bad = serde_json::from_str::<StreamLine>(r#"{"line":"nonsense"}"#);
        assert!(bad.is_err());
    }

    fn line(l: &StreamLine) -> String {
        serde_json::to_string(l).unwrap() + "\n"
    }

    #[test]
    fn following_stops_at_the_finish_line_and_keeps_partial_lines_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("s.jsonl");
        let env = line(&StreamLine::Environment { json: "{}".into() });
        let fin = line(&StreamLine::Finish {
            status: "ok".into(),
            finished_at: "t".into(),
        });
        // Half a line, then the rest and the finish line, appended while following.
        std::fs::write(&file, &env[..5]).unwrap();
        let writer = {
            let (file, env, fin) = (file.clone(), env.clone(), fin.clone());
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&file)
                    .unwrap();
                f.write_all(&env.as_bytes()[5..]).unwrap();
                f.write_all(fin.as_bytes()).unwrap();
                f.write_all(b"{\"line\":\"after\"}\n").unwrap();
            })
        };
        let mut out = Vec::new();
        follow(
            &file,
            || true,
            || None,
            None,
            &mut out,
            std::time::Duration::from_millis(5),
        )
        .unwrap();
        writer.join().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{env}{fin}"));
    }

    #[test]
    fn a_writer_gone_without_finishing_ends_with_the_end_of_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("never-written.jsonl");
        let log = tmp.path().join("run.log");
        std::fs::write(&log, "a\nb\nerror: suite x.toml: no such model\n").unwrap();
        // A real child that exits at once and is never waited for by std: a zombie, as the
        // run is under `follow` on a target. `kill(pid, 0)` alone would call it alive for
        // ever; `follow` must reap it and end, with its exit code.
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 2"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, l) = (file.clone(), log.clone());
        std::thread::spawn(move || {
            let run = Run::new(pid);
            let mut out = Vec::new();
            follow(
                &f,
                || run.alive(),
                || run.exit_code(),
                Some(&l),
                &mut out,
                std::time::Duration::from_millis(1),
            )
            .unwrap();
            let _ = tx.send(out);
        });
        let out = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("follow ended once its run was gone");
        drop(child);
        let text = String::from_utf8(out).unwrap();
        let ended: StreamLine = serde_json::from_str(text.trim()).unwrap();
        match ended {
            StreamLine::Ended {
                log_tail,
                exit_code,
            } => {
                assert!(log_tail.ends_with("no such model"), "{log_tail}");
                assert_eq!(exit_code, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }
}
