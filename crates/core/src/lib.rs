//! tokbench-core: the domain vocabulary shared by every other crate — architecture specs,
//! quantization presets, the suite configuration (raw TOML → validated matrix), test labels,
//! result statuses and the metric vocabulary — and the facts that must have one definition:
//! what a series is ([`series::SeriesKey`]), the ggml type table ([`ggml::GgmlType`]), the
//! descriptive statistics ([`stats`]) and the monotonic clock ([`clock`]). No I/O beyond
//! reading that clock, no async.

pub mod arch;
pub mod backend;
pub mod bench;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod fit;
pub mod ggml;
pub mod llama_bench;
pub mod offload;
pub mod point;
pub mod quant;
pub mod selector;
pub mod series;
pub mod serving;
pub mod stats;

pub use backend::{BackendKind, BackendSettings, ServeWorkload};
pub use bench::{
    AutoRepetitions, CacheType, EngineParams, MetricSource, ParamSet, ResultStatus, TestSpec,
    UnknownName, Unset,
};
pub use config::{Cell, EngineAxes, ModelSource, Suite, SuiteError, SuiteHardware};
pub use offload::{Offload, SplitMode, TensorOverrides, TensorSplit};
pub use point::{HardwareRef, ModelFacts, ResultPoint};
pub use quant::QuantPreset;
pub use record::{BackendBuild, CellConditions, CellResult, HostInfo, ModelRecord, Repetition};
pub use selector::{BadRunSelector, RunSelector};
pub use series::{
    BackendIdentity, EngineSettings, ModelIdentity, RequestRate, SeriesKey, ServeLoad, Setting,
    SETTINGS,
};
pub mod record;
