//! `tokbench backends`: each backend, found or not, with its version and where. Finding
//! them is `tokbench_runner::resolve`'s; building llama.cpp's tools, `tokbench_runner::tools`'s.

use std::path::PathBuf;
use tokbench_core::BackendKind;
use tokbench_runner::resolve::{find_tool, probe_version, tool_build, which};

use tokbench_runner::tools::{self, build_tools, Accel, LLAMA_SYS_VERSION};

use crate::exit::ExitCode;
use crate::output::table;
use crate::Format;

/// `tokbench backends`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendsArgs {
    #[command(subcommand)]
    pub command: Option<BackendsCommand>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BackendsCommand {
    /// Build llama-bench and llama-server from the llama.cpp source vendored with the engine
    /// (plus third_party/llama-tools) into ~/.cache/tokbench/llama-tools; reused when built.
    Build(BuildArgs),
}

/// `tokbench backends build`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// cpu, cuda, metal or vulkan.
    #[arg(long, default_value = "cpu")]
    pub accel: Accel,
    /// CUDA architectures, e.g. 90 for H100/H200 (only that chip: a faster build).
    #[arg(long)]
    pub cuda_arch: Option<String>,
    /// The llama.cpp source (default: the llama-cpp-sys-2 crate in cargo's registry).
    #[arg(long, env = "TOKBENCH_LLAMA_SRC")]
    pub llama_src: Option<PathBuf>,
    /// Parallel compile jobs (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Rebuild even when a build of the same sources exists.
    #[arg(long)]
    pub force: bool,
    /// Extra CMake flags, e.g. -DGGML_CUDA_F16=ON.
    #[arg(long = "cmake-flag", allow_hyphen_values = true)]
    pub cmake_flags: Vec<String>,
}

/// `tokbench backends [build]`.
pub fn command(args: &BackendsArgs) -> anyhow::Result<ExitCode> {
    let Some(BackendsCommand::Build(b)) = &args.command else {
        return list_command(args.format);
    };
    let built = build_tools(
        &tools::BuildArgs {
            accel: b.accel,
            cuda_arch: b.cuda_arch.clone(),
            llama_src: b.llama_src.clone(),
            jobs: b.jobs,
            force: b.force,
            cmake_flags: b.cmake_flags.clone(),
        },
        &mut |l| eprintln!("{l}"),
    )?;
    outln!("{}", built.bin_dir.display())?;
    Ok(ExitCode::Ok)
}

/// Each backend, found or not, with its version and where.
fn list_command(format: Format) -> anyhow::Result<ExitCode> {
    format.require("backends", &[Format::Table, Format::Json])?;
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
            Err(e) => vec![name.into(), "no".into(), "—".into(), e.to_string()],
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
            outln!("{}", serde_json::to_string_pretty(&v)?)?;
        }
        _ => out!("{}", table(&header, &rows))?,
    }
    Ok(ExitCode::Ok)
}
