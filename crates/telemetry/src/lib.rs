//! tokbench-telemetry: what the hardware did while a backend worked — device memory, the
//! backend's own memory, power and energy — sampled on one thread and split by phase, with
//! every metric a source cannot see named together with the reason.
//!
//! - [`metric`]: the vocabulary ([`Metric`], [`Sample`], [`Unavailable`]).
//! - [`source`]: the [`Source`] trait and [`detect`]/[`probe_all`].
//! - sources: [`nvml`], [`amdgpu`], [`smi`] (amd-smi, rocm-smi), [`rapl`], [`powermetrics`],
//!   [`procfs`].
//! - [`sampler`]: the sampling thread; [`phase`]: per-phase power, energy and memory.
//! - [`clock`]: `CLOCK_MONOTONIC` nanoseconds, shared with the engine child.
//! - [`throttle`]: the CPU governor and throttle counters, and the GPU's clock-limiting
//!   reasons, that say whether a cell ran on a throttling machine.

pub mod amdgpu;
pub mod clock;
pub mod fs;
pub mod metric;
pub mod nvml;
pub mod nvml_replay;
pub mod parse;
pub mod phase;
pub mod powermetrics;
pub mod procfs;
pub mod rapl;
pub mod sampler;
pub mod smi;
pub mod source;
pub mod throttle;

pub use clock::{monotonic_ns, Clock, MonotonicClock};
pub use metric::{Availability, Metric, Sample, Unavailable, UnavailableKind};
pub use phase::{summarize, summarize_phase, EnergyMethod, Phase, PhaseSummary, PhaseWindow};
pub use sampler::{Sampler, SamplerConfig};
pub use source::{detect, probe_all, Detected, Source, SourceReport};
