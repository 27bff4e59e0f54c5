//! llama-bench's command line as a front door to `tokbench run`: `-m a.gguf -p 512 -n 128
//! -pg 512,128 -d 0,4096 -r 5 -t 4,8 -ngl 99 -fa 0,1 -ctk q8_0 -b 2048 -ub 256,512`, comma
//! lists making axes, alone (a suite is written from them, with llama-bench's defaults) or
//! over a suite (each given flag replaces that key of the suite).
//!
//! The flags become suite keys in TOML, and the suite loader validates the result, so a
//! command-line run is stored, resumed and reported exactly like a suite file, with the
//! suite's own errors for impossible values.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::exit::BadInput;

/// The default suite, built into the binary so `tokbench run` works in any directory;
/// `bench-configs/smoke.toml` is its readable copy (the very same bytes).
pub const DEFAULT_SUITE: &str = include_str!("../../../bench-configs/smoke.toml");

/// The name the built-in suite is stored under.
pub const DEFAULT_SUITE_NAME: &str = "bench-configs/smoke.toml";

/// The multi-letter short options llama-bench users type from memory, and the long options
/// they mean here (clap's short options are one letter).
const SPELLINGS: [(&str, &str); 11] = [
    ("-ngl", "--ngl"),
    ("-fa", "--fa"),
    ("-ctk", "--ctk"),
    ("-ctv", "--ctv"),
    ("-ub", "--ub"),
    ("-pg", "--pg"),
    ("-sm", "--sm"),
    ("-ts", "--ts"),
    ("-mg", "--mg"),
    ("-ot", "--ot"),
    ("-ncmoe", "--ncmoe"),
];

/// Rewrites llama-bench's multi-letter options (`-ngl 99`, `-fa=1`) to their long forms for
/// the commands that take them (`run`, `fit`); every other argument, and everything after
/// `--`, is left as it is (arguments that are not UTF-8 too).
pub fn rewrite_args(args: Vec<OsString>) -> Vec<OsString> {
    let takes_them = matches!(args.get(1).and_then(|a| a.to_str()), Some("run" | "fit"));
    if !takes_them {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut rest_is_positional = false;
    for a in args {
        if a == "--" {
            rest_is_positional = true;
        }
        let rewritten = match a.to_str() {
            Some(text) if !rest_is_positional => SPELLINGS.iter().find_map(|(short, long)| {
                if text == *short {
                    Some(OsString::from(long))
                } else {
                    text.strip_prefix(short)
                        .and_then(|v| v.strip_prefix('='))
                        .map(|v| OsString::from(format!("{long}={v}")))
                }
            }),
            _ => None,
        };
        out.push(rewritten.unwrap_or(a));
    }
    out
}

/// `tokbench run`'s llama-bench flags. Each given flag replaces the suite's key; none given
/// leaves the suite as written.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct BenchFlags {
    /// Model files (repeatable, or comma-separated); replaces the suite's models.
    #[arg(
        short = 'm',
        long = "model",
        value_delimiter = ',',
        value_name = "GGUF"
    )]
    pub models: Vec<PathBuf>,
    /// Prompt lengths: a ppN test each (llama-bench -p; default 512, 0 for none).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        value_name = "N"
    )]
    pub n_prompt: Vec<u32>,
    /// Generation lengths: a tgN test each (llama-bench -n; default 128, 0 for none).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', value_name = "N")]
    pub n_gen: Vec<u32>,
    /// Prompt then generation, PP,TG (repeatable; llama-bench -pg).
    #[arg(long = "pg", alias = "prompt-gen", value_name = "PP,TG")]
    pub pg: Vec<String>,
    /// KV-cache depths every test also runs at (llama-bench -d).
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', value_name = "N")]
    pub depth: Vec<u32>,
    /// Timed repetitions per cell (llama-bench -r; default 5 without a suite), or `auto`:
    /// repeat until the 95% interval of the mean is within 1% (3 to 30, at most 60 s).
    #[arg(short = 'r', long = "repetitions", value_name = "N|auto")]
    pub repetitions: Option<Reps>,
    /// CPU threads (llama-bench -t).
    #[arg(short = 't', long = "threads", value_delimiter = ',', value_name = "N")]
    pub threads: Vec<u32>,
    /// Layers offloaded to the GPU (llama-bench -ngl).
    #[arg(
        long = "ngl",
        alias = "n-gpu-layers",
        value_delimiter = ',',
        value_name = "N"
    )]
    pub ngl: Vec<u32>,
    /// Flash attention, 0 or 1 (llama-bench -fa).
    #[arg(
        long = "fa",
        alias = "flash-attn",
        value_delimiter = ',',
        value_name = "0|1"
    )]
    pub fa: Vec<OnOff>,
    /// K cache types (llama-bench -ctk).
    #[arg(
        long = "ctk",
        alias = "cache-type-k",
        value_delimiter = ',',
        value_name = "TYPE"
    )]
    pub ctk: Vec<String>,
    /// V cache types (llama-bench -ctv; a quantized V cache needs -fa 1).
    #[arg(
        long = "ctv",
        alias = "cache-type-v",
        value_delimiter = ',',
        value_name = "TYPE"
    )]
    pub ctv: Vec<String>,
    /// Logical batch sizes (llama-bench -b).
    #[arg(
        short = 'b',
        long = "batch-size",
        value_delimiter = ',',
        value_name = "N"
    )]
    pub batch: Vec<u32>,
    /// Physical batch sizes (llama-bench -ub).
    #[arg(
        long = "ub",
        alias = "ubatch-size",
        value_delimiter = ',',
        value_name = "N"
    )]
    pub ubatch: Vec<u32>,
    /// Memory-map the model, 0 or 1 (llama-bench -mmp; one value).
    #[arg(long = "mmap", alias = "mmp", value_name = "0|1")]
    pub mmap: Option<OnOff>,
    /// How the model is spread over several GPUs: none, layer, row, tensor (llama-bench -sm).
    #[arg(
        long = "sm",
        alias = "split-mode",
        value_delimiter = ',',
        value_name = "MODE"
    )]
    pub split_mode: Vec<String>,
    /// The GPU that holds the model with -sm none (llama-bench -mg).
    #[arg(
        long = "mg",
        alias = "main-gpu",
        value_delimiter = ',',
        value_name = "I"
    )]
    pub main_gpu: Vec<u32>,
    /// Each GPU's share of the model, `/` between devices: -ts 3/1,1/1 (llama-bench -ts).
    #[arg(
        long = "ts",
        alias = "tensor-split",
        value_delimiter = ',',
        value_name = "N0/N1/..."
    )]
    pub tensor_split: Vec<String>,
    /// Tensors put in another buffer type, `PATTERN=BUFFER` pairs joined by `;`, `,` between
    /// alternatives (llama-bench -ot; the engine takes `=CPU` only).
    #[arg(
        long = "ot",
        alias = "override-tensor",
        value_delimiter = ',',
        value_name = "PATTERN=BUFFER;..."
    )]
    pub override_tensor: Vec<String>,
    /// Keep the expert weights of the first N layers of a mixture-of-experts model on the
    /// CPU (llama-bench -ncmoe).
    #[arg(
        long = "ncmoe",
        alias = "n-cpu-moe",
        value_delimiter = ',',
        value_name = "N"
    )]
    pub n_cpu_moe: Vec<u32>,
}

/// `-r N` or `-r auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reps {
    Count(u32),
    Auto,
}

impl std::str::FromStr for Reps {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Reps::Auto),
            n => n
                .parse()
                .map(Reps::Count)
                .map_err(|_| format!("`{n}` is neither a number of repetitions nor `auto`")),
        }
    }
}

impl Reps {
    fn toml(self) -> Value {
        match self {
            Reps::Count(n) => Value::Integer(n.into()),
            Reps::Auto => Value::String("auto".into()),
        }
    }
}

/// A llama-bench boolean: `0`/`1`, `on`/`off`, `true`/`false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl std::str::FromStr for OnOff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1" | "on" | "true" | "yes" => Ok(OnOff(true)),
            "0" | "off" | "false" | "no" => Ok(OnOff(false)),
            other => Err(format!("`{other}` is not 0 or 1 (on/off)")),
        }
    }
}

impl BenchFlags {
    /// True when no flag was given (the suite runs as written).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn tests_given(&self) -> bool {
        !(self.n_prompt.is_empty() && self.n_gen.is_empty() && self.pg.is_empty())
    }

    /// The tests, as llama-bench makes them: a ppN per -p, a tgN per -n (512 and 128 when
    /// not given, 0 for none), a ppA+tgB per -pg.
    fn tests(&self) -> Result<Vec<String>, BadInput> {
        let p = if self.n_prompt.is_empty() {
            vec![512]
        } else {
            self.n_prompt.clone()
        };
        let n = if self.n_gen.is_empty() {
            vec![128]
        } else {
            self.n_gen.clone()
        };
        let mut tests: Vec<String> = p
            .iter()
            .filter(|&&p| p > 0)
            .map(|p| format!("pp{p}"))
            .chain(n.iter().filter(|&&n| n > 0).map(|n| format!("tg{n}")))
            .collect();
        for pg in &self.pg {
            let pair: Vec<&str> = pg.split(',').map(str::trim).collect();
            let parsed: Option<Vec<u32>> = pair.iter().map(|x| x.parse().ok()).collect();
            match parsed.as_deref() {
                Some([a, b]) if *a > 0 && *b > 0 => tests.push(format!("pp{a}+tg{b}")),
                _ => {
                    return Err(BadInput(format!(
                        "-pg {pg}: give one prompt and one generation length, e.g. -pg 512,128"
                    )))
                }
            }
        }
        if tests.is_empty() {
            return Err(BadInput(
                "no test left: -p 0 and -n 0 with no -pg measure nothing".into(),
            ));
        }
        Ok(tests)
    }
}

/// Is `path` a GGUF model rather than a suite? By its first four bytes (`GGUF`), so a model
/// named without the extension is still one; a file that cannot be read is left to the
/// suite reader's error.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| &magic == b"GGUF")
        .unwrap_or(false)
}

/// A model file given on the command line, checked before anything is written: it exists,
/// is a file and can be read. Returned absolute, so the stored suite names it anywhere.
fn model_path(path: &Path) -> Result<PathBuf, BadInput> {
    if path.is_dir() {
        return Err(BadInput(format!(
            "-m {}: a directory, not a model file: give the .gguf file itself",
            path.display()
        )));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| {
        BadInput(format!(
            "-m {}: {e} (give the path of a GGUF model file)",
            path.display()
        ))
    })?;
    std::fs::File::open(&abs)
        .map_err(|e| BadInput(format!("-m {}: cannot read it: {e}", path.display())))?;
    Ok(abs)
}

fn ints<T: Into<i64> + Copy>(xs: &[T]) -> Value {
    Value::Array(xs.iter().map(|x| Value::Integer((*x).into())).collect())
}

fn strings(xs: &[String]) -> Value {
    Value::Array(xs.iter().map(|x| Value::String(x.clone())).collect())
}

/// The suite text to run: `base` (a suite file's text; `None` when only flags were given)
/// with every given flag written over its key.
pub fn suite_text(base: Option<&str>, flags: &BenchFlags) -> Result<String, BadInput> {
    let Some(base) = base else {
        if flags.models.is_empty() {
            return Err(BadInput(
                "nothing to run: give a suite file, a model (-m FILE.gguf), or neither for the default suite".into(),
            ));
        }
        let mut t = Table::new();
        t.insert("name".into(), Value::String("command line".into()));
        let mut workload = Table::new();
        workload.insert("tests".into(), strings(&flags.tests()?));
        workload.insert(
            "repetitions".into(),
            flags.repetitions.unwrap_or(Reps::Count(5)).toml(),
        );
        t.insert("workload".into(), Value::Table(workload));
        return finish(t, flags);
    };
    if flags.is_empty() {
        return Ok(base.to_string());
    }
    let t: Table = base
        .parse()
        .map_err(|e| BadInput(format!("the suite is not valid TOML: {e}")))?;
    finish(t, flags)
}

fn finish(mut t: Table, flags: &BenchFlags) -> Result<String, BadInput> {
    if !flags.models.is_empty() {
        let models = flags
            .models
            .iter()
            .map(|m| {
                let mut e = Table::new();
                e.insert(
                    "path".into(),
                    Value::String(model_path(m)?.display().to_string()),
                );
                Ok(Value::Table(e))
            })
            .collect::<Result<Vec<_>, BadInput>>()?;
        t.insert("model".into(), Value::Array(models));
    }
    let section = |t: &mut Table, name: &str| -> Result<Table, BadInput> {
        match t.remove(name) {
            None => Ok(Table::new()),
            Some(Value::Table(s)) => Ok(s),
            Some(_) => Err(BadInput(format!("the suite's `{name}` is not a table"))),
        }
    };
    let mut workload = section(&mut t, "workload")?;
    if flags.tests_given() {
        workload.insert("tests".into(), strings(&flags.tests()?));
    }
    if !flags.depth.is_empty() {
        workload.insert("depths".into(), ints(&flags.depth));
    }
    if let Some(r) = flags.repetitions {
        workload.insert("repetitions".into(), r.toml());
    }
    t.insert("workload".into(), Value::Table(workload));
    let mut engine = section(&mut t, "engine")?;
    let mut set = |key: &str, v: Value| {
        engine.insert(key.into(), v);
    };
    if !flags.threads.is_empty() {
        set("threads", ints(&flags.threads));
    }
    if !flags.ngl.is_empty() {
        set("n_gpu_layers", ints(&flags.ngl));
    }
    if !flags.fa.is_empty() {
        set(
            "flash_attn",
            Value::Array(flags.fa.iter().map(|b| Value::Boolean(b.0)).collect()),
        );
    }
    if !flags.ctk.is_empty() {
        set("cache_type_k", strings(&flags.ctk));
    }
    if !flags.ctv.is_empty() {
        set("cache_type_v", strings(&flags.ctv));
    }
    if !flags.batch.is_empty() {
        set("batch", ints(&flags.batch));
    }
    if !flags.ubatch.is_empty() {
        set("ubatch", ints(&flags.ubatch));
    }
    if let Some(m) = flags.mmap {
        set("mmap", Value::Boolean(m.0));
    }
    if !flags.split_mode.is_empty() {
        set("split_mode", strings(&flags.split_mode));
    }
    if !flags.main_gpu.is_empty() {
        set("main_gpu", ints(&flags.main_gpu));
    }
    if !flags.tensor_split.is_empty() {
        set("tensor_split", strings(&flags.tensor_split));
    }
    if !flags.override_tensor.is_empty() {
        set("override_tensor", strings(&flags.override_tensor));
    }
    if !flags.n_cpu_moe.is_empty() {
        set("n_cpu_moe", ints(&flags.n_cpu_moe));
    }
    if !engine.is_empty() {
        t.insert("engine".into(), Value::Table(engine));
    }
    toml::to_string(&t).map_err(|e| BadInput(format!("cannot write the suite: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn llama_bench_spellings_become_long_options_for_run_and_fit_only() {
        assert_eq!(
            rewrite_args(args(
                "tokbench run -m a.gguf -ngl 99 -fa=0,1 -ub 256 -ctk q8_0 -p 512"
            )),
            args("tokbench run -m a.gguf --ngl 99 --fa=0,1 --ub 256 --ctk q8_0 -p 512")
        );
        assert_eq!(
            rewrite_args(args("tokbench query -fa")),
            args("tokbench query -fa")
        );
        assert_eq!(
            rewrite_args(args("tokbench run -- -ngl")),
            args("tokbench run -- -ngl")
        );
        // Not a prefix match: `-fast` is not `-fa`.
        assert_eq!(
            rewrite_args(args("tokbench run -fast")),
            args("tokbench run -fast")
        );
    }

    #[test]
    fn tests_follow_llama_bench_defaults() {
        let f = BenchFlags::default();
        assert_eq!(f.tests().unwrap(), ["pp512", "tg128"]);
        let f = BenchFlags {
            n_prompt: vec![64, 0],
            n_gen: vec![0],
            pg: vec!["512,128".into()],
            ..Default::default()
        };
        assert_eq!(f.tests().unwrap(), ["pp64", "pp512+tg128"]);
        let f = BenchFlags {
            pg: vec!["512".into()],
            ..Default::default()
        };
        assert!(f.tests().unwrap_err().0.contains("-pg 512"));
        let f = BenchFlags {
            n_prompt: vec![0],
            n_gen: vec![0],
            ..Default::default()
        };
        assert!(f.tests().is_err());
    }

    #[test]
    fn flags_overwrite_the_suite_and_keep_the_rest() {
        let flags = BenchFlags {
            repetitions: Some(Reps::Count(7)),
            fa: vec![OnOff(false), OnOff(true)],
            ubatch: vec![256, 512],
            ..Default::default()
        };
        let text = suite_text(Some(DEFAULT_SUITE), &flags).unwrap();
        let t: Table = text.parse().unwrap();
        assert_eq!(t["workload"]["repetitions"].as_integer(), Some(7));
        assert_eq!(
            t["workload"]["tests"],
            strings(&["pp512".into(), "tg128".into()])
        );
        assert_eq!(
            t["engine"]["flash_attn"],
            Value::Array(vec![Value::Boolean(false), Value::Boolean(true)])
        );
        assert_eq!(t["engine"]["ubatch"], ints(&[256u32, 512]));
        assert_eq!(t["engine"]["batch"].as_integer(), Some(2048));
        assert_eq!(t["model"][0]["synth"].as_str(), Some("tiny"));
        // No flags: the suite's own text, comments and all.
        assert_eq!(
            suite_text(Some(DEFAULT_SUITE), &BenchFlags::default()).unwrap(),
            DEFAULT_SUITE
        );
    }

    #[test]
    fn a_model_that_is_not_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let flags = BenchFlags {
            models: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let e = suite_text(None, &flags).unwrap_err().0;
        assert!(
            e.contains("a directory") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
        let flags = BenchFlags {
            models: vec![dir.path().join("missing.gguf")],
            ..Default::default()
        };
        let e = suite_text(None, &flags).unwrap_err().0;
        assert!(e.contains("missing.gguf"), "{e}");
        assert!(suite_text(None, &BenchFlags::default()).is_err());
    }

    #[test]
    fn offload_flags_become_engine_axes_that_the_suite_checks() {
        let flags = BenchFlags {
            split_mode: vec!["none".into(), "layer".into()],
            main_gpu: vec![0],
            override_tensor: vec![r"blk\.0\..*=CPU;output=CPU".into(), "none".into()],
            n_cpu_moe: vec![2],
            ..Default::default()
        };
        let text = suite_text(Some(DEFAULT_SUITE), &flags).unwrap();
        let suite = tokbench_core::Suite::from_toml(&text, Path::new("s.toml")).unwrap();
        let overrides: std::collections::BTreeSet<&str> = suite
            .engines
            .iter()
            .map(|e| e.offload.overrides.as_str())
            .collect();
        assert_eq!(
            overrides.into_iter().collect::<Vec<_>>(),
            ["", r"blk\.0\..*=CPU;output=CPU"]
        );
        assert!(suite
            .engines
            .iter()
            .any(|e| e.offload.split_mode == tokbench_core::SplitMode::None));
        assert!(suite.engines.iter().all(|e| e.offload.n_cpu_moe == 2));
        // A tensor split is llama-bench's and llama-server's to run: the default suite's
        // engine refuses it before anything runs.
        let flags = BenchFlags {
            tensor_split: vec!["3/1".into()],
            ..Default::default()
        };
        let text = suite_text(Some(DEFAULT_SUITE), &flags).unwrap();
        let e = tokbench_core::Suite::from_toml(&text, Path::new("s.toml")).unwrap_err();
        assert!(
            e.message.contains("tensor_split") && e.message.contains("llama-bench"),
            "{e}"
        );
        // A bad value is the suite's own error, naming the key.
        let flags = BenchFlags {
            split_mode: vec!["rows".into()],
            ..Default::default()
        };
        let text = suite_text(Some(DEFAULT_SUITE), &flags).unwrap();
        let e = tokbench_core::Suite::from_toml(&text, Path::new("s.toml")).unwrap_err();
        assert!(e.message.contains("split_mode"), "{e}");
        assert_eq!(
            rewrite_args(args(
                "tokbench run -sm none -mg 1 -ot a=CPU -ncmoe 3 -ts 3/1"
            )),
            args("tokbench run --sm none --mg 1 --ot a=CPU --ncmoe 3 --ts 3/1")
        );
    }

    #[test]
    fn gguf_is_recognised_by_its_magic() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("model.bin");
        std::fs::write(&m, b"GGUF\x03\0\0\0").unwrap();
        let s = dir.path().join("suite.toml");
        std::fs::write(&s, DEFAULT_SUITE).unwrap();
        assert!(is_gguf(&m));
        assert!(!is_gguf(&s));
        assert!(!is_gguf(&dir.path().join("absent")));
    }
}
