//! The llama.cpp tools tokbench builds for itself: `llama-bench` and `llama-server` from
//! the llama.cpp source cargo vendors for the engine (the `llama-cpp-sys-2` crate), with
//! the tool sources in `third_party/llama-tools` (embedded at build time) laid over it,
//! into a cache directory keyed by everything that goes into the build. A built cache is
//! reused. Finding a tool (the suite's, an environment variable's, this cache's, `PATH`'s)
//! is [`crate::resolve`]'s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::resolve::which;

/// The `llama-cpp-sys-2` release whose vendored llama.cpp the tools build against (the
/// workspace pins it; a test checks the two agree).
pub const LLAMA_SYS_VERSION: &str = "0.1.161";

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/llama_tools.rs"));
}

/// Why the tools could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error(
        "neither HOME nor CARGO_HOME is set: cannot tell where the cache and cargo's registry are"
    )]
    NoHome,
    #[error("{} is not a llama.cpp source tree (no CMakeLists.txt and include/llama.h)", path.display())]
    NotLlamaSource { path: PathBuf },
    #[error("the llama.cpp source vendored by {want} is not in {} (build tokbench once with cargo, or pass --llama-src DIR)", registry.display())]
    NoVendoredSource { want: String, registry: PathBuf },
    #[error("cmake is not installed (Debian/Ubuntu: apt-get install -y cmake; macOS: brew install cmake)")]
    NoCmake,
    #[error("{program} failed ({status}); last lines of {}:\n{tail}", log.display())]
    Failed {
        program: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the build finished without {} (see {})", path.display(), log.display())]
    Missing { path: PathBuf, log: PathBuf },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ToolsError {
    move |source| ToolsError::Io { what, source }
}

/// Accelerator the tools are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Cpu,
    Cuda,
    Metal,
    Vulkan,
}

impl Accel {
    pub const ALL: [Accel; 4] = [Accel::Cpu, Accel::Cuda, Accel::Metal, Accel::Vulkan];

    pub fn name(self) -> &'static str {
        match self {
            Accel::Cpu => "cpu",
            Accel::Cuda => "cuda",
            Accel::Metal => "metal",
            Accel::Vulkan => "vulkan",
        }
    }
}

/// An accelerator name tokbench cannot build for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator `{0}`: cpu, cuda, metal or vulkan")]
pub struct UnknownAccel(pub String);

impl std::str::FromStr for Accel {
    type Err = UnknownAccel;

    fn from_str(s: &str) -> Result<Accel, UnknownAccel> {
        Accel::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAccel(s.to_string()))
    }
}

/// `$TOKBENCH_TOOLS_DIR`, else `~/.cache/tokbench/llama-tools` (or under `$TOKBENCH_CACHE`
/// / `$XDG_CACHE_HOME`).
pub fn tools_root() -> Result<PathBuf, ToolsError> {
    if let Some(d) = std::env::var_os("TOKBENCH_TOOLS_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let base = match std::env::var_os("TOKBENCH_CACHE").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("tokbench"),
            None => PathBuf::from(std::env::var_os("HOME").ok_or(ToolsError::NoHome)?)
                .join(".cache")
                .join("tokbench"),
        },
    };
    Ok(base.join("llama-tools"))
}

/// The overlay's CMake file included after `project()`: Intel AMX off, and the Vulkan
/// headers' missing `VK_EXT_layer_settings` types declared where they lack them.
const LLAMA_CMAKE: &str = "cmake/tokbench-llama.cmake";

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
pub fn find_llama_src(explicit: Option<&Path>) -> Result<PathBuf, ToolsError> {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TOKBENCH_LLAMA_SRC").map(PathBuf::from))
    {
        if !p.join("CMakeLists.txt").is_file() || !p.join("include/llama.h").is_file() {
            return Err(ToolsError::NotLlamaSource { path: p });
        }
        return Ok(p);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or(ToolsError::NoHome)?;
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
    Err(ToolsError::NoVendoredSource { want, registry })
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
    pub fn current(&self) -> bool {
        let accel = self.accel.parse().unwrap_or(Accel::Cpu);
        build_key(accel, &self.cmake_flags) == self.key
    }
}

/// What `tokbench backends build` asks for.
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
pub fn build_tools(args: &BuildArgs, say: &mut dyn FnMut(&str)) -> Result<ToolsBuild, ToolsError> {
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
    let cmake = which("cmake").ok_or(ToolsError::NoCmake)?;
    let src = find_llama_src(args.llama_src.as_deref())?;
    let started = Instant::now();
    let tree = dir.join("src");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(io(format!("remove {}", tree.display())))?;
    }
    say(&format!("copying llama.cpp from {} …", src.display()));
    copy_tree(&src, &tree).map_err(io(format!("copy {} to {}", src.display(), tree.display())))?;
    for (path, bytes) in embedded::FILES {
        let to = tree.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&to, bytes).map_err(io(format!("write {}", to.display())))?;
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
        // ggml's AMX kernels crash; the engine is built without them too (the file says why).
        .arg(format!(
            "-DCMAKE_PROJECT_INCLUDE={}",
            tree.join(LLAMA_CMAKE).display()
        ))
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
            return Err(ToolsError::Missing {
                path: bin_dir.join(t),
                log: dir.join("build.log"),
            });
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
    let json = serde_json::to_string_pretty(&b).expect("a build record serializes");
    std::fs::write(&stamp, json).map_err(io(format!("write {}", stamp.display())))?;
    // The source copy is only needed to build.
    let _ = std::fs::remove_dir_all(&tree);
    say(&format!(
        "built in {:.0} s: {}",
        b.build_seconds,
        b.bin_dir.display()
    ));
    Ok(b)
}

fn run_logged(cmd: &mut Command, log: &Path) -> Result<(), ToolsError> {
    let file = std::fs::File::create(log).map_err(io(format!("create {}", log.display())))?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd
        .stdout(
            file.try_clone()
                .map_err(io(format!("open {}", log.display())))?,
        )
        .stderr(file)
        .status()
        .map_err(io(format!("run {program}")))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(ToolsError::Failed {
            program,
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: tail.join("\n"),
        });
    }
    Ok(())
}

/// Every tools build in the cache, newest first.
pub(crate) fn cached_builds() -> Vec<ToolsBuild> {
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
            LLAMA_CMAKE,
        ] {
            assert!(paths.contains(&want), "{want} in {paths:?}");
        }
        assert_ne!(build_key(Accel::Cpu, &[]), build_key(Accel::Cuda, &[]));
    }

    #[test]
    fn accelerators_by_name() {
        for a in Accel::ALL {
            assert_eq!(a.name().parse::<Accel>().unwrap(), a);
        }
        let e = "rocm".parse::<Accel>().unwrap_err().to_string();
        assert!(e.contains("rocm") && e.contains("vulkan"), "{e}");
    }
}
