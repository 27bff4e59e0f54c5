//! What one benchmark test is (llama-bench's `pp512`, `tg128`, `pp512 @ d4096`), the
//! engine parameters it runs under (llama-bench's axes), and how a result ended.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::offload::Offload;
use crate::series::SETTINGS;

/// One test: `n_prompt` tokens of prompt processing and/or `n_gen` generated tokens, run
/// with `n_depth` tokens already in the KV cache.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct TestSpec {
    pub n_prompt: u32,
    pub n_gen: u32,
    pub n_depth: u32,
}

impl TestSpec {
    /// llama-bench's label: `pp512`, `tg128`, `pp512+tg128`, with ` @ d4096` for a depth.
    pub fn label(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }

    /// The context the engine creates for this test: [`engine_ctx`].
    pub fn engine_ctx(&self) -> u64 {
        engine_ctx(self.n_depth, self.n_prompt, self.n_gen)
    }
}

/// The context the engine creates for a test, in tokens: the depth, the prompt, the
/// generated tokens and one more (the first token's, timed for TTFT). Exact: three `u32`
/// may pass `u32` (an imported record's numbers are not checked as a suite's labels are).
/// The one definition: the suite's check, the engine and `fit` all use it.
pub fn engine_ctx(n_depth: u32, n_prompt: u32, n_gen: u32) -> u64 {
    u64::from(n_depth) + u64::from(n_prompt) + u64::from(n_gen) + 1
}

impl fmt::Display for TestSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// A test label that does not parse, or asks for more positions than llama.cpp has.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvalidTest {
    #[error("invalid test `{0}`: expected `ppN`, `tgN` or `ppN+tgN`, optionally followed by ` @ dN` (e.g. `pp512`, `tg128`, `pp512 @ d4096`), with N > 0")]
    Syntax(String),
    /// llama.cpp's token positions (`llama_pos`) are 32-bit signed: a context past
    /// 2,147,483,647 tokens cannot be evaluated, and the sum would overflow tokbench's own
    /// 32-bit counts.
    #[error("invalid test `{0}`: it needs a context of {1} tokens (depth + prompt + generated + 1); llama.cpp's token positions stop at {max}", max = MAX_CONTEXT)]
    TooLong(String, u64),
}

/// The most tokens a test's context may hold: llama.cpp's `llama_pos` is an `int32_t`.
pub const MAX_CONTEXT: u64 = i32::MAX as u64;

impl FromStr for TestSpec {
    type Err = InvalidTest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidTest::Syntax(s.to_string());
        let (body, depth) = match s.split_once('@') {
            Some((b, d)) => {
                let d = d.trim().strip_prefix('d').ok_or_else(err)?;
                (b.trim(), d.parse::<u32>().map_err(|_| err())?)
            }
            None => (s.trim(), 0),
        };
        let num = |part: &str, prefix: &str| -> Result<u32, InvalidTest> {
            let n = part
                .strip_prefix(prefix)
                .ok_or_else(err)?
                .parse::<u32>()
                .map_err(|_| err())?;
            if n == 0 {
                return Err(err());
            }
            Ok(n)
        };
        let (n_prompt, n_gen) = match body.split_once('+') {
            Some((p, g)) => (num(p.trim(), "pp")?, num(g.trim(), "tg")?),
            None if body.starts_with("pp") => (num(body, "pp")?, 0),
            None => (0, num(body, "tg")?),
        };
        let n_ctx = engine_ctx(depth, n_prompt, n_gen);
        if n_ctx > MAX_CONTEXT {
            return Err(InvalidTest::TooLong(s.to_string(), n_ctx));
        }
        Ok(TestSpec {
            n_prompt,
            n_gen,
            n_depth: depth,
        })
    }
}

/// A KV cache element type that llama.cpp accepts for `-ctk` / `-ctv`
/// (`kv_cache_types` in llama.cpp's `common/arg.cpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    Iq4Nl,
    Q5_0,
    Q5_1,
}

impl CacheType {
    pub const ALL: [CacheType; 9] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Iq4Nl,
        Self::Q5_0,
        Self::Q5_1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Iq4Nl => "iq4_nl",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
        }
    }

    /// Returns true if and only if this is a block-quantized type (which, for the V
    /// cache, llama.cpp accepts only with flash attention).
    pub fn is_quantized(self) -> bool {
        !matches!(self, Self::F32 | Self::F16 | Self::Bf16)
    }
}

impl fmt::Display for CacheType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown KV cache type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache type `{0}` (llama.cpp accepts: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)")]
pub struct UnknownCacheType(pub String);

impl FromStr for CacheType {
    type Err = UnknownCacheType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|c| c.name() == lower)
            .ok_or_else(|| UnknownCacheType(s.to_string()))
    }
}

/// `repetitions = "auto"`: repeat until the mean is known well enough, as hyperfine
/// chooses its run count. After each timed repetition past `min`, stop when the 95%
/// confidence interval of the mean (Student's t) is within `target` of it on either side,
/// or when `max` repetitions or `max_seconds` of timed work are done.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutoRepetitions {
    pub min: u32,
    pub max: u32,
    pub max_seconds: f64,
    /// The wanted half-width of the 95% interval, as a fraction of the mean (0.01: 1%).
    pub target: f64,
}

impl Default for AutoRepetitions {
    fn default() -> Self {
        AutoRepetitions {
            min: 3,
            max: 30,
            max_seconds: 60.0,
            target: 0.01,
        }
    }
}

impl AutoRepetitions {
    /// The half-width of the 95% interval of the mean of `values`, as a fraction of the
    /// mean; `None` below two values or for a mean that is not positive.
    pub fn relative_half_width(values: &[f64]) -> Option<f64> {
        let (mean, sd) = crate::stats::mean_sd(values)?;
        let sd = sd?;
        let n = values.len() as f64;
        let t = crate::stats::student_t_quantile(0.975, n - 1.0);
        (mean > 0.0).then(|| t * sd / n.sqrt() / mean)
    }

    /// Enough repetitions of a cell whose rates so far are `values`, after `elapsed_s`
    /// seconds of timed work?
    pub fn enough(&self, values: &[f64], elapsed_s: f64) -> bool {
        let n = values.len() as u32;
        if n < self.min.max(1) {
            return false;
        }
        n >= self.max
            || elapsed_s >= self.max_seconds
            || Self::relative_half_width(values).is_some_and(|h| h <= self.target)
    }
}

/// The engine parameters of one cell, named as llama-bench names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EngineParams {
    pub n_threads: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_gpu_layers: u32,
    pub flash_attn: bool,
    pub type_k: CacheType,
    pub type_v: CacheType,
    pub use_mmap: bool,
    /// Split mode, main GPU, tensor split, tensor overrides, MoE experts on the CPU.
    #[serde(default, skip_serializing_if = "Offload::is_default")]
    pub offload: Offload,
    /// Fields that hold no value, whose numbers above mean nothing: left to the tool at run
    /// time, or not stated by an imported table. The database stores them as NULL.
    #[serde(default, skip_serializing_if = "Unset::is_empty")]
    pub unset: Unset,
}

/// A set of [`EngineParams`] fields, named by their database columns: bit `i` is
/// [`crate::series::SETTINGS`]`[i]`, the one list of the settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamSet(u16);

// One bit per setting: a seventeenth setting needs a wider set.
const _: () = assert!(SETTINGS.len() <= u16::BITS as usize);

impl ParamSet {
    /// `self` with the field named by `column` added.
    ///
    /// # Panics
    /// When `column` is not a setting's column (a programming error).
    #[must_use]
    pub fn with(self, column: &str) -> Self {
        let i = Self::index(column).unwrap_or_else(|| panic!("no engine setting `{column}`"));
        Self(self.0 | 1 << i)
    }

    fn index(column: &str) -> Option<usize> {
        SETTINGS.iter().position(|s| s.column == column)
    }

    pub fn contains(self, column: &str) -> bool {
        Self::index(column).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes `&self`
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The fields' columns, in [`SETTINGS`]' order.
    pub fn columns(self) -> impl Iterator<Item = &'static str> {
        SETTINGS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, s)| s.column)
    }
}

impl fmt::Display for ParamSet {
    /// `n_gpu_layers,flash_attn`: how the database's `params_auto` holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.columns().collect::<Vec<_>>().join(","))
    }
}

impl FromStr for ParamSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .try_fold(Self::default(), |set, c| match Self::index(c) {
                Some(_) => Ok(set.with(c)),
                None => Err(format!(
                    "`{c}` is not an engine setting (one of {})",
                    SETTINGS.map(|s| s.column).join(", ")
                )),
            })
    }
}

impl Serialize for ParamSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.columns())
    }
}

impl<'de> Deserialize<'de> for ParamSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.join(",").parse().map_err(serde::de::Error::custom)
    }
}

/// [`EngineParams`] fields without a value, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unset {
    /// Left to the tool at run time (llama-bench's `-ngl -1`, `-fa -1`/`auto`): the value it
    /// chose is not recorded.
    #[serde(default, skip_serializing_if = "ParamSet::is_empty")]
    pub auto: ParamSet,
    /// Not stated by the source (a pasted table that leaves out a column).
    #[serde(default, skip_serializing_if = "ParamSet::is_empty")]
    pub unknown: ParamSet,
}

impl Unset {
    pub fn is_empty(&self) -> bool {
        self.auto.is_empty() && self.unknown.is_empty()
    }

    /// Whether the field named by `column` has no value, for either reason.
    pub fn contains(&self, column: &str) -> bool {
        self.auto.contains(column) || self.unknown.contains(column)
    }
}

impl EngineParams {
    /// The parameters fixed when a model is loaded; tests that share them share one load.
    pub fn load_key(&self) -> (u32, bool, Offload) {
        (self.n_gpu_layers, self.use_mmap, self.offload)
    }
}

/// How a result ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// Measured.
    Ok,
    /// The backend reported an error or exited non-zero.
    Failed,
    /// The backend died from a signal (killed, crashed, out of memory).
    Crashed,
    /// The backend did not answer within the timeout and was killed.
    Timeout,
    /// The backend is not installed or cannot run here.
    Unavailable,
    /// The run was interrupted (SIGINT/SIGTERM) while this cell was in flight.
    Interrupted,
    /// Out of memory: the backend passed the suite's memory limit and was stopped, or its
    /// llama.cpp could not allocate a buffer (a model or context the device cannot hold).
    Oom,
}

impl ResultStatus {
    pub const ALL: [ResultStatus; 7] = [
        Self::Ok,
        Self::Failed,
        Self::Crashed,
        Self::Timeout,
        Self::Unavailable,
        Self::Interrupted,
        Self::Oom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Crashed => "crashed",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Interrupted => "interrupted",
            Self::Oom => "oom",
        }
    }
}

impl fmt::Display for ResultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status or metric source name that is not one of tokbench's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

impl FromStr for ResultStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "result status",
                value: s.to_string(),
            })
    }
}

/// Where a stored number came from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// Timed inside the inference engine (tokbench's embedded engine, llama-bench).
    #[default]
    Engine,
    /// Reported by a server about itself (llama-server `timings`).
    Server,
    /// Timed by tokbench's client across the wire.
    Client,
}

impl MetricSource {
    pub const ALL: [MetricSource; 3] = [Self::Engine, Self::Server, Self::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for MetricSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetricSource {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "metric source",
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_llama_bench() {
        let t = |p, g, d| TestSpec {
            n_prompt: p,
            n_gen: g,
            n_depth: d,
        };
        assert_eq!(t(512, 0, 0).label(), "pp512");
        assert_eq!(t(0, 128, 0).label(), "tg128");
        assert_eq!(t(512, 128, 0).label(), "pp512+tg128");
        assert_eq!(t(512, 0, 4096).label(), "pp512 @ d4096");
        for spec in [
            t(512, 0, 0),
            t(0, 128, 0),
            t(512, 128, 0),
            t(512, 0, 4096),
            t(0, 32, 128),
        ] {
            assert_eq!(spec.label().parse::<TestSpec>().unwrap(), spec);
        }
        assert_eq!("pp512@d4096".parse::<TestSpec>().unwrap(), t(512, 0, 4096));
    }

    #[test]
    fn bad_labels_are_rejected() {
        for bad in [
            "",
            "pp",
            "pp0",
            "tg-1",
            "xx512",
            "pp512 @ 4096",
            "pp512+pp1",
            "tg128+pp512",
        ] {
            assert!(bad.parse::<TestSpec>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_context_past_llama_cpps_positions_is_refused_with_its_size() {
        // 2^31 - 1 positions: the longest context still fits, one more does not.
        let longest = "pp1 @ d2147483645".parse::<TestSpec>().unwrap();
        assert_eq!(longest.engine_ctx(), 2_147_483_647);
        let e = "pp2 @ d2147483645"
            .parse::<TestSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("2147483648 tokens"), "{e}");
        let e = "pp16 @ d2147483640"
            .parse::<TestSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`pp16 @ d2147483640`")
                && e.contains("2147483657 tokens")
                && e.contains("2147483647"),
            "{e}"
        );
        // A sum past u32 is refused too, not wrapped.
        let e = "pp4000000000+tg4000000000 @ d4000000000"
            .parse::<TestSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("12000000001 tokens"), "{e}");
        // An imported record's numbers are summed exactly, not wrapped.
        let t = TestSpec {
            n_prompt: u32::MAX,
            n_gen: 1,
            n_depth: u32::MAX,
        };
        assert_eq!(t.engine_ctx(), 2 * u64::from(u32::MAX) + 2);
    }

    #[test]
    fn cache_types_parse() {
        assert_eq!("Q8_0".parse::<CacheType>().unwrap(), CacheType::Q8_0);
        assert!(CacheType::Q4_0.is_quantized());
        assert!(!CacheType::Bf16.is_quantized());
        assert!("q3_k"
            .parse::<CacheType>()
            .unwrap_err()
            .to_string()
            .contains("q3_k"));
    }

    #[test]
    fn auto_repetitions_stop_when_the_mean_is_known_or_the_budget_is_spent() {
        let auto = AutoRepetitions::default();
        // Three tight values: the 95% interval is within 1%.
        assert!(auto.enough(&[100.0, 100.2, 99.9], 1.0));
        // Two values are never enough (min 3), however tight.
        assert!(!auto.enough(&[100.0, 100.0], 1.0));
        // Scattered: go on, until the time budget or the maximum.
        let noisy = [100.0, 80.0, 120.0, 95.0];
        assert!(!auto.enough(&noisy, 1.0));
        assert!(auto.enough(&noisy, 60.0));
        assert!(auto.enough(&[100.0, 80.0].repeat(15), 1.0));
        // t(0.975, 2) = 4.303: half-width of [99, 100, 101] is 4.303 × 1 / √3 / 100.
        let h = AutoRepetitions::relative_half_width(&[99.0, 100.0, 101.0]).unwrap();
        assert!((h - 4.303 / 3f64.sqrt() / 100.0).abs() < 1e-4, "{h}");
    }
}
