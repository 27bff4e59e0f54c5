//! What a run produces, as plain data: the host it ran on, the backend build, the model,
//! and each cell's result with its repetitions. The runner fills these; the store writes
//! them; reports read them back. No I/O here.

use serde::{Deserialize, Serialize};

use crate::bench::{EngineParams, MetricSource, ResultStatus, TestSpec};
use crate::stats::present_mean_sd;

/// The machine as detected.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub cpu_cores_logical: u32,
    pub cpu_cores_physical: Option<u32>,
    pub memory_total_bytes: Option<u64>,
    pub os: String,
    pub kernel: Option<String>,
    pub arch: String,
    /// GPUs seen, e.g. `NVIDIA H200 (driver 550.54)`; empty when none.
    pub gpus: Vec<String>,
}

impl HostInfo {
    /// A stable identity for the host: the same machine gives the same key run after run.
    pub fn identity(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.hostname,
            self.cpu_model,
            self.cpu_cores_logical,
            self.memory_total_bytes.unwrap_or(0),
            self.gpus.join(";")
        )
    }
}

/// A backend as built: what is measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BackendBuild {
    /// `engine`, `llama-bench`, `llama-server`, `vllm`, `ollama`, `openai`.
    pub name: String,
    pub version: String,
    pub commit: Option<String>,
    /// Accelerator backend compiled in: `cpu`, `cuda`, `vulkan`, `metal`, ….
    pub accel: String,
    /// Build flags / CPU features it was compiled for.
    pub flags: String,
}

/// A model file as measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Display name (`synth:tiny`, or the file name).
    pub name: String,
    pub architecture: String,
    /// Quantization name (`Q4_K_M`), from the preset or the file's `general.file_type`.
    pub quant: String,
    pub n_params: u64,
    pub file_bytes: u64,
    /// sha256 of the file (or of the synthesis key for a synthesized model), hex.
    pub file_sha256: String,
    /// Architecture shape, as JSON (layers, embedding, heads, …).
    pub shape_json: String,
    /// `synth:PRESET:SEED` or the path it was read from.
    pub origin: String,
}

/// One timed repetition.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Repetition {
    pub prefill_tps: Option<f64>,
    pub decode_tps: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub prompt_ms: Option<f64>,
    pub gen_ms: Option<f64>,
}

/// The memory llama.cpp reports allocating (its `… buffer size = X MiB` log lines), summed
/// over devices: what the fit calculator predicts, measured without the process around it;
/// and where it went: each buffer by device, the devices used and the layers offloaded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocatedMemory {
    /// The weights' buffers (CPU_Mapped, CUDA0, …).
    pub model_bytes: Option<u64>,
    /// The CPU backend's repacked (interleaved) second copy of some quantized weight
    /// matrices (`CPU_REPACK`), on top of `model_bytes`.
    #[serde(default)]
    pub repack_bytes: Option<u64>,
    /// The KV cache.
    pub kv_bytes: Option<u64>,
    /// The compute (graph scratch) buffers.
    pub compute_bytes: Option<u64>,
    /// The logits/embeddings output buffer.
    pub output_bytes: Option<u64>,
    /// Every buffer llama.cpp reported, in its order: where the bytes above landed, device
    /// by device (`CPU_Mapped`, `Vulkan0`, `CUDA0`, `Vulkan_Host`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buffers: Vec<BufferBytes>,
    /// The devices llama.cpp loaded the model on (its `using device …` lines); none on a
    /// CPU-only build, which names none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceUse>,
    /// Layers llama.cpp put on a GPU, of the ones it could (its `offloaded N/M layers to
    /// GPU`, the output layer counted as one): the real number where `n_gpu_layers` asked
    /// for more than the model has. `None` where llama.cpp does not say (a build without GPU
    /// offload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_offloaded: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_total: Option<u32>,
    /// What each accelerator said of its own memory (ggml's `ggml_backend_dev_memory`),
    /// read by the engine before the model was loaded, after, and at the end of the test
    /// with its context still allocated; empty where there is no accelerator or the
    /// backend is not the engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_memory: Vec<DeviceMemory>,
}

/// One accelerator's free and total memory as its backend reports them, at three moments
/// of one engine test.
///
/// What "free" means is the backend's: CUDA's is the whole device's (every process's
/// allocations count), Vulkan's is the calling process's budget less its own usage
/// (`VK_EXT_memory_budget`), and a Vulkan driver without that extension (lavapipe, older
/// drivers) reports each heap's whole size as free, whatever is allocated. Hence
/// [`DeviceMemory::usage_visible`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// The backend's name for it (`Vulkan0`, `CUDA0`).
    pub name: String,
    pub total_bytes: u64,
    pub free_before_load: u64,
    pub free_after_load: u64,
    /// At the end of the test's repetitions, its KV cache and compute buffers still
    /// allocated; `None` until then (and where the test failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_in_test: Option<u64>,
}

impl DeviceMemory {
    /// Whether the readings can show this process's use at all: not where every one of
    /// them says the whole device is free, which is what a driver that tracks no usage
    /// reports (a real device with a budget always holds some back, and the engine's own
    /// context takes some).
    pub fn usage_visible(&self) -> bool {
        [
            Some(self.free_before_load),
            Some(self.free_after_load),
            self.free_in_test,
        ]
        .into_iter()
        .flatten()
        .any(|free| free != self.total_bytes)
    }

    /// Device memory the model's load took as the device saw it (free before less free
    /// after); `None` where usage is not visible. Saturates at 0 where something else
    /// freed memory meanwhile (CUDA's figure counts other processes).
    pub fn used_by_load(&self) -> Option<u64> {
        self.usage_visible()
            .then(|| self.free_before_load.saturating_sub(self.free_after_load))
    }

    /// Device memory the load and the test's context took together; `None` where usage is
    /// not visible or the test did not finish.
    pub fn used_in_test(&self) -> Option<u64> {
        let free = self.free_in_test?;
        self.usage_visible()
            .then(|| self.free_before_load.saturating_sub(free))
    }
}

/// One buffer llama.cpp allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferBytes {
    /// The buffer type as llama.cpp names it: a device (`Vulkan0`, `CUDA0`), the host
    /// (`CPU`, `CPU_Mapped`, `CPU_REPACK`) or a device's pinned host memory (`Vulkan_Host`).
    pub buffer: String,
    /// `model`, `KV`, `compute` or `output`.
    pub kind: String,
    pub bytes: u64,
}

/// A device llama.cpp used, and its free memory when the model was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceUse {
    /// The backend's name for it (`Vulkan0`, `CUDA0`).
    pub name: String,
    /// What the device says it is (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`).
    pub description: String,
    pub free_bytes: Option<u64>,
}

/// What telemetry saw in one phase of a cell (all its windows together: every
/// repetition's prefill, say). `None` where the machine cannot measure it (the reason is in
/// [`CellTelemetry::unavailable`]), never 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PhaseFigures {
    /// `warmup`, `prefill`, `decode`, …
    pub phase: String,
    pub n_samples: u32,
    /// The largest gap between consecutive samples, ms.
    pub max_gap_ms: Option<f64>,
    pub power_avg_w: Option<f64>,
    pub power_peak_w: Option<f64>,
    pub energy_j: Option<f64>,
    /// `counter` (the device's energy counter at the window edges) or `integrated` (power
    /// samples integrated over time).
    pub energy_method: Option<String>,
    /// Tokens processed in the phase (prompt tokens for prefill, generated for decode).
    pub tokens: Option<u64>,
    pub tokens_per_joule: Option<f64>,
    pub vram_steady_bytes: Option<u64>,
    pub vram_peak_bytes: Option<u64>,
    pub vram_proc_peak_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    /// `too_short`, `counter_and_integral_disagree`, …
    pub flags: Vec<String>,
}

/// One raw telemetry sample of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    /// Since the start of the cell, ms (monotonic clock).
    pub t_ms: f64,
    /// The phase the sample fell in (`warmup`, `prefill`, `decode`, `other`).
    pub phase: String,
    /// `power_w`, `vram_used_bytes`, `rss_bytes`, …
    pub metric: String,
    pub value: f64,
    /// `nvml`, `procfs`, `rapl`, …
    pub source: String,
}

/// What telemetry recorded for a cell.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CellTelemetry {
    pub phases: Vec<PhaseFigures>,
    pub samples: Vec<TelemetrySample>,
    /// Metrics this machine cannot measure and why: `power_w: nvml: no device (…)`.
    pub unavailable: Vec<String>,
}

impl CellTelemetry {
    /// The figures of `phase`, if it was recorded.
    pub fn phase(&self, phase: &str) -> Option<&PhaseFigures> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// One cell's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub cell_index: usize,
    pub test: TestSpec,
    pub params: EngineParams,
    pub status: ResultStatus,
    pub error: Option<String>,
    pub metric_source: MetricSource,
    pub load_ms: Option<f64>,
    pub rss_peak_bytes: Option<u64>,
    /// What llama.cpp said it allocated (engine results only).
    #[serde(default)]
    pub allocated: Option<AllocatedMemory>,
    /// Power, energy and memory per phase, when telemetry ran.
    #[serde(default)]
    pub telemetry: Option<CellTelemetry>,
    pub repetitions: Vec<Repetition>,
    /// A server backend's per-request timings and their summary (`None` for engines).
    #[serde(default)]
    pub serving: Option<Box<crate::serving::ServingResult>>,
    /// The backend's own record of the cell, every field it reported, as JSON
    /// (llama-bench's result object; llama-server's `/props`).
    #[serde(default)]
    pub backend_json: Option<String>,
    /// Tail of the backend's log, kept with failed results.
    pub log_tail: Option<String>,
    pub started_at: String,
    pub duration_ms: f64,
    /// What the machine was doing to its clocks during the cell (`None`: not recorded,
    /// as for imported results).
    #[serde(default)]
    pub conditions: Option<CellConditions>,
}

/// The machine's clock state around one cell: what could be read of the CPU frequency
/// governor, and whether the CPU or GPU throttled while the cell ran.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CellConditions {
    /// The CPUs' frequency governor (`performance`, `powersave`, …; several, comma
    /// separated, when CPUs differ), when the kernel exposes one.
    pub cpu_governor: Option<String>,
    /// Whether the machine throttled during the cell: `Some(false)` only when a throttle
    /// counter or reason could be read and showed none; `None` when nothing could be read.
    pub throttled: Option<bool>,
    /// What throttled and how it was seen (`cpu: 12 thermal throttle events`, `gpu: sw
    /// power cap, hw thermal slowdown`); `None` when nothing did.
    pub throttle: Option<String>,
}

/// Whether a figure is noisy, from a result's rates: the generation rate's CV where there is
/// one, else the prompt rate's, against [`NOISY_CV`](crate::stats::NOISY_CV). `None` when
/// the headline rate has no sd (one repetition) or is not positive.
pub fn noisy(
    prefill_tps: Option<f64>,
    prefill_tps_sd: Option<f64>,
    decode_tps: Option<f64>,
    decode_tps_sd: Option<f64>,
) -> Option<bool> {
    let (mean, sd) = match decode_tps {
        Some(m) => (m, decode_tps_sd?),
        None => (prefill_tps?, prefill_tps_sd?),
    };
    (mean > 0.0).then(|| sd / mean > crate::stats::NOISY_CV || sd.is_nan())
}

/// What a result row stores of its repetitions: each rate's mean and sample sd over the
/// repetitions that measured it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RepetitionSummary {
    pub prefill_tps: Option<f64>,
    pub prefill_tps_sd: Option<f64>,
    pub decode_tps: Option<f64>,
    pub decode_tps_sd: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub ttft_ms_sd: Option<f64>,
}

impl CellResult {
    /// Whether the cell's headline figure (generation speed where the test generates, else
    /// prompt speed) scattered past [`NOISY_CV`](crate::stats::NOISY_CV) over its
    /// repetitions; `None` when it cannot be told (fewer than two repetitions, no figure).
    pub fn noisy(&self) -> Option<bool> {
        let s = self.summary();
        noisy(
            s.prefill_tps,
            s.prefill_tps_sd,
            s.decode_tps,
            s.decode_tps_sd,
        )
    }

    /// The mean and sd of each metric over the repetitions.
    pub fn summary(&self) -> RepetitionSummary {
        let reps = &self.repetitions;
        let (prefill_tps, prefill_tps_sd) = present_mean_sd(reps.iter().map(|r| r.prefill_tps));
        let (decode_tps, decode_tps_sd) = present_mean_sd(reps.iter().map(|r| r.decode_tps));
        let (ttft_ms, ttft_ms_sd) = present_mean_sd(reps.iter().map(|r| r.ttft_ms));
        RepetitionSummary {
            prefill_tps,
            prefill_tps_sd,
            decode_tps,
            decode_tps_sd,
            ttft_ms,
            ttft_ms_sd,
        }
    }
}

impl Repetition {
    /// From engine timings: prefill over the prompt, decode over the tokens after the
    /// first (the metric vocabulary's definition), TTFT as measured.
    pub fn from_timings(
        test: &TestSpec,
        prompt_ms: Option<f64>,
        gen_ms: Option<f64>,
        first_token_ms: Option<f64>,
        ttft_ms: Option<f64>,
    ) -> Repetition {
        let prefill_tps = prompt_ms
            .filter(|ms| *ms > 0.0 && test.n_prompt > 0)
            .map(|ms| f64::from(test.n_prompt) / (ms / 1e3));
        let decode_tps = match (gen_ms, first_token_ms) {
            (Some(g), Some(f)) if test.n_gen > 1 && g > f => {
                Some(f64::from(test.n_gen - 1) / ((g - f) / 1e3))
            }
            (Some(g), _) if test.n_gen == 1 && g > 0.0 => Some(1.0 / (g / 1e3)),
            _ => None,
        };
        Repetition {
            prefill_tps,
            decode_tps,
            ttft_ms,
            prompt_ms,
            gen_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_metric_vocabulary() {
        let t = TestSpec {
            n_prompt: 512,
            n_gen: 128,
            n_depth: 0,
        };
        // 512 tokens in 256 ms = 2000 t/s; 127 tokens after the first in 1270 - 10 ms.
        let r = Repetition::from_timings(&t, Some(256.0), Some(1270.0), Some(10.0), Some(266.0));
        assert!((r.prefill_tps.unwrap() - 2000.0).abs() < 1e-9);
        assert!((r.decode_tps.unwrap() - 127.0 / 1.26).abs() < 1e-9);
        let pp = TestSpec {
            n_prompt: 512,
            n_gen: 0,
            n_depth: 0,
        };
        let r = Repetition::from_timings(&pp, Some(256.0), None, None, Some(260.0));
        assert_eq!(r.decode_tps, None);
        assert_eq!(r.ttft_ms, Some(260.0));
    }

    #[test]
    fn device_usage_is_read_only_where_the_device_shows_it() {
        const MIB: u64 = 1 << 20;
        // lavapipe: no VK_EXT_memory_budget, every heap reported whole and free.
        let mut lavapipe = DeviceMemory {
            name: "Vulkan0".into(),
            total_bytes: 2048 * MIB,
            free_before_load: 2048 * MIB,
            free_after_load: 2048 * MIB,
            free_in_test: Some(2048 * MIB),
        };
        assert!(!lavapipe.usage_visible());
        assert_eq!(lavapipe.used_by_load(), None);
        assert_eq!(lavapipe.used_in_test(), None);
        // One reading that moved is enough to show usage.
        lavapipe.free_in_test = Some(2000 * MIB);
        assert!(lavapipe.usage_visible());
        assert_eq!(lavapipe.used_in_test(), Some(48 * MIB));
        // A CUDA device: free counts every process, and another one freed memory during
        // the load; the load's use is then 0, not a wrapped u64.
        let cuda = DeviceMemory {
            name: "CUDA0".into(),
            total_bytes: 143_771 * MIB,
            free_before_load: 140_000 * MIB,
            free_after_load: 141_000 * MIB,
            free_in_test: Some(139_500 * MIB),
        };
        assert_eq!(cuda.used_by_load(), Some(0));
        assert_eq!(cuda.used_in_test(), Some(500 * MIB));
        let unfinished = DeviceMemory {
            free_in_test: None,
            ..cuda
        };
        assert_eq!(unfinished.used_in_test(), None);
        // Absent from older records, and left out of new ones where there is none.
        let old: AllocatedMemory = serde_json::from_str(
            r#"{"model_bytes":1,"kv_bytes":null,"compute_bytes":null,"output_bytes":null}"#,
        )
        .unwrap();
        assert!(old.device_memory.is_empty());
        assert!(!serde_json::to_string(&old)
            .unwrap()
            .contains("device_memory"));
    }
}
