//! `tokbench backends`: finds each backend (where, which version), and builds llama.cpp's
//! `llama-bench` and `llama-server` from the llama.cpp source cargo vendors for the engine
//! (the `llama-cpp-sys-2` crate), with the tool sources in `third_party/llama-tools` laid
//! over it, into a cache directory keyed by everything that goes into the build. A built
//! cache is reused; a user's own llama.cpp build is used when a suite, an environment
//! variable or `PATH` names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use tokbench_core::{BackendBuild, BackendKind, Suite};
use tokbench_runner::backend::BackendTarget;

use crate::exit::ExitCode;
use crate::output::table;
use crate::Format;

/// The `llama-cpp-sys-2` release whose vendored llama.cpp the tools build against (the
/// workspace pins it; a test checks the two agree).
pub const LLAMA_SYS_VERSION: &str = "0.1.161";

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/llama_tools.rs"));
}

/// Accelerator the tools are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Cpu,
    Cuda,
    Metal,
    Vulkan,
}

impl Accel {
    fn name(self) -> &'static str {
        match self {
            Accel::Cpu => "cpu",
            Accel::Cuda => "cuda",
            Accel::Metal => "metal",
            Accel::Vulkan => "vulkan",
        }
    }
}

/// `$TOKBENCH_TOOLS_DIR`, else `~/.cache/tokbench/llama-tools` (or under `$TOKBENCH_CACHE`
/// / `$XDG_CACHE_HOME`).
pub fn tools_root() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("TOKBENCH_TOOLS_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let base = match std::env::var_os("TOKBENCH_CACHE").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("tokbench"),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache")
                .join("tokbench"),
        },
    };
    Ok(base.join("llama-tools"))
}

/// A key over what decides the build: the tool sources, the library's crate version, the
/// accelerator and the extra CMake flags.
fn build_key(accel: Accel, cmake_flags: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(LLAMA_SYS_VERSION.as_bytes());
    for (path, bytes) in embedded::FILES {
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.update(accel.name().as_bytes());
    for f in cmake_flags {
        h.update(f.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..12].to_string()
}

/// The vendored llama.cpp source: `--llama-src`, `$TOKBENCH_LLAMA_SRC`, or the crate in
/// cargo's registry.
pub fn find_llama_src(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TOKBENCH_LLAMA_SRC").map(PathBuf::from))
    {
        if !p.join("CMakeLists.txt").is_file() || !p.join("include/llama.h").is_file() {
            bail!(
                "{} is not a llama.cpp source tree (no CMakeLists.txt and include/llama.h)",
                p.display()
            );
        }
        return Ok(p);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let registry = cargo_home.join("registry").join("src");
    let want = format!("llama-cpp-sys-2-{LLAMA_SYS_VERSION}");
    if let Ok(indexes) = std::fs::read_dir(&registry) {
        for idx in indexes.flatten() {
            let p = idx.path().join(&want).join("llama.cpp");
            if p.join("include/llama.h").is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "the llama.cpp source vendored by {want} is not in {} (build tokbench once with cargo, or pass --llama-src DIR)",
        registry.display()
    )
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e.file_type()?;
        if ty.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else if ty.is_file() {
            std::fs::copy(&src, &dst)?;
            n += 1;
        }
    }
    Ok(n)
}

/// What a tools build produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ToolsBuild {
    pub key: String,
    pub accel: String,
    pub llama_sys_version: String,
    pub cmake_flags: Vec<String>,
    pub bin_dir: PathBuf,
    pub built_at: String,
    pub build_seconds: f64,
}

impl ToolsBuild {
    /// Built from the tool sources and crate version of this tokbench.
    fn current(&self) -> bool {
        let accel = match self.accel.as_str() {
            "cuda" => Accel::Cuda,
            "metal" => Accel::Metal,
            "vulkan" => Accel::Vulkan,
            _ => Accel::Cpu,
        };
        build_key(accel, &self.cmake_flags) == self.key
    }
}

#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub accel: Accel,
    /// CUDA architectures (`90` for H100/H200); default: CMake's (native where supported).
    pub cuda_arch: Option<String>,
    pub llama_src: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub force: bool,
    pub cmake_flags: Vec<String>,
}

/// Builds (or finds built) llama-bench and llama-server. `say` gets progress lines.
pub fn build_tools(args: &BuildArgs, say: &mut dyn FnMut(&str)) -> anyhow::Result<ToolsBuild> {
    let mut flags = args.cmake_flags.clone();
    match args.accel {
        Accel::Cpu => {}
        Accel::Cuda => {
            flags.push("-DGGML_CUDA=ON".into());
            if let Some(a) = &args.cuda_arch {
                flags.push(format!("-DCMAKE_CUDA_ARCHITECTURES={a}"));
            }
        }
        Accel::Metal => flags.push("-DGGML_METAL=ON".into()),
        Accel::Vulkan => flags.push("-DGGML_VULKAN=ON".into()),
    }
    let key = build_key(args.accel, &flags);
    let dir = tools_root()?.join(format!("{}-{key}", args.accel.name()));
    let stamp = dir.join("build.json");
    if !args.force {
        if let Ok(text) = std::fs::read_to_string(&stamp) {
            if let Ok(b) = serde_json::from_str::<ToolsBuild>(&text) {
                if b.bin_dir.join("llama-bench").is_file()
                    && b.bin_dir.join("llama-server").is_file()
                {
                    say(&format!(
                        "llama.cpp tools already built: {}",
                        b.bin_dir.display()
                    ));
                    return Ok(b);
                }
            }
        }
    }
    let cmake = which("cmake").context(
        "cmake is not installed (Debian/Ubuntu: apt-get install -y cmake; macOS: brew install cmake)",
    )?;
    let src = find_llama_src(args.llama_src.as_deref())?;
    let started = Instant::now();
    let tree = dir.join("src");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).with_context(|| format!("remove {}", tree.display()))?;
    }
    say(&format!("copying llama.cpp from {} …", src.display()));
    copy_tree(&src, &tree)
        .with_context(|| format!("copy {} to {}", src.display(), tree.display()))?;
    for (path, bytes) in embedded::FILES {
        let to = tree.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&to, bytes).with_context(|| format!("write {}", to.display()))?;
    }
    let build = dir.join("build");
    let mut configure = Command::new(&cmake);
    configure
        .arg("-S")
        .arg(&tree)
        .arg("-B")
        .arg(&build)
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=ON",
            "-DLLAMA_BUILD_TOOLS=ON",
            "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_APP=OFF",
            "-DLLAMA_BUILD_UI=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DGGML_NATIVE=ON",
        ])
        .args(&flags);
    say(&format!("configuring ({}) …", args.accel.name()));
    if let Err(e) = run_logged(&mut configure, &dir.join("configure.log")) {
        let _ = std::fs::remove_dir_all(&tree);
        return Err(e);
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let mut make = Command::new(&cmake);
    make.arg("--build")
        .arg(&build)
        .args([
            "--config",
            "Release",
            "--target",
            "llama-bench",
            "llama-server",
            "-j",
        ])
        .arg(jobs.to_string());
    say(&format!(
        "building llama-bench and llama-server with {jobs} jobs (minutes) …"
    ));
    if let Err(e) = run_logged(&mut make, &dir.join("build.log")) {
        let _ = std::fs::remove_dir_all(&tree);
        return Err(e);
    }
    let bin_dir = build.join("bin");
    for t in ["llama-bench", "llama-server"] {
        if !bin_dir.join(t).is_file() {
            bail!(
                "the build finished without {} (see {})",
                bin_dir.join(t).display(),
                dir.join("build.log").display()
            );
        }
    }
    let b = ToolsBuild {
        key,
        accel: args.accel.name().into(),
        llama_sys_version: LLAMA_SYS_VERSION.into(),
        cmake_flags: flags,
        bin_dir,
        built_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        build_seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(&stamp, serde_json::to_string_pretty(&b)?)?;
    // The source copy is only needed to build.
    let _ = std::fs::remove_dir_all(&tree);
    say(&format!(
        "built in {:.0} s: {}",
        b.build_seconds,
        b.bin_dir.display()
    ));
    Ok(b)
}

fn run_logged(cmd: &mut Command, log: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{:?} failed ({status}); last lines of {}:\n{}",
            cmd.get_program(),
            log.display(),
            tail.join("\n")
        );
    }
    Ok(())
}

/// `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Every tools build in the cache, newest first.
fn cached_builds() -> Vec<ToolsBuild> {
    let Ok(root) = tools_root() else {
        return Vec::new();
    };
    let mut out: Vec<ToolsBuild> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("build.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    // Builds of the current sources first; among them an accelerator's over the CPU's
    // (whoever built for CUDA wants CUDA); then the newest.
    out.sort_by(|a, b| {
        (b.current(), b.accel != "cpu", &b.built_at).cmp(&(
            a.current(),
            a.accel != "cpu",
            &a.built_at,
        ))
    });
    out
}

/// Where a tool was found, and how.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub how: String,
    pub build: Option<ToolsBuild>,
}

/// Finds llama.cpp tool `name`: the suite's `binary`, `$env_var`, tokbench's cached build,
/// `PATH`.
pub fn find_tool(name: &str, configured: Option<&Path>, env_var: &str) -> Result<Found, String> {
    if let Some(p) = configured {
        let path = if p.components().count() == 1 && !p.is_file() {
            which(&p.display().to_string()).unwrap_or_else(|| p.to_path_buf())
        } else {
            p.to_path_buf()
        };
        return if path.is_file() {
            Ok(Found {
                path,
                how: "suite".into(),
                build: None,
            })
        } else {
            Err(format!(
                "{name}: the suite's binary {} does not exist",
                p.display()
            ))
        };
    }
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(Found {
                path,
                how: format!("${env_var}"),
                build: None,
            })
        } else {
            Err(format!(
                "{name}: ${env_var} names {}, which does not exist",
                path.display()
            ))
        };
    }
    for b in cached_builds() {
        let p = b.bin_dir.join(name);
        if p.is_file() {
            let how = if b.current() {
                format!("tokbench build, {}", b.accel)
            } else {
                format!(
                    "tokbench build, {}, from older sources: rebuild with `tokbench backends build`",
                    b.accel
                )
            };
            return Ok(Found {
                path: p,
                how,
                build: Some(b),
            });
        }
    }
    if let Some(p) = which(name) {
        return Ok(Found {
            path: p,
            how: "PATH".into(),
            build: None,
        });
    }
    Err(format!(
        "{name} is not installed: run `tokbench backends build` (builds it from the vendored llama.cpp), set ${env_var}, or name `binary` in the suite's [backend.{name}]"
    ))
}

/// `(version, commit)` from `prog --version` (llama.cpp prints `version: X (build N,
/// commit C)` or `version: N (C)`), bounded to 10 s.
pub fn probe_version(prog: &Path) -> Option<(String, Option<String>)> {
    let mut child = Command::new(prog)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_version(&text)
}

/// Reads llama.cpp's `--version` text.
pub fn parse_version(text: &str) -> Option<(String, Option<String>)> {
    // Ollama: `ollama version is 0.5.7`.
    if let Some(v) = text
        .lines()
        .find_map(|l| l.trim().split_once("version is ").map(|(_, v)| v.trim()))
    {
        return Some((v.to_string(), None));
    }
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version:"))?
        .trim();
    let (version, rest) = match line.split_once(" (") {
        Some((v, r)) => (v.trim(), r.trim_end_matches(')')),
        None => (line, ""),
    };
    let commit = rest
        .split(',')
        .map(str::trim)
        .find_map(|p| {
            p.strip_prefix("commit ")
                .or(if p.contains(' ') { None } else { Some(p) })
        })
        .filter(|c| !c.is_empty() && *c != "unknown")
        .map(str::to_string);
    Some((version.to_string(), commit))
}

fn tool_build(kind: BackendKind, found: &Found) -> BackendBuild {
    let (version, commit) = probe_version(&found.path).unwrap_or_else(|| ("unknown".into(), None));
    let (version, commit, accel) = match &found.build {
        Some(b) => (
            format!("{version} (llama-cpp-sys-2 {})", b.llama_sys_version),
            commit.or_else(|| Some(format!("tokbench-tools-{}", b.key))),
            b.accel.clone(),
        ),
        None => (version, commit, "unknown".into()),
    };
    // The flags identify the build's configuration (a series), not where it lies: a rebuilt
    // or upgraded llama.cpp continues the same series, its version on the x-axis.
    BackendBuild {
        name: kind.name().into(),
        version,
        commit,
        accel,
        flags: found
            .build
            .as_ref()
            .map(|b| b.cmake_flags.join(" "))
            .unwrap_or_default(),
    }
}

/// A running Ollama's version (`GET /api/version`), bounded to 5 s.
async fn ollama_version(base: &str) -> Option<String> {
    let http = tokbench_runner::serve::http_client();
    let text =
        tokbench_runner::serve::get_text(&http, &format!("{base}/api/version"), None).await?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("version")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// An endpoint as stored and printed: without credentials in its user part or a query
/// string (`http://user:key@h/v1?api_key=…` → `http://h/v1`).
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Resolves every non-engine backend a suite uses.
pub async fn resolve_targets(suite: &Suite) -> BTreeMap<BackendKind, BackendTarget> {
    let mut out = BTreeMap::new();
    for &kind in &suite.backends {
        let settings = suite.settings(kind);
        let target = match kind {
            BackendKind::Engine => continue,
            BackendKind::LlamaBench | BackendKind::LlamaServer
                if kind == BackendKind::LlamaBench || settings.base_url.is_none() =>
            {
                let env = if kind == BackendKind::LlamaBench {
                    "TOKBENCH_LLAMA_BENCH"
                } else {
                    "TOKBENCH_LLAMA_SERVER"
                };
                match find_tool(kind.name(), settings.binary.as_deref(), env) {
                    Ok(f) => BackendTarget {
                        program: Some(f.path.clone()),
                        build: tool_build(kind, &f),
                        unavailable: None,
                    },
                    Err(reason) => BackendTarget::unavailable(kind, reason),
                }
            }
            BackendKind::Vllm | BackendKind::Ollama if settings.base_url.is_none() => {
                let (env, found_version) = if kind == BackendKind::Vllm {
                    ("TOKBENCH_VLLM", None)
                } else {
                    ("TOKBENCH_OLLAMA", Some(()))
                };
                match find_tool(kind.name(), settings.binary.as_deref(), env) {
                    Ok(f) => BackendTarget::opaque(
                        kind,
                        Some(f.path.clone()),
                        found_version.and_then(|()| probe_version(&f.path).map(|(v, _)| v)),
                        String::new(),
                    ),
                    Err(e) if kind == BackendKind::Ollama => BackendTarget::unavailable(
                        kind,
                        format!("{e}; or attach to a running one: [backend.ollama] base_url"),
                    ),
                    Err(e) => BackendTarget::unavailable(kind, e),
                }
            }
            // Attached: openai always, ollama (and vLLM) with a base_url.
            _ => {
                let base = settings.base_url.as_deref().unwrap_or_default();
                let version = match kind {
                    BackendKind::Ollama => ollama_version(base).await,
                    _ => None,
                };
                BackendTarget::opaque(kind, None, version, redact_url(base))
            }
        };
        out.insert(kind, target);
    }
    out
}

/// `tokbench backends`: each backend, found or not, with its version and where.
pub fn list_command(format: Format) -> anyhow::Result<ExitCode> {
    let mut rows: Vec<Vec<String>> = vec![vec![
        "engine".into(),
        "yes".into(),
        format!(
            "tokbench {} (llama-cpp-sys-2 {LLAMA_SYS_VERSION})",
            env!("CARGO_PKG_VERSION")
        ),
        "built in".into(),
    ]];
    for (name, env) in [
        ("llama-bench", "TOKBENCH_LLAMA_BENCH"),
        ("llama-server", "TOKBENCH_LLAMA_SERVER"),
    ] {
        rows.push(match find_tool(name, None, env) {
            Ok(f) => {
                let kind: BackendKind = name.parse().expect("known name");
                let b = tool_build(kind, &f);
                vec![
                    name.into(),
                    "yes".into(),
                    format!(
                        "{}{}",
                        b.version,
                        b.commit.map(|c| format!(" {c}")).unwrap_or_default()
                    ),
                    format!("{} ({})", f.path.display(), f.how),
                ]
            }
            Err(e) => vec![name.into(), "no".into(), "—".into(), e],
        });
    }
    rows.push(match which("vllm") {
        Some(p) => vec![
            "vllm".into(),
            "yes".into(),
            "—".into(),
            p.display().to_string(),
        ],
        None => vec![
            "vllm".into(),
            "no".into(),
            "—".into(),
            "vllm is not on PATH".into(),
        ],
    });
    rows.push(vec![
        "openai".into(),
        "attach".into(),
        "—".into(),
        "any running endpoint: [backend.openai] base_url in a suite".into(),
    ]);
    rows.push(match which("ollama") {
        Some(p) => vec![
            "ollama".into(),
            "yes".into(),
            probe_version(&p).map(|v| v.0).unwrap_or_else(|| "—".into()),
            p.display().to_string(),
        ],
        None => vec![
            "ollama".into(),
            "no".into(),
            "—".into(),
            "ollama is not on PATH (or attach: [backend.ollama] base_url)".into(),
        ],
    });
    let header: Vec<String> = ["backend", "found", "version", "where"]
        .map(String::from)
        .to_vec();
    match format {
        Format::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"backend": r[0], "found": r[1], "version": r[2], "where": r[3]}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        _ => print!("{}", table(&header, &rows)),
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_crate_is_the_one_the_workspace_links() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .unwrap();
        let at = lock.find("name = \"llama-cpp-sys-2\"").unwrap();
        let version = lock[at..].lines().nth(1).unwrap();
        assert_eq!(version, format!("version = \"{LLAMA_SYS_VERSION}\""));
    }

    #[test]
    fn the_tool_sources_are_embedded() {
        let paths: Vec<&str> = embedded::FILES.iter().map(|(p, _)| *p).collect();
        for want in [
            "tools/CMakeLists.txt",
            "tools/llama-bench/llama-bench.cpp",
            "tools/server/server.cpp",
            "tools/ui/ui.h",
        ] {
            assert!(paths.contains(&want), "{want} in {paths:?}");
        }
        assert_ne!(build_key(Accel::Cpu, &[]), build_key(Accel::Cuda, &[]));
    }

    #[test]
    fn endpoints_are_stored_without_credentials() {
        assert_eq!(
            redact_url("https://u:sk-123@api.x.com/v1?key=sk-9#f"),
            "https://api.x.com/v1"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1"
        );
    }

    #[test]
    fn versions_as_llama_cpp_prints_them() {
        assert_eq!(
            parse_version("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64\n"),
            Some(("0.6.0-dev".into(), None))
        );
        assert_eq!(
            parse_version("load_backend: …\nversion: 6543 (a1b2c3d)\nbuilt with cc"),
            Some(("6543".into(), Some("a1b2c3d".into())))
        );
        assert_eq!(parse_version("usage: llama-bench"), None);
        assert_eq!(
            parse_version("ollama version is 0.5.7\n"),
            Some(("0.5.7".into(), None))
        );
    }
}
