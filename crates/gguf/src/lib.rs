//! tokbench-gguf: everything tokbench knows about GGUF files.
//!
//! - [`reader`]: a robust GGUF v2/v3 header parser ([`GgufFile::open`], [`parse_bytes`]) that
//!   reads metadata and the tensor table but never tensor data, and reports corrupt input as a
//!   [`GgufError`] naming the byte offset;
//! - [`writer`]: a streaming GGUF v3 writer ([`GgufWriter`]);
//! - [`model_info`]: a model summary from a header ([`ModelInfo::from_gguf`]);
//! - [`fit`]: a file's shape and exact weights for the memory calculator;
//! - [`synth`]: deterministic synthetic F16 models for any [`ArchSpec`] that llama.cpp loads
//!   ([`synth::write_f16`]).
//!
//! [`ArchSpec`]: tokbench_core::arch::ArchSpec

pub mod error;
pub mod fit;
pub mod model_info;
pub mod reader;
pub mod synth;
pub mod types;
pub mod writer;

pub use error::GgufError;
pub use model_info::{FileType, ModelInfo};
pub use reader::{parse_bytes, parse_reader, GgufFile, TensorInfo};
pub use synth::{SynthReport, SynthSpec};
pub use types::{GgmlType, Value, ValueType};
pub use writer::{GgufWriter, TensorDataWriter};
