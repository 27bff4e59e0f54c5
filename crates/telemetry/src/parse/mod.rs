//! Parsers of what other tools print: pure functions from text to values, so captured real
//! output from machines tokbench does not run on can be tested here.

pub mod amd_smi;
pub mod powermetrics;
pub mod rocm_smi;
