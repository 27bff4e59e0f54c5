//! Remote targets: machines named in `bench-configs/targets.toml`, reached with the system's
//! `ssh` (so keys, agents, `known_hosts`, `~/.ssh/config` aliases, jump hosts and
//! ControlMaster work as the user set them up). `tokbench run SUITE --target NAME…` runs the
//! suite on each target at once, each into the target's own database, and stores every
//! cell here as the target stores it; `tokbench targets` lists them, `targets sync` brings
//! home whatever a dropped connection left behind, `targets install` copies this binary.
//!
//! Nothing is typed into a remote shell unquoted: every path and name goes through
//! [`quote`], so a model path with spaces, quotes, `;` or `$(…)` stays a path. ssh runs with
//! `BatchMode=yes`: it never asks for a password or passphrase, so none is ever seen,
//! stored or logged; a key that needs one must be in an agent.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;
use tokbench_core::ResultStatus;
use tokbench_store::{RunStatus, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::exit::{BadInput, ExitCode};
use crate::remote::{StreamLine, TargetInfo, PROTOCOL};

/// Where `--targets` defaults to.
pub const DEFAULT_TARGETS: &str = "bench-configs/targets.toml";
/// The ssh client and its fixed options; `TOKBENCH_SSH` replaces the program and any
/// options of the user's own (`ssh -F ~/.ssh/bench_config`), as `GIT_SSH_COMMAND` does.
const SSH_ENV: &str = "TOKBENCH_SSH";
/// How long a target may take to answer `remote info` (connection and all).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One `[target.NAME]` of targets.toml, as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Anything `ssh` accepts as a destination: `user@host`, a host, an alias of
    /// `~/.ssh/config`.
    pub ssh: String,
    pub port: Option<u16>,
    /// tokbench's path on the target (default: `tokbench` on its PATH, else
    /// `~/.local/bin/tokbench`, where `targets install` puts it).
    pub tokbench: Option<String>,
    /// Where the target keeps its database, models and suites (default `~/tokbench`).
    pub workdir: Option<String>,
    /// The hardware, as the catalog names it, in place of the target's detection.
    pub hardware: Option<String>,
    /// A private key's path (never the key itself).
    pub identity_file: Option<String>,
    /// ssh's `StrictHostKeyChecking` (`yes`, `accept-new`, `no`); left to the user's ssh
    /// configuration unless given here.
    pub strict_host_key_checking: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    #[serde(default)]
    target: BTreeMap<String, TargetSpec>,
}

/// A target: its name and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub spec: TargetSpec,
}

impl Target {
    fn workdir(&self) -> &str {
        self.spec.workdir.as_deref().unwrap_or("~/tokbench")
    }

    /// The shell words that set `TB` to the target's tokbench and `W` to its workdir.
    fn prelude(&self) -> String {
        let tb = match &self.spec.tokbench {
            Some(p) => quote_path(p),
            None => "\"$(command -v tokbench 2>/dev/null || echo \"$HOME/.local/bin/tokbench\")\""
                .to_string(),
        };
        format!(
            "TB={tb}; W={}; if [ ! -x \"$TB\" ]; then echo \"tokbench-missing: $TB\" >&2; exit 127; fi",
            quote_path(self.workdir())
        )
    }

    /// `ssh`'s argument list to run `command` (one string, for the remote shell) here.
    fn ssh_args(&self, command: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
            .into_iter()
            .map(OsString::from)
            .collect();
        // A dead link is noticed within about 15 s; the run on the target goes on.
        args.extend(
            ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"].map(OsString::from),
        );
        if let Some(p) = self.spec.port {
            args.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(k) = &self.spec.identity_file {
            args.extend(["-i".into(), expand_home(k).into_os_string()]);
            args.extend(["-o", "IdentitiesOnly=yes"].map(OsString::from));
        }
        if let Some(s) = &self.spec.strict_host_key_checking {
            args.extend(["-o".into(), format!("StrictHostKeyChecking={s}").into()]);
        }
        args.extend(["--".into(), self.spec.ssh.clone().into(), command.into()]);
        args
    }

    /// The ssh command for `command` on the target.
    fn ssh(&self, command: &str) -> tokio::process::Command {
        let (program, mut base) = ssh_program();
        base.extend(self.ssh_args(command));
        let mut c = tokio::process::Command::new(program);
        c.args(base).stdin(Stdio::null()).kill_on_drop(true);
        // The death signal follows the thread that spawned the child: the CLI's runtime
        // is current-thread, so that is the main thread, which lives as long as tokbench.
        #[cfg(target_os = "linux")]
        {
            let controller = std::process::id() as libc::pid_t;
            // SAFETY: prctl and getppid are async-signal-safe; prctl only sets a flag on
            // the new process.
            unsafe {
                c.pre_exec(move || {
                    // A controller that dies (even by SIGKILL) takes its ssh connections
                    // with it; the runs they started on the targets go on, detached.
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // It died between the fork and the prctl: no signal will come.
                    if libc::getppid() != controller {
                        return Err(std::io::Error::other("the controller is gone"));
                    }
                    Ok(())
                });
            }
        }
        c
    }
}

/// The ssh program and the options given with it in `TOKBENCH_SSH`.
fn ssh_program() -> (OsString, Vec<OsString>) {
    let words: Vec<String> = std::env::var(SSH_ENV)
        .ok()
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    match words.split_first() {
        Some((p, rest)) => (p.into(), rest.iter().map(OsString::from).collect()),
        None => ("ssh".into(), Vec::new()),
    }
}

/// `~/x` on this machine.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `s` as one word of a POSIX shell, whatever it holds.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path as one shell word, its leading `~/` (or a lone `~`) the remote user's home.
pub fn quote_path(p: &str) -> String {
    if p == "~" {
        "\"$HOME\"".into()
    } else if let Some(rest) = p.strip_prefix("~/") {
        format!("\"$HOME\"/{}", quote(rest))
    } else {
        quote(p)
    }
}

/// Reads a targets file; every mistake names the file, the target and the key.
pub fn load(path: &Path) -> anyhow::Result<Vec<Target>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BadInput(format!(
            "cannot read the targets file {}: {e} (it names machines as [target.NAME] with ssh = \"user@host\"; --targets FILE gives another)",
            path.display()
        ))
    })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Target>> {
    let file: TargetsFile = toml::from_str(text)
        .map_err(|e| BadInput(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
    let catalog = crate::hardware::load_catalog(None)?;
    let mut targets = Vec::new();
    for (name, spec) in file.target {
        let bad = |key: &str, why: String| {
            BadInput(format!("{}: [target.{name}] {key}: {why}", path.display()))
        };
        if name == "all" {
            return Err(bad("", "`all` means every target; name it otherwise".into()).into());
        }
        let fields = [
            ("ssh", Some(&spec.ssh)),
            ("tokbench", spec.tokbench.as_ref()),
            ("workdir", spec.workdir.as_ref()),
            ("hardware", spec.hardware.as_ref()),
            ("identity_file", spec.identity_file.as_ref()),
            (
                "strict_host_key_checking",
                spec.strict_host_key_checking.as_ref(),
            ),
        ];
        for (key, value) in fields {
            let Some(v) = value else { continue };
            if v.contains("PRIVATE KEY") || v.contains("-----BEGIN") {
                return Err(bad(
                    key,
                    "holds key material: targets.toml names hosts and paths only; give the key's path as identity_file, or load it into ssh-agent".into(),
                )
                .into());
            }
            if v.trim().is_empty() || v.chars().any(char::is_control) {
                return Err(
                    bad(key, format!("`{v}` is empty or holds a control character")).into(),
                );
            }
        }
        if spec.ssh.starts_with('-') || spec.ssh.chars().any(char::is_whitespace) {
            return Err(bad(
                "ssh",
                format!(
                    "`{}` is not a destination (user@host, a host, or an ssh_config alias)",
                    spec.ssh
                ),
            )
            .into());
        }
        if let Some(s) = &spec.strict_host_key_checking {
            if !["yes", "accept-new", "no"].contains(&s.as_str()) {
                return Err(bad(
                    "strict_host_key_checking",
                    format!("`{s}` is none of yes, accept-new, no"),
                )
                .into());
            }
        }
        if let Some(h) = &spec.hardware {
            catalog.resolve(h).map_err(|e| {
                bad(
                    "hardware",
                    format!("{e} (`tokbench hardware` lists the catalog)"),
                )
            })?;
        }
        targets.push(Target { name, spec });
    }
    Ok(targets)
}

/// The targets `names` picks (`all`: every one), in the file's order; an unknown name is
/// refused with the names there are.
pub fn select(targets: &[Target], names: &[String], file: &Path) -> anyhow::Result<Vec<Target>> {
    if names.iter().any(|n| n == "all") {
        if targets.is_empty() {
            return Err(BadInput(format!("{} names no targets", file.display())).into());
        }
        return Ok(targets.to_vec());
    }
    let mut picked = Vec::new();
    for n in names {
        let t = targets.iter().find(|t| &t.name == n).ok_or_else(|| {
            let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            BadInput(format!(
                "no target `{n}` in {} (it has: {})",
                file.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        if !picked.contains(t) {
            picked.push(t.clone());
        }
    }
    Ok(picked)
}

/// Why a remote command failed, in one line that names the target and what to do, from
/// ssh's exit status and the last thing it or the remote shell said.
fn failure(t: &Target, status: Option<i32>, stderr: &str) -> String {
    let said = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("")
        .trim_end_matches('.')
        .to_string();
    let dest = &t.spec.ssh;
    let what = if said.contains("tokbench-missing") {
        let path = said.split("tokbench-missing: ").nth(1).unwrap_or("");
        format!(
            "no tokbench at {path}: `tokbench targets install {}` copies this one (same OS and architecture), or install it there and set `tokbench = \"PATH\"`",
            t.name
        )
    } else if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || said.contains("Host key verification failed")
        || said.contains("No ED25519 host key is known")
        || said.contains("host key for")
    {
        format!("the host key of {dest} is not the one known_hosts holds, or is unknown: check it, then add it (`ssh {dest}` once, or ssh-keyscan into known_hosts)")
    } else if said.contains("Permission denied") {
        format!("{dest} refused the key ({said}): add this machine's public key to the target's authorized_keys, or load the key into ssh-agent (tokbench never asks for a passphrase)")
    } else if said.contains("Connection refused")
        || said.contains("timed out")
        || said.contains("Could not resolve")
        || said.contains("No route to host")
        || said.contains("Network is unreachable")
    {
        format!("cannot reach {dest} ({said}): is the machine up and sshd listening?")
    } else if status == Some(255) {
        format!("ssh to {dest} failed: {said}")
    } else if said.is_empty() {
        format!("the command on {dest} exited with {status:?}")
    } else {
        said
    };
    format!("target {}: {what}", t.name)
}

/// Runs `command` on `t`, with `stdin` written to it; its stdout, or a one-line error.
async fn remote_output(
    t: &Target,
    command: &str,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, String> {
    let (stdout, status) = remote_output_kept(t, command, stdin, timeout).await?;
    status.map(|()| stdout)
}

/// [`remote_output`], keeping what the command printed also when it then failed: an error
/// before it ran (ssh not started, no answer in time), else its stdout and whether it
/// succeeded.
async fn remote_output_kept(
    t: &Target,
    command: &str,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<(Vec<u8>, Result<(), String>), String> {
    let mut c = t.ssh(command);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c
        .spawn()
        .map_err(|e| format!("target {}: cannot start ssh: {e}", t.name))?;
    let input = stdin.map(<[u8]>::to_vec);
    let mut pipe_in = child.stdin.take();
    let feed = async move {
        if let (Some(p), Some(bytes)) = (pipe_in.as_mut(), input) {
            let _ = p.write_all(&bytes).await;
        }
        drop(pipe_in);
    };
    let work = async {
        let (_, out) = tokio::join!(feed, child.wait_with_output());
        out
    };
    let out = match timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| {
            format!(
                "target {}: no answer from {} within {} s",
                t.name,
                t.spec.ssh,
                limit.as_secs()
            )
        })?,
        None => work.await,
    }
    .map_err(|e| format!("target {}: ssh: {e}", t.name))?;
    if out.status.success() {
        Ok((out.stdout, Ok(())))
    } else {
        let why = failure(t, out.status.code(), &String::from_utf8_lossy(&out.stderr));
        Ok((out.stdout, Err(why)))
    }
}

/// Asks `t` what it is; refuses a target whose tokbench speaks another protocol or schema,
/// or whose workdir cannot be written.
async fn probe(t: &Target) -> Result<TargetInfo, String> {
    let cmd = format!("{}; exec \"$TB\" remote info --workdir \"$W\"", t.prelude());
    let out = remote_output(t, &cmd, None, Some(PROBE_TIMEOUT)).await?;
    let text = String::from_utf8_lossy(&out);
    // The answer is the last line: a login shell's startup files may print before it.
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let info: TargetInfo = serde_json::from_str(last.trim()).map_err(|_| {
        format!(
            "target {}: its tokbench does not answer `remote info` (an older tokbench?; it said {:?}): `tokbench targets install {}` replaces it with this one",
            t.name,
            last.chars().take(80).collect::<String>(),
            t.name
        )
    })?;
    let ours = crate::remote::schema_version();
    if info.protocol != PROTOCOL || info.schema != ours {
        return Err(format!(
            "target {}: its tokbench {} (schema {}, protocol {}) is not this one's {} (schema {ours}, protocol {PROTOCOL}): `tokbench targets install {}` replaces it{}",
            t.name,
            info.version,
            info.schema,
            info.protocol,
            env!("CARGO_PKG_VERSION"),
            t.name,
            if same_platform(&info) { "" } else { " (or build this version there: its OS or architecture differs)" }
        ));
    }
    if let Some(e) = &info.workdir_error {
        return Err(format!(
            "target {}: its workdir {} cannot be written ({e}): fix its permissions or set `workdir` in the targets file",
            t.name, info.workdir
        ));
    }
    Ok(info)
}

/// Whether `uname -s` and `uname -m` name this binary's platform (uname says `Darwin` and
/// `arm64` where Rust says `macos` and `aarch64`).
fn same_as_uname(os: &str, arch: &str) -> bool {
    let os = match os.to_ascii_lowercase().as_str() {
        "darwin" => "macos".to_string(),
        other => other.to_string(),
    };
    let arch = match arch {
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        other => other,
    };
    os == std::env::consts::OS && arch == std::env::consts::ARCH
}

fn same_platform(info: &TargetInfo) -> bool {
    info.os == std::env::consts::OS && info.arch == std::env::consts::ARCH
}

// ---------------------------------------------------------------------------------------
// `tokbench targets`

/// `tokbench targets`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetsArgs {
    /// The targets file.
    #[arg(long = "targets", value_name = "FILE", default_value = DEFAULT_TARGETS, global = true)]
    pub file: PathBuf,
    #[command(subcommand)]
    pub action: Option<TargetsAction>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TargetsAction {
    /// Bring home every result a target has that this database lacks (after a dropped
    /// connection, or a controller stopped mid-run): the target's database is copied
    /// over SSH and merged, run by run, as `tokbench merge` does, into a file or a
    /// PostgreSQL server.
    Sync {
        /// Targets to sync (default: every one).
        names: Vec<String>,
        #[arg(long, default_value = "tokbench.db", env = "TOKBENCH_DB")]
        db: PathBuf,
    },
    /// Copy this tokbench to a target of the same OS and architecture (to its `tokbench`
    /// path, or ~/.local/bin/tokbench).
    Install { name: String },
}

pub async fn command(args: &TargetsArgs) -> anyhow::Result<ExitCode> {
    let targets = load(&args.file)?;
    match &args.action {
        None => list(&targets).await,
        Some(TargetsAction::Sync { names, db }) => {
            let picked = match names.is_empty() {
                true => targets,
                false => select(&targets, names, &args.file)?,
            };
            sync(&picked, db).await
        }
        Some(TargetsAction::Install { name }) => {
            let t = select(&targets, std::slice::from_ref(name), &args.file)?.remove(0);
            install(&t).await
        }
    }
}

/// One line per target: reachable or why not, its tokbench, engine build and hardware.
async fn list(targets: &[Target]) -> anyhow::Result<ExitCode> {
    let probes = futures_join(targets.iter().map(probe)).await;
    let mut worst = ExitCode::Ok;
    for (t, p) in targets.iter().zip(probes) {
        match p {
            Ok(i) => outln!(
                "{}\t{}\treachable\ttokbench {} (schema {})\t{}\t{} {}\t{}\t{}",
                t.name,
                t.spec.ssh,
                i.version,
                i.schema,
                i.accel,
                i.os,
                i.arch,
                t.spec
                    .hardware
                    .clone()
                    .or(i.hardware)
                    .unwrap_or_else(|| "hardware not in the catalog".into()),
                i.workdir
            )?,
            Err(e) => {
                worst = ExitCode::ToolError;
                outln!("{}\t{}\tunreachable\t{e}", t.name, t.spec.ssh)?;
            }
        }
    }
    Ok(worst)
}

/// Runs every future at once on this task; their outputs in order.
async fn futures_join<F: Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// Where `targets sync` merges what it brings home: a SQLite file or a PostgreSQL server.
enum SyncInto {
    File(Store),
    Server(tokbench_store::PgStore),
}

impl SyncInto {
    async fn open(db: &Path) -> anyhow::Result<SyncInto> {
        match db.to_str().filter(|d| tokbench_store::is_postgres_url(d)) {
            Some(url) => crate::snapshot::open_server(url)
                .await
                .map(SyncInto::Server),
            None => Store::open(db)
                .await
                .map(SyncInto::File)
                .with_context(|| format!("cannot open the results database {}", db.display())),
        }
    }

    async fn merge_from_target(
        &self,
        copy: &Path,
        target: &str,
    ) -> Result<tokbench_store::MergeReport, tokbench_store::StoreError> {
        match self {
            SyncInto::File(s) => s.merge_from_target(copy, Some(target)).await,
            SyncInto::Server(s) => s.merge_sqlite_from_target(copy, target).await,
        }
    }

    async fn close(self) {
        match self {
            SyncInto::File(s) => s.close().await,
            SyncInto::Server(s) => s.close().await,
        }
    }
}

/// `targets sync`: each target's database, copied consistently over SSH, merged here (into
/// a file or a server).
async fn sync(targets: &[Target], db: &Path) -> anyhow::Result<ExitCode> {
    let store = SyncInto::open(db).await?;
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut worst = ExitCode::Ok;
    for (i, t) in targets.iter().enumerate() {
        let t0 = Instant::now();
        let cmd = format!(
            "{}; cd \"$W\" || exit 3; exec \"$TB\" remote snapshot --db tokbench.db",
            t.prelude()
        );
        let bytes = match remote_output(t, &cmd, None, None).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                worst = ExitCode::ToolError;
                continue;
            }
        };
        // Named by position: a target's name may hold any character.
        let copy = tmp.path().join(format!("target-{i}.db"));
        let copied = t0.elapsed();
        let merged = async {
            std::fs::write(&copy, &bytes).context("cannot write its database here")?;
            // Runs that come home only now, never streamed, were measured on this target.
            anyhow::Ok(store.merge_from_target(&copy, &t.name).await?)
        }
        .await;
        let _ = std::fs::remove_file(&copy);
        match merged {
            Ok(r) => eprintln!(
                "target {}: {} runs new, {} extended, {} results added ({} MB copied in {:.2} s, merged in {:.2} s)",
                t.name,
                r.runs_added,
                r.runs_extended,
                r.results_added,
                bytes.len() / 1_000_000,
                copied.as_secs_f64(),
                (t0.elapsed() - copied).as_secs_f64()
            ),
            Err(e) => {
                eprintln!("target {}: cannot merge its database: {e:#}", t.name);
                worst = ExitCode::ToolError;
            }
        }
    }
    store.close().await;
    Ok(worst)
}

/// `targets install`: this binary, to a target that runs it.
async fn install(t: &Target) -> anyhow::Result<ExitCode> {
    let uname = remote_output(t, "uname -s -m", None, Some(PROBE_TIMEOUT))
        .await
        .map_err(anyhow::Error::msg)?;
    let uname = String::from_utf8_lossy(&uname).trim().to_string();
    let (os, arch) = uname.split_once(' ').unwrap_or((&uname, ""));
    let ours_os = std::env::consts::OS;
    let ours_arch = std::env::consts::ARCH;
    if !same_as_uname(os, arch) {
        return Err(BadInput(format!(
            "target {}: it is {os} {arch}, this tokbench is built for {ours_os} {ours_arch}: build tokbench there (`cargo install --path crates/cli` in a checkout of this version) and set `tokbench = \"PATH\"`",
            t.name
        ))
        .into());
    }
    let exe = std::env::current_exe().context("cannot find this tokbench")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    let dest = t
        .spec
        .tokbench
        .as_deref()
        .unwrap_or("~/.local/bin/tokbench");
    let d = quote_path(dest);
    // Written beside the destination and renamed into place: a run using the old binary
    // keeps it, and a cut connection leaves no half a binary behind.
    let cmd = format!(
        "D={d}; mkdir -p \"$(dirname \"$D\")\" && cat > \"$D.part\" && chmod 755 \"$D.part\" && mv -f \"$D.part\" \"$D\""
    );
    remote_output(t, &cmd, Some(&bytes), None)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "target {}: installed tokbench {} at {dest} ({} MB)",
        t.name,
        env!("CARGO_PKG_VERSION"),
        bytes.len() / 1_000_000
    );
    if t.spec.tokbench.is_none() {
        eprintln!("target {}: if `tokbench` on its PATH is another one, set `tokbench = \"{dest}\"` in the targets file", t.name);
    }
    Ok(ExitCode::Ok)
}

// ---------------------------------------------------------------------------------------
// `tokbench run --target`

/// What one target's task tells the writer.
enum Event {
    /// The target answered `remote info`: the host name it reports.
    Probed(String),
    Line(Box<StreamLine>),
    /// The target's run is over: its exit code and, when it failed, why.
    Done(ExitCode, Option<String>),
}

/// Runs `source` (the suite, as `run` resolved it) on each target of `args.targets` at
/// once, each into its own database, storing every cell here as it arrives. Returns the
/// worst exit code and the targets' run UUIDs.
pub async fn run_on_targets(
    args: &crate::run::RunArgs,
    (suite_path, suite_text): &(PathBuf, String),
) -> anyhow::Result<(ExitCode, Vec<String>)> {
    if args.resume.is_some() {
        return Err(BadInput(
            "--resume with --target: resume on the target itself, then `tokbench targets sync`"
                .into(),
        )
        .into());
    }
    let file = args
        .targets_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TARGETS));
    let targets = select(&load(&file)?, &args.targets, &file)?;
    // The suite is checked here before any target is asked: a mistake is one error, not
    // one per target.
    let suite = tokbench_core::Suite::from_toml(suite_text, suite_path)
        .map_err(|e| BadInput(e.to_string()))?;
    let catalog = crate::hardware::load_catalog(None)?;
    let suite_hw = suite
        .hardware
        .as_ref()
        .and_then(|h| catalog.resolve(&h.name).ok())
        .map(|c| c.display_name);
    let mut hardware: BTreeMap<String, Option<String>> = BTreeMap::new();
    for t in &targets {
        let target_hw = t
            .spec
            .hardware
            .as_ref()
            .and_then(|h| catalog.resolve(h).ok())
            .map(|c| c.display_name);
        if let (Some(a), Some(b)) = (&suite_hw, &target_hw) {
            if a != b {
                return Err(BadInput(format!(
                    "target {}: the suite {} says hardware `{a}`, the targets file says `{b}`: keep one",
                    t.name,
                    suite_path.display()
                ))
                .into());
            }
        }
        hardware.insert(
            t.name.clone(),
            args.hardware.clone().or(target_hw).or(suite_hw.clone()),
        );
    }
    let store = Store::open(&args.db)
        .await
        .with_context(|| format!("cannot open the results database {}", args.db.display()))?;
    let invocation = uuid::Uuid::new_v4().to_string();
    eprintln!(
        "tokbench run on {} target{} (invocation {invocation}): suite {}, database {}",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        suite.name,
        args.db.display()
    );
    let (tx, mut rx) = mpsc::channel::<(usize, Event)>(256);
    let mut tasks = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let job = Job {
            target: t.clone(),
            suite_text: suite_text.clone(),
            run_uuid: uuid::Uuid::new_v4().to_string(),
            invocation: invocation.clone(),
            trigger: args.trigger.clone(),
            hardware: hardware.get(&t.name).cloned().flatten(),
            exclusive: args.exclusive,
            telemetry_interval_ms: args.telemetry_interval_ms,
        };
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let (code, why) = job.run(i, &tx).await;
            let _ = tx.send((i, Event::Done(code, why))).await;
        }));
    }
    drop(tx);
    let progress = Progress::new(
        targets.iter().map(|t| t.name.clone()).collect(),
        !args.plain && std::io::stderr().is_terminal(),
    );
    let mut state: Vec<Writer> = targets.iter().map(|_| Writer::default()).collect();
    let mut codes: Vec<Option<ExitCode>> = targets.iter().map(|_| None).collect();
    let mut hosts: BTreeMap<String, usize> = BTreeMap::new();
    while let Some((i, ev)) = rx.recv().await {
        let t = &targets[i];
        match ev {
            Event::Probed(hostname) => {
                if let Some(&other) = hosts.get(&hostname) {
                    progress.note(i, &same_machine(&targets[other].name, &hostname));
                } else {
                    hosts.insert(hostname, i);
                }
            }
            Event::Line(line) => match state[i].take(&store, t, *line).await {
                Ok(Some(said)) => progress.show(i, said),
                Ok(None) => {}
                Err(e) => {
                    // The controller's database refuses: the target keeps measuring and
                    // storing; `targets sync` brings it home once this is fixed.
                    progress.note(
                        i,
                        &format!(
                            "cannot store here: {e:#}; the run goes on on the target, `tokbench targets sync {}` brings its results",
                            t.name
                        ),
                    );
                    codes[i] = Some(ExitCode::ToolError);
                }
            },
            Event::Done(code, why) => {
                let code = match codes[i] {
                    Some(ExitCode::ToolError) => ExitCode::ToolError,
                    _ => code,
                };
                codes[i] = Some(code);
                let w = &state[i];
                if w.uuid.is_none() {
                    // Refused before a run began: the error is the target's last word.
                    match why {
                        Some(why) => progress.fail(i, &why),
                        None => progress.done(i, "failed before its run began"),
                    }
                    continue;
                }
                if let Some(why) = why {
                    progress.say_whole(&why);
                }
                // The target finished, but a line was lost on the way (unreadable, or the
                // controller's store refused it): not done here until synced.
                let missing = w.cells_total.saturating_sub(w.have.len());
                let code = if missing > 0 && matches!(code, ExitCode::Ok | ExitCode::SomeFailed) {
                    progress.note(
                        i,
                        &format!(
                            "{missing} of its {} cells did not come home: `tokbench targets sync {}` brings them",
                            w.cells_total, t.name
                        ),
                    );
                    codes[i] = Some(ExitCode::ToolError);
                    ExitCode::ToolError
                } else {
                    code
                };
                progress.done(
                    i,
                    &format!(
                        "{}: {} of {} cells stored here{}{}",
                        match code {
                            ExitCode::Ok => "done",
                            ExitCode::SomeFailed => "done, some cells failed",
                            ExitCode::Interrupted => "interrupted",
                            _ => "failed",
                        },
                        w.stored,
                        w.cells_total,
                        w.uuid
                            .as_deref()
                            .map(|u| format!(" (run {u})"))
                            .unwrap_or_default(),
                        if w.stored > 0 {
                            format!(
                                ", {:.1} ms each to store",
                                w.store_time.as_secs_f64() * 1e3 / w.stored as f64
                            )
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    progress.clear();
    let integrity = store
        .integrity_check_up_to(tokbench_store::CLOSING_CHECK_MAX_BYTES)
        .await?;
    store.close().await;
    eprintln!(
        "invocation {invocation}: database integrity {integrity}; see `tokbench results --db {}`",
        args.db.display()
    );
    let uuids: Vec<String> = state.iter().filter_map(|w| w.uuid.clone()).collect();
    if let Some(format) = args.output {
        // Each target's run, a table each, as `results --run latest` shows them.
        for uuid in &uuids {
            let sel = tokbench_core::RunSelector::Uuid(uuid.clone());
            match crate::output::print_results(&args.db, &sel, format).await {
                Err(e) if !crate::exit::stdout_closed(&e) => return Err(e),
                _ => {}
            }
        }
    }
    let code = worst(codes.into_iter().map(|c| c.unwrap_or(ExitCode::ToolError)));
    Ok((code, uuids))
}

/// The warning for two targets that report one host name: two runs on one machine share
/// its cores, and llama.cpp's threads spin while they wait, so each slows the other far
/// more than in proportion (measured by scripts/remote-bench.sh on a 2-core machine: two
/// smoke runs at once took 4.5 times as long as one after the other).
fn same_machine(other: &str, hostname: &str) -> String {
    format!(
        "reports the same host name as target {other} ({hostname}): if they are one machine, their runs share its cores and slow each other several times over; set `threads` in the suite to split the cores, or run them one after the other"
    )
}

/// Re-measures `cells` of run `prev_uuid` on the target it ran on (what `tokbench check`
/// does to a suspect), as a new run with `trigger`, stored in `db` as it arrives; returns
/// the new run's UUID. The target measures from its own copy of the run's suite.
pub async fn rerun_on_target(
    db: &Path,
    targets_file: &Path,
    name: &str,
    prev_uuid: &str,
    cells: &std::collections::BTreeSet<usize>,
    trigger: &str,
) -> anyhow::Result<String> {
    let t = select(&load(targets_file)?, &[name.to_string()], targets_file)?.remove(0);
    probe(&t).await.map_err(anyhow::Error::msg)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let list: Vec<String> = cells.iter().map(usize::to_string).collect();
    let cmd = format!(
        "{}; cd \"$W\" || exit 3; \"$TB\" remote rerun --db tokbench.db --run {} --cells {} --trigger {} --run-uuid {}; rc=$?; [ $rc -eq 4 ] && rc=0; exit $rc",
        t.prelude(),
        quote(prev_uuid),
        quote(&list.join(",")),
        quote(trigger),
        quote(&uuid)
    );
    let (stdout, out) = remote_output_kept(&t, &cmd, None, None)
        .await
        .unwrap_or_else(|e| (Vec::new(), Err(e)));
    // Whatever arrived is stored, even when the command then failed.
    let store = Store::open(db)
        .await
        .with_context(|| format!("cannot open the results database {}", db.display()))?;
    let mut w = Writer::default();
    let progress = Progress::new(vec![t.name.clone()], false);
    let mut finished = false;
    let text = String::from_utf8_lossy(&stdout).to_string();
    for l in text.lines() {
        let line: StreamLine = serde_json::from_str(l).with_context(|| {
            format!("target {name}: an unreadable line from its re-measurement")
        })?;
        finished |= matches!(line, StreamLine::Finish { .. });
        if let Some(said) = w.take(&store, &t, line).await? {
            progress.show(0, said);
        }
    }
    store.close().await;
    if let Err(e) = out {
        anyhow::bail!("{e}");
    }
    anyhow::ensure!(
        finished,
        "target {name}: the re-measurement ended without finishing"
    );
    Ok(uuid)
}

/// The worst of several exit codes: an error over an interrupt over failed cells over ok.
pub fn worst(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
    let rank = |c: ExitCode| match c {
        ExitCode::Ok => 0,
        ExitCode::SomeFailed => 1,
        ExitCode::Regression => 2,
        ExitCode::Interrupted => 3,
        ExitCode::BadInput => 4,
        ExitCode::ToolError => 5,
    };
    codes
        .into_iter()
        .max_by_key(|c| rank(*c))
        .unwrap_or(ExitCode::Ok)
}

/// One target's run, as the controller starts it.
struct Job {
    target: Target,
    suite_text: String,
    run_uuid: String,
    invocation: String,
    trigger: String,
    hardware: Option<String>,
    exclusive: bool,
    telemetry_interval_ms: u64,
}

impl Job {
    /// The shell command that starts the run on the target, detached (it goes on if the
    /// connection drops), and follows its stream.
    fn command(&self) -> String {
        let u = &self.run_uuid;
        let mut run = format!(
            "\"$TB\" run \"$S.toml\" --db tokbench.db --plain --trigger {} --run-uuid {} --invocation {} --stream \"$S.jsonl\"",
            quote(&self.trigger),
            quote(u),
            quote(&self.invocation)
        );
        if let Some(h) = &self.hardware {
            run.push_str(&format!(" --hardware {}", quote(h)));
        }
        if self.exclusive {
            run.push_str(" --exclusive");
        }
        run.push_str(&format!(
            " --telemetry-interval-ms {}",
            self.telemetry_interval_ms
        ));
        // setsid where there is one (Linux): the run leaves the connection's session.
        format!(
            "{}; mkdir -p \"$W\" && cd \"$W\" || exit 3; S=.tokbench-run-{u}; cat > \"$S.toml\" || exit 3; \
             D=$(command -v setsid || true); $D nohup {run} </dev/null >\"$S.log\" 2>&1 & \
             exec \"$TB\" remote follow \"$S.jsonl\" --pid $! --log \"$S.log\"",
            self.target.prelude()
        )
    }

    async fn run(&self, i: usize, tx: &mpsc::Sender<(usize, Event)>) -> (ExitCode, Option<String>) {
        let t = &self.target;
        match probe(t).await {
            Ok(info) => {
                let _ = tx.send((i, Event::Probed(info.hostname))).await;
            }
            Err(e) => return (ExitCode::ToolError, Some(e)),
        }
        let mut c = t.ssh(&self.command());
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match c.spawn() {
            Ok(c) => c,
            Err(e) => {
                return (
                    ExitCode::ToolError,
                    Some(format!("target {}: cannot start ssh: {e}", t.name)),
                )
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            if let Err(e) = stdin.write_all(self.suite_text.as_bytes()).await {
                return (
                    ExitCode::ToolError,
                    Some(format!("target {}: cannot send the suite: {e}", t.name)),
                );
            }
        }
        let mut stderr = child.stderr.take().expect("piped");
        let errs = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut finish: Option<String> = None;
        let mut ended: Option<(String, Option<i32>)> = None;
        let mut bad_line: Option<String> = None;
        while let Ok(Some(l)) = lines.next_line().await {
            match serde_json::from_str::<StreamLine>(&l) {
                Ok(StreamLine::Ended {
                    log_tail,
                    exit_code,
                }) => ended = Some((log_tail, exit_code)),
                Ok(line) => {
                    if let StreamLine::Finish { status, .. } = &line {
                        finish = Some(status.clone());
                    }
                    let _ = tx.send((i, Event::Line(Box::new(line)))).await;
                }
                Err(e) => {
                    bad_line = Some(format!("{e}: {}", l.chars().take(120).collect::<String>()))
                }
            }
        }
        let status = child.wait().await.ok();
        let stderr = errs.await.unwrap_or_default();
        match (finish.as_deref(), ended) {
            (Some("ok"), _) => (ExitCode::Ok, None),
            (Some("failed"), _) => (ExitCode::SomeFailed, None),
            (Some(_), _) => (ExitCode::Interrupted, Some(format!(
                "target {}: the run was interrupted; resume it there with `tokbench run --resume {} --db tokbench.db` in {}, then `tokbench targets sync {}`",
                t.name, self.run_uuid, t.workdir(), t.name
            ))),
            (None, Some((log, exit_code))) => {
                let why = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no log").to_string();
                // The run's own exit code where `follow` saw it (2: the suite or a model
                // was refused); else a guess from its last words.
                let code = match exit_code {
                    Some(2) => ExitCode::BadInput,
                    Some(_) => ExitCode::ToolError,
                    None if why.contains("error:") => ExitCode::BadInput,
                    None => ExitCode::ToolError,
                };
                (code, Some(format!("target {}: the run ended without finishing: {}", t.name, why.trim())))
            }
            (None, None) => {
                let ssh_said = failure(t, status.and_then(|s| s.code()), &stderr);
                (ExitCode::ToolError, Some(format!(
                    "{ssh_said}{}; the run goes on on the target: `tokbench targets sync {}` brings its results home",
                    bad_line.map(|b| format!(" (an unreadable line: {b})")).unwrap_or_default(),
                    t.name
                )))
            }
        }
    }
}

/// What a stored stream line has to say to the person watching.
enum Said {
    /// The target's run began (or was found again): `done` of its `total` cells are here.
    Run {
        note: String,
        done: usize,
        total: usize,
    },
    /// A cell was stored here: `done` of `total`, with its figure and status.
    Cell {
        done: usize,
        total: usize,
        text: String,
    },
}

/// Progress of a run on several targets. On a terminal, one live line per target (its
/// cells done, the time, the last cell's figure), with what is worth keeping (a run
/// began, an error) printed above them; elsewhere (`--plain`, a pipe, CI's log) a line
/// per event, each starting with `[target]`, so a log can be grepped by target.
struct Progress {
    names: Vec<String>,
    live: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
}

impl Progress {
    fn new(names: Vec<String>, live: bool) -> Progress {
        let width = names.iter().map(|n| n.len() + 2).max().unwrap_or(0);
        let live = live.then(|| {
            let multi = indicatif::MultiProgress::new();
            let bars = names
                .iter()
                .map(|n| {
                    let b = multi.add(indicatif::ProgressBar::new(0));
                    b.set_style(style("{prefix} {spinner} {wide_msg}"));
                    b.set_prefix(format!("{:<width$}", format!("[{n}]")));
                    b.set_message("connecting");
                    b.enable_steady_tick(Duration::from_millis(200));
                    b
                })
                .collect();
            (multi, bars)
        });
        Progress { names, live }
    }

    fn show(&self, i: usize, said: Said) {
        match said {
            Said::Run { note, done, total } => {
                self.note(i, &note);
                if let Some((_, bars)) = &self.live {
                    let b = &bars[i];
                    b.set_style(style(
                        "{prefix} {bar:24} {pos}/{len} cells [{elapsed_precise}] {wide_msg}",
                    ));
                    b.set_length(total as u64);
                    b.set_position(done as u64);
                    b.set_message("");
                }
            }
            Said::Cell { done, total, text } => match &self.live {
                Some((_, bars)) => {
                    bars[i].set_position(done as u64);
                    bars[i].set_message(text);
                }
                None => eprintln!("[{}] [{done}/{total}] {text}", self.names[i]),
            },
        }
    }

    /// A line about target `i` worth keeping in the scrollback.
    fn note(&self, i: usize, text: &str) {
        self.say_whole(&format!("[{}] {text}", self.names[i]));
    }

    /// A line that names its target itself (an error from ssh or the target).
    fn say_whole(&self, line: &str) {
        match &self.live {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Target `i`'s last word, `why` it failed before its run began (it names the target).
    fn fail(&self, i: usize, why: &str) {
        self.end(i, why.to_string());
    }

    /// Target `i`'s last word.
    fn done(&self, i: usize, text: &str) {
        self.end(i, format!("[{}] {text}", self.names[i]));
    }

    /// On a terminal the target's live line gives way to its last word, printed whole
    /// (a live line is cut at the terminal's width; this one wraps).
    fn end(&self, i: usize, line: String) {
        match &self.live {
            Some((multi, bars)) => {
                bars[i].finish_and_clear();
                if bars.iter().all(|b| b.is_finished()) {
                    // No live line left: indicatif would leave the cursor after this one.
                    let _ = multi.clear();
                    eprintln!("{line}");
                } else {
                    let _ = multi.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
    }

    /// Takes the live lines off the screen, before the run's closing lines.
    fn clear(&self) {
        if let Some((multi, _)) = &self.live {
            let _ = multi.clear();
        }
    }
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template).expect("valid template")
}

/// What the controller knows of one target's run as its lines arrive.
#[derive(Default)]
struct Writer {
    run: Option<tokbench_store::RunId>,
    uuid: Option<String>,
    cells_total: usize,
    /// Cells already here (a resumed stream, or a sync before).
    have: std::collections::BTreeSet<usize>,
    stored: usize,
    /// Time spent storing streamed cells here: the controller's own cost per cell.
    store_time: std::time::Duration,
    /// Builds and models already found or recorded here, by value: a run names a few,
    /// each cell one of them.
    builds: BTreeMap<String, tokbench_store::BuildId>,
    models: BTreeMap<String, tokbench_store::ModelId>,
}

impl Writer {
    /// Stores what `line` carries; returns what the person watching should hear of it.
    async fn take(
        &mut self,
        store: &Store,
        t: &Target,
        line: StreamLine,
    ) -> anyhow::Result<Option<Said>> {
        match line {
            StreamLine::Run {
                protocol,
                run,
                invocation,
                host,
            } => {
                anyhow::ensure!(
                    protocol == PROTOCOL,
                    "the target speaks protocol {protocol}, this tokbench {PROTOCOL}"
                );
                let id = match store.run_by_uuid(&run.uuid).await? {
                    Some(prev) => prev.id,
                    None => store.begin_run(&run.new_run(), &host).await?,
                };
                store
                    .set_run_origin(id, invocation.as_deref(), Some(&t.name))
                    .await?;
                self.have = store.stored_cells(id).await?.into_iter().collect();
                self.run = Some(id);
                self.uuid = Some(run.uuid.clone());
                self.cells_total = run.cells_total;
                return Ok(Some(Said::Run {
                    note: format!(
                        "run {} on {} ({}): {} cells{}",
                        run.uuid,
                        host.hostname,
                        run.hardware
                            .as_deref()
                            .unwrap_or("hardware not in the catalog"),
                        run.cells_total,
                        if self.have.is_empty() {
                            String::new()
                        } else {
                            format!(", {} already here", self.have.len())
                        }
                    ),
                    done: self.have.len(),
                    total: run.cells_total,
                }));
            }
            StreamLine::Environment { json } => {
                if let Some(id) = self.run {
                    store.set_run_environment(id, &json).await?;
                }
            }
            StreamLine::Cell {
                build,
                model,
                model_name,
                repetitions_expected,
                results,
            } => {
                let id = self.run.context("a cell came before its run")?;
                let Some(first) = results.first() else {
                    return Ok(None);
                };
                if self.have.contains(&first.cell_index) {
                    return Ok(None);
                }
                let t0 = std::time::Instant::now();
                let key = format!("{build:?}");
                let build_id = match self.builds.get(&key) {
                    Some(b) => *b,
                    None => {
                        let b = store.backend_build(&build).await?;
                        self.builds.insert(key, b);
                        b
                    }
                };
                let model_id = match &model {
                    Some(m) => {
                        let key = format!("{m:?}");
                        match self.models.get(&key) {
                            Some(id) => Some(*id),
                            None => {
                                let id = store.model(m).await?;
                                self.models.insert(key, id);
                                Some(id)
                            }
                        }
                    }
                    None => None,
                };
                let rows: Vec<&tokbench_core::CellResult> = results.iter().collect();
                if let Err(e) = store
                    .insert_results(
                        id,
                        build_id,
                        model_id,
                        &model_name,
                        repetitions_expected,
                        &rows,
                    )
                    .await
                {
                    // A `targets sync` while the run streams may have stored this cell
                    // since the run began: then it is here, once, and that is no error.
                    self.have = store.stored_cells(id).await?.into_iter().collect();
                    if self.have.contains(&first.cell_index) {
                        return Ok(None);
                    }
                    return Err(e.into());
                }
                self.have.insert(first.cell_index);
                self.stored += 1;
                self.store_time += t0.elapsed();
                let s = first.summary();
                let figure = match (first.test.n_gen > 0, s.decode_tps, s.prefill_tps) {
                    (true, Some(v), _) | (false, _, Some(v)) => format!("{v:.2} t/s"),
                    _ => String::new(),
                };
                let status = match (&first.error, first.status) {
                    (_, ResultStatus::Ok) => "ok".to_string(),
                    (Some(e), s) => format!("{s}: {e}"),
                    (None, s) => s.to_string(),
                };
                return Ok(Some(Said::Cell {
                    done: self.have.len(),
                    total: self.cells_total,
                    text: format!(
                        "{model_name} {} ({}): {figure} {status}",
                        first.test.label(),
                        build.name
                    ),
                }));
            }
            StreamLine::Finish {
                status,
                finished_at,
            } => {
                if let Some(id) = self.run {
                    let status: RunStatus = status.parse().map_err(anyhow::Error::msg)?;
                    store.finish_run(id, status, &finished_at).await?;
                }
            }
            StreamLine::Ended { .. } => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_string_stays_one_word_of_the_remote_shell() {
        // Run through a real sh: each quoted word comes back as it was, never run.
        for s in [
            "plain",
            "with space",
            "it's",
            "a;rm -rf /tmp/nothing",
            "$(touch /tmp/tokbench-pwned)",
            "`id`",
            "back\\slash \"dq\" 'sq'",
            "new\nline",
            "*",
            "-n",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
        assert!(!Path::new("/tmp/tokbench-pwned").exists());
        // A path under the remote home keeps the home unquoted and the rest quoted.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' {}",
                quote_path("~/models/a b;$(x).gguf")
            ))
            .env("HOME", "/home/u")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/home/u/models/a b;$(x).gguf"
        );
    }

    fn parsed(text: &str) -> Result<Vec<Target>, String> {
        parse(text, Path::new("targets.toml")).map_err(|e| e.to_string())
    }

    /// The words ssh is given to run `true` on `t`.
    fn args_of(t: &Target) -> Vec<String> {
        t.ssh_args("true")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_example_targets_file_is_valid() {
        let t = parsed(include_str!("../../../bench-configs/targets.example.toml")).unwrap();
        let names: Vec<_> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["box-4090", "mac", "tower-3090"]);
        assert_eq!(t[1].spec.port, Some(2222));
        let args = args_of(&t[1]);
        assert!(args.contains(&"IdentitiesOnly=yes".to_string()), "{args:?}");
    }

    #[test]
    fn a_targets_file_is_read_and_each_mistake_is_named() {
        let t = parsed(
            r#"
            [target.tower-3090]
            ssh = "bench@10.0.0.5"
            port = 2222
            workdir = "~/tb"
            hardware = "GeForce RTX 3090"

            [target.mac]
            ssh = "mac-studio"
            "#,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].name, "tower-3090");
        assert_eq!(t[1].spec.port, Some(2222));
        let args = args_of(&t[1]);
        assert!(args.contains(&"BatchMode=yes".to_string()), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-p", "2222"]), "{args:?}");
        assert!(
            !args.iter().any(|a| a.contains("StrictHostKeyChecking")),
            "{args:?}"
        );
        assert_eq!(&args[args.len() - 3..], ["--", "bench@10.0.0.5", "true"]);

        let e = parsed("[target.a]\nssh = \"h\"\npassword = \"x\"\n").unwrap_err();
        assert!(e.contains("targets.toml") && e.contains("password"), "{e}");
        let e = parsed(
            "[target.a]\nssh = \"h\"\nidentity_file = \"-----BEGIN OPENSSH PRIVATE KEY-----\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("[target.a] identity_file") && e.contains("key material"),
            "{e}"
        );
        let e = parsed("[target.a]\nssh = \"-oProxyCommand=x\"\n").unwrap_err();
        assert!(e.contains("[target.a] ssh"), "{e}");
        let e = parsed("[target.a]\nssh = \"h\"\nhardware = \"GeForce RTX 9999\"\n").unwrap_err();
        assert!(
            e.contains("[target.a] hardware") && e.contains("RTX 9999"),
            "{e}"
        );
        let e =
            parsed("[target.a]\nssh = \"h\"\nstrict_host_key_checking = \"maybe\"\n").unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        let e = parsed("[target.a]\nport = 22\n").unwrap_err();
        assert!(e.contains("ssh"), "{e}");

        let all = parsed("[target.a]\nssh = \"h\"\n[target.b]\nssh = \"i\"\n").unwrap();
        let file = Path::new("targets.toml");
        assert_eq!(select(&all, &["all".into()], file).unwrap().len(), 2);
        let e = select(&all, &["c".into()], file).unwrap_err().to_string();
        assert!(e.contains("no target `c`") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn ssh_failures_read_as_one_line_naming_the_target_and_what_to_do() {
        let t = parsed("[target.box]\nssh = \"u@h\"\n").unwrap().remove(0);
        let cases = [
            ("u@h: Permission denied (publickey).", "authorized_keys"),
            ("Host key verification failed.", "known_hosts"),
            (
                "ssh: connect to host h port 22: Connection refused",
                "cannot reach u@h",
            ),
            (
                "tokbench-missing: /home/u/.local/bin/tokbench",
                "targets install box",
            ),
        ];
        for (said, hint) in cases {
            let line = failure(&t, Some(255), said);
            assert!(
                line.starts_with("target box: ") && line.contains(hint),
                "{line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn uname_names_this_platform_in_its_own_words() {
        let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
        let uname_os = match os {
            "macos" => "Darwin",
            "linux" => "Linux",
            other => other,
        };
        assert!(same_as_uname(uname_os, arch));
        assert!(!same_as_uname("SunOS", arch));
        assert!(!same_as_uname(uname_os, "mips"));
        // A Mac answers Darwin arm64: the same platform as a macOS aarch64 build.
        assert_eq!(
            same_as_uname("Darwin", "arm64"),
            os == "macos" && arch == "aarch64"
        );
    }

    #[test]
    fn the_worst_exit_code_wins() {
        assert_eq!(
            worst([ExitCode::Ok, ExitCode::SomeFailed]),
            ExitCode::SomeFailed
        );
        assert_eq!(
            worst([ExitCode::ToolError, ExitCode::Ok]),
            ExitCode::ToolError
        );
        assert_eq!(worst([]), ExitCode::Ok);
    }
}
