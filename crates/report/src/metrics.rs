//! Derived metrics: what a result is worth per dollar, per watt and against the memory
//! bandwidth roofline. Missing inputs give `None` ("—" in tables), never 0 and never a
//! division by zero.

use serde::Serialize;
use tokbench_core::ResultPoint;

/// The figures derived from one result. `None` when an input is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Derived {
    /// Bytes read from memory per generated token: the weights without the token-embedding
    /// table plus the KV cache at the test's mean context during generation.
    pub bytes_per_token: Option<f64>,
    /// Generation tok/s per $1,000 of launch MSRP (all devices).
    pub tps_per_1k_usd: Option<f64>,
    /// Generation tok/s per 100 W of TDP (all devices).
    pub tps_per_100w_tdp: Option<f64>,
    /// Generation tok/s per 100 W of measured average power during decode.
    pub tps_per_100w_measured: Option<f64>,
    /// Generated tokens per joule of measured energy (= tok/s ÷ W).
    pub tokens_per_joule: Option<f64>,
    /// decode tok/s × bytes per token ÷ DRAM bandwidth (one device's), 0–1 (can exceed 1
    /// when caches hold part of the model).
    pub roofline_fraction: Option<f64>,
}

/// Derives every figure of one result.
pub fn derive(_point: &ResultPoint) -> Derived {
    Derived::default()
}
