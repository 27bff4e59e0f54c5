//! The JSON-lines protocol between the runner and a `tokbench engine` child: one
//! [`EngineJob`] on stdin, a stream of [`EngineEvent`]s on stdout, one per line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokbench_core::record::AllocatedMemory;
use tokbench_core::{CacheType, Offload};

/// Bumped when a message changes shape; the runner refuses a child that speaks another.
pub const PROTOCOL_VERSION: u32 = 1;

/// Environment variable that makes an engine built with the `fault-injection` feature fail
/// on purpose, for fault-injection tests (other builds ignore it):
/// `phase=start|load|warmup|prefill|decode|finish|shutdown,test=ID,rep=N,mode=M` (rep counts from
/// 0). Modes: `kill` (SIGKILL), `exit` (code 3), `abort`, `hang`, `stop` (SIGSTOP),
/// `oom` (grows its memory until stopped), `garbage` (a line that is not an event).
/// `once=PATH`: only the engine process that creates PATH strikes.
pub const FAULT_ENV: &str = "TOKBENCH_ENGINE_FAULT";

/// What the child is asked to do: load one model, run these tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineJob {
    pub protocol: u32,
    pub model_path: PathBuf,
    pub n_gpu_layers: u32,
    pub use_mmap: bool,
    /// Split mode, main GPU, tensor overrides, MoE experts on the CPU; absent at llama.cpp's
    /// defaults (and from older runners' jobs).
    #[serde(default, skip_serializing_if = "Offload::is_default")]
    pub offload: Offload,
    pub tests: Vec<EngineTest>,
}

/// One test of a job: llama-bench's parameters plus our id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineTest {
    /// The runner's id for the test (the cell index); echoed in every event about it.
    pub id: u64,
    pub n_prompt: u32,
    pub n_gen: u32,
    pub n_depth: u32,
    pub repetitions: u32,
    /// Repeat until the mean is known (`repetitions = "auto"`); `repetitions` is then
    /// ignored. Absent from older runners' jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<tokbench_core::AutoRepetitions>,
    pub warmup: bool,
    pub n_threads: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub flash_attn: bool,
    pub type_k: CacheType,
    pub type_v: CacheType,
    /// Seed of the random tokens.
    pub seed: u64,
}

/// One line of the child's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    /// First line: who is speaking.
    Hello {
        protocol: u32,
        /// The engine's version string (`llama-cpp-2 X / llama-cpp-sys-2 Y`).
        version: String,
        /// The accelerator backend compiled in: `cpu`, `cuda`, `vulkan` or `metal`.
        accel: String,
        /// llama.cpp's `llama_print_system_info()` (CPU features it was built for).
        system_info: String,
        /// Devices ggml sees, as `BACKEND:name:description:memory_total_bytes`.
        devices: Vec<String>,
        /// Each device's free memory now, as its backend reports it, in `devices`' order
        /// (absent from older engines).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        devices_free_bytes: Vec<u64>,
    },
    /// The model is loaded.
    Loaded {
        load_ms: f64,
        n_params: u64,
        model_size_bytes: u64,
        n_layer: u32,
        n_vocab: u32,
        rss_bytes: Option<u64>,
        /// Loading, `[start, end]` on the system's monotonic clock (ns): telemetry's load
        /// phase.
        #[serde(default)]
        load_ns: Option<[u64; 2]>,
    },
    /// A test's context was created and the warm-up done.
    TestStarted {
        id: u64,
        context_ms: f64,
        /// The warm-up, as `[start, end]` on the system's monotonic clock (ns), so the
        /// parent's telemetry can attribute samples to it.
        #[serde(default)]
        warmup_ns: Option<[u64; 2]>,
    },
    /// One timed repetition.
    Rep {
        id: u64,
        rep: u32,
        /// Time to process the prompt (all batches), ms.
        prompt_ms: Option<f64>,
        /// Time to generate all `n_gen` tokens, one at a time, ms.
        gen_ms: Option<f64>,
        /// Time of the first generated token's decode, ms (part of `gen_ms`).
        first_token_ms: Option<f64>,
        /// Prefill plus the first generated token, ms (for a pp-only test, one extra
        /// token is decoded after the prompt and not counted in `prompt_ms`).
        ttft_ms: f64,
        /// The prompt's and the generation's windows, `[start, end]` on the system's
        /// monotonic clock (ns): telemetry's prefill and decode phases.
        #[serde(default)]
        prefill_ns: Option<[u64; 2]>,
        #[serde(default)]
        decode_ns: Option<[u64; 2]>,
    },
    /// The test finished; peak resident memory of the engine during it.
    TestFinished {
        id: u64,
        rss_peak_bytes: Option<u64>,
        /// The buffers llama.cpp reported allocating for the model and this test's context.
        #[serde(default)]
        allocated: Option<AllocatedMemory>,
    },
    /// The test could not run; the engine goes on with the next.
    TestFailed { id: u64, error: String },
    /// The job could not run at all (model not loadable, bad job).
    Fatal { error: String },
    /// Last line of a job that ran to the end.
    Done,
}

impl EngineEvent {
    /// One JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("engine events always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_tagged_lines() {
        let ev = EngineEvent::Rep {
            id: 3,
            rep: 1,
            prompt_ms: Some(12.5),
            gen_ms: None,
            first_token_ms: None,
            ttft_ms: 14.0,
            prefill_ns: Some([1_000, 13_501_000]),
            decode_ns: None,
        };
        let line = ev.to_line();
        assert!(line.starts_with("{\"event\":\"rep\""), "{line}");
        assert_eq!(serde_json::from_str::<EngineEvent>(&line).unwrap(), ev);
        // A line from an engine that reports no phase windows still reads.
        let old = r#"{"event":"rep","id":3,"rep":1,"prompt_ms":12.5,"gen_ms":null,"first_token_ms":null,"ttft_ms":14.0}"#;
        match serde_json::from_str::<EngineEvent>(old).unwrap() {
            EngineEvent::Rep { prefill_ns, .. } => assert_eq!(prefill_ns, None),
            other => panic!("{other:?}"),
        }
    }
}
