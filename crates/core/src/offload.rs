//! How a model is spread over devices beyond `n_gpu_layers`: llama.cpp's `split_mode`,
//! `main_gpu`, `tensor_split`, tensor buffer-type overrides (`-ot`) and `n_cpu_moe`, the
//! axes a multi-GPU or CPU+GPU ("stretch") setup is tuned along. [`Offload`] holds them for
//! one cell; each is stored in the series key, and llama.cpp's default of each is stored as
//! NULL, so results from before these settings existed stay in their series.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How llama.cpp spreads a model over several GPUs (llama-bench's `-sm`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SplitMode {
    /// One GPU only: `main_gpu` holds the whole offloaded part.
    None,
    /// Whole layers (and their KV cache) per GPU, in `tensor_split`'s proportions: the default.
    #[default]
    Layer,
    /// Each matrix split by rows across GPUs (CUDA and SYCL; not Vulkan).
    Row,
    /// llama.cpp's experimental tensor parallelism.
    Tensor,
}

impl SplitMode {
    pub const ALL: [SplitMode; 4] = [Self::None, Self::Layer, Self::Row, Self::Tensor];

    /// llama-bench's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Layer => "layer",
            Self::Row => "row",
            Self::Tensor => "tensor",
        }
    }
}

impl fmt::Display for SplitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SplitMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown split mode `{s}` (llama.cpp takes none, layer, row or tensor)")
            })
    }
}

/// The most devices llama.cpp splits over (`LLAMA_MAX_DEVICES`, the length of
/// `llama_model_params::tensor_split`).
pub const MAX_DEVICES: usize = 16;

/// `tensor_split`: each device's share of the offloaded model, in hundredths, as llama-bench
/// prints it (`%.2f` each, `/` between, up to the last non-zero device): what is stored is
/// exactly what the backend was given. All zero is llama.cpp's default (shares by each
/// device's free memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorSplit([u32; MAX_DEVICES]);

impl TensorSplit {
    pub fn is_default(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }
}

impl fmt::Display for TensorSplit {
    /// `0.75/0.25`, or `0.00` for the default, as llama-bench prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.iter().rposition(|&v| v > 0).map_or(1, |i| i + 1);
        for (i, v) in self.0[..n].iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{}.{:02}", v / 100, v % 100)?;
        }
        Ok(())
    }
}

impl FromStr for TensorSplit {
    type Err = String;

    /// `3/1`, `0.75/0.25`, `3;1` (llama-bench's separators): one share per device, kept to
    /// two decimals as llama-bench keeps them.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s
            .split(['/', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(format!(
                "tensor split `{s}` names no share (write e.g. `3/1`)"
            ));
        }
        if parts.len() > MAX_DEVICES {
            return Err(format!(
                "tensor split `{s}` has {} shares; llama.cpp splits over at most {MAX_DEVICES} devices",
                parts.len()
            ));
        }
        let mut out = [0u32; MAX_DEVICES];
        for (slot, p) in out.iter_mut().zip(&parts) {
            let v: f64 = p
                .parse()
                .map_err(|_| format!("tensor split `{s}`: `{p}` is not a number"))?;
            if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
                return Err(format!(
                    "tensor split `{s}`: `{p}` is not a share between 0 and 1000000"
                ));
            }
            let hundredths = (v * 100.0).round() as u32;
            if v > 0.0 && hundredths == 0 {
                return Err(format!(
                    "tensor split `{s}`: `{p}` rounds to 0.00 (shares are kept to two decimals, as llama-bench prints them)"
                ));
            }
            *slot = hundredths;
        }
        Ok(Self(out))
    }
}

impl Serialize for TensorSplit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TensorSplit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Tensor buffer-type overrides (llama-bench's and llama-server's `-ot`): `PATTERN=BUFFER`
/// pairs joined by `;`, each putting the tensors whose names match the regular expression
/// into that buffer type (`CPU`, `CUDA0`, `Vulkan0`, …). Empty is none, the default.
///
/// The text is interned (one leaked copy per distinct value, and a run or a database holds
/// a handful), so settings holding it stay `Copy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorOverrides(&'static str);

impl TensorOverrides {
    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// `(pattern, buffer type)` pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        self.0
            .split(';')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
    }
}

fn intern(s: &str) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut texts = TEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&t) = texts.get(s) {
        return t;
    }
    let t: &'static str = Box::leak(s.to_owned().into_boxed_str());
    texts.insert(t);
    t
}

impl fmt::Display for TensorOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "none" } else { self.0 })
    }
}

impl FromStr for TensorOverrides {
    type Err = String;

    /// `blk\.[0-3]\.ffn_.*=CPU;output=CUDA0`; empty or `none` is no override (llama-bench
    /// prints `none`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Self::default());
        }
        if s.contains(',') {
            return Err(format!(
                "tensor override `{s}` holds a `,` (llama-bench separates alternatives with it: give each as its own value)"
            ));
        }
        let mut pairs = Vec::new();
        for p in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match p.split_once('=') {
                Some((pattern, buffer)) if !pattern.is_empty() && !buffer.trim().is_empty() => {
                    pairs.push(format!("{pattern}={}", buffer.trim()));
                }
                _ => {
                    return Err(format!(
                        "tensor override `{p}` is not PATTERN=BUFFER (e.g. `blk\\.0\\..*=CPU`)"
                    ))
                }
            }
        }
        Ok(Self(intern(&pairs.join(";"))))
    }
}

impl Serialize for TensorOverrides {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for TensorOverrides {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The offload settings of one cell beyond `n_gpu_layers`, at llama.cpp's defaults unless
/// a suite says otherwise. They are fixed when a model is loaded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(default)]
pub struct Offload {
    pub split_mode: SplitMode,
    pub main_gpu: u32,
    pub tensor_split: TensorSplit,
    pub overrides: TensorOverrides,
    /// The expert (MoE) weights of the first `n_cpu_moe` layers are kept on the CPU.
    pub n_cpu_moe: u32,
}

impl Offload {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// What tokbench's embedded engine cannot set, as the suite key and the reason: its
    /// bindings (llama-cpp-2) expose no tensor split and no buffer type but the CPU's.
    /// llama-bench and llama-server take both.
    pub fn engine_cannot_place(&self) -> Option<(&'static str, String)> {
        if !self.tensor_split.is_default() {
            return Some((
                "tensor_split",
                format!("the engine cannot split tensors ({})", self.tensor_split),
            ));
        }
        self.overrides
            .pairs()
            .find(|(_, buffer)| *buffer != "CPU")
            .map(|(pattern, buffer)| {
                (
                    "override_tensor",
                    format!("the engine keeps tensors only on `CPU`, not `{pattern}={buffer}`"),
                )
            })
    }

    /// The tensor-name patterns llama.cpp's `--n-cpu-moe N` keeps on the CPU: the expert
    /// weights of layers 0..N (`llm_ffn_block_regex` over `LLM_FFN_EXPS_REGEX`).
    pub fn cpu_moe_patterns(&self) -> Vec<String> {
        (0..self.n_cpu_moe)
            .map(|i| format!("blk\\.{i}\\.ffn_(up|down|gate|gate_up)_(ch|)exps"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_split_keeps_two_decimals_and_prints_as_llama_bench() {
        let ts: TensorSplit = "3/1".parse().unwrap();
        assert_eq!(ts.to_string(), "3.00/1.00");
        let ts: TensorSplit = "0.75;0.25".parse().unwrap();
        assert_eq!(ts.to_string(), "0.75/0.25");
        assert_eq!(ts, "0.75/0.25".parse().unwrap());
        // llama-bench's own output for the default.
        let d: TensorSplit = "0.00".parse().unwrap();
        assert!(d.is_default());
        assert_eq!(d.to_string(), "0.00");
        assert_eq!(d, TensorSplit::default());
        // Trailing zero shares are the same split.
        assert_eq!("1/0".parse::<TensorSplit>().unwrap(), "1".parse().unwrap());
    }

    #[test]
    fn tensor_split_refuses_what_llama_cpp_could_not_take() {
        for (bad, says) in [
            ("", "names no share"),
            ("a/b", "`a` is not a number"),
            ("-1/1", "not a share"),
            ("nan/1", "not a share"),
            ("0.001/1", "rounds to 0.00"),
            (&"1/".repeat(17), "at most 16 devices"),
        ] {
            let e = bad.parse::<TensorSplit>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn overrides_are_pattern_buffer_pairs_and_compare_by_text() {
        let o: TensorOverrides = r"blk\.0\..*=CPU; output=Vulkan0".parse().unwrap();
        assert_eq!(o.as_str(), r"blk\.0\..*=CPU;output=Vulkan0");
        assert_eq!(
            o.pairs().collect::<Vec<_>>(),
            vec![(r"blk\.0\..*", "CPU"), ("output", "Vulkan0")]
        );
        // The same text parsed twice is one interned value.
        let again: TensorOverrides = r"blk\.0\..*=CPU;output=Vulkan0".parse().unwrap();
        assert_eq!(o, again);
        assert!(std::ptr::eq(o.as_str(), again.as_str()));
        assert!("none".parse::<TensorOverrides>().unwrap().is_default());
        assert_eq!(TensorOverrides::default().to_string(), "none");
        for bad in ["blk.0", "=CPU", "blk=", "a=CPU,b=CPU"] {
            assert!(bad.parse::<TensorOverrides>().is_err(), "{bad}");
        }
    }

    #[test]
    fn split_modes_read_llama_bench_words() {
        for m in SplitMode::ALL {
            assert_eq!(m.name().parse::<SplitMode>().unwrap(), m);
        }
        assert_eq!(SplitMode::default(), SplitMode::Layer);
        assert!("rows"
            .parse::<SplitMode>()
            .unwrap_err()
            .contains("none, layer, row or tensor"));
    }

    #[test]
    fn n_cpu_moe_names_the_expert_tensors_of_the_first_layers() {
        let o = Offload {
            n_cpu_moe: 2,
            ..Offload::default()
        };
        assert_eq!(
            o.cpu_moe_patterns(),
            vec![
                r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps",
                r"blk\.1\.ffn_(up|down|gate|gate_up)_(ch|)exps"
            ]
        );
        assert!(Offload::default().is_default());
    }
}
