//! Finding the backends a suite uses before it runs: a llama.cpp tool (the suite's
//! `binary`, an environment variable, tokbench's own build, `PATH`), a server program, or an
//! endpoint to attach to, each with the version it reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokbench_core::{BackendBuild, BackendKind, Suite};

use crate::backend::BackendTarget;
use crate::tools::{cached_builds, ToolsBuild};

/// Why a tool was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    #[error("{name}: the suite's binary {} does not exist", path.display())]
    SuiteBinary { name: String, path: PathBuf },
    #[error("{name}: ${var} names {}, which does not exist", path.display())]
    EnvBinary {
        name: String,
        var: String,
        path: PathBuf,
    },
    #[error("{name} is not installed: run `tokbench backends build` (builds it from the vendored llama.cpp), set ${var}, or name `binary` in the suite's [backend.{name}]")]
    NotInstalled { name: String, var: String },
}

/// `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
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
pub fn find_tool(name: &str, configured: Option<&Path>, env_var: &str) -> Result<Found, NotFound> {
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
            Err(NotFound::SuiteBinary {
                name: name.into(),
                path: p.to_path_buf(),
            })
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
            Err(NotFound::EnvBinary {
                name: name.into(),
                var: env_var.into(),
                path,
            })
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
    Err(NotFound::NotInstalled {
        name: name.into(),
        var: env_var.into(),
    })
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

/// What a found tool is: its version and commit, and the build tokbench made of it.
pub fn tool_build(kind: BackendKind, found: &Found) -> BackendBuild {
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
    let http = crate::serve::http_client();
    let text = crate::serve::get_text(&http, &format!("{base}/api/version"), None).await?;
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

/// Resolves every non-engine backend a suite uses: found and probed, or why it cannot run.
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
                    Err(reason) => BackendTarget::unavailable(kind, reason.to_string()),
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
                    Err(e) => BackendTarget::unavailable(kind, e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_missing_tool_says_how_to_get_it() {
        let e = find_tool(
            "llama-bench",
            Some(Path::new("/nonexistent/llama-bench")),
            "X",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "llama-bench: the suite's binary /nonexistent/llama-bench does not exist"
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
