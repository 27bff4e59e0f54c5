//! The one error type of this crate. Parse errors carry the byte offset at which the input
//! stopped making sense and what was expected there.

use std::io;
use std::path::PathBuf;

use crate::types::{GgmlType, ValueType};

/// Everything that can go wrong reading, summarizing, writing or synthesizing a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("i/o error at offset {offset} while reading {what}")]
    Read {
        offset: u64,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("at offset {offset}: expected {needed} bytes for {what}, file ends at {file_size}")]
    Truncated {
        offset: u64,
        needed: u64,
        what: String,
        file_size: u64,
    },
    #[error("at offset 0: bad magic {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error(
        "at offset 4: unsupported gguf version {version} (supported: 2 and 3; \
         a huge value suggests a big-endian file)"
    )]
    UnsupportedVersion { version: u32 },
    #[error("at offset {offset}: {what} count {count} needs at least {min_bytes} bytes, only {remaining} remain")]
    CountTooLarge {
        offset: u64,
        what: String,
        count: u64,
        min_bytes: u128,
        remaining: u64,
    },
    #[error("at offset {offset}: {what} has {count} {unit}, more than the limit of {limit}")]
    OverLimit {
        offset: u64,
        what: String,
        count: u64,
        unit: &'static str,
        limit: u64,
    },
    #[error(
        "at offset {offset}: {what} has {count} items, which would take the file's metadata \
         arrays past {limit} items in total"
    )]
    MetadataTooLarge {
        offset: u64,
        what: String,
        count: u64,
        limit: u64,
    },
    #[error("at offset {offset}: invalid value type id {type_id} for {what}")]
    InvalidValueType {
        offset: u64,
        type_id: u32,
        what: String,
    },
    #[error("at offset {offset}: {what} is not valid utf-8")]
    InvalidUtf8 { offset: u64, what: String },
    #[error("at offset {offset}: arrays nested deeper than {max_depth} levels in {what}")]
    NestingTooDeep {
        offset: u64,
        max_depth: usize,
        what: String,
    },
    #[error("at offset {offset}: duplicate metadata key '{key}'")]
    DuplicateKey { offset: u64, key: String },
    #[error("general.alignment must be a power-of-two u32, found {found}")]
    BadAlignment { found: String },
    #[error("at offset {offset}: duplicate tensor name '{name}'")]
    DuplicateTensor { offset: u64, name: String },
    #[error(
        "at offset {offset}: tensor '{tensor}' has {n_dims} dimensions, at most 4 are allowed"
    )]
    TooManyDims {
        offset: u64,
        tensor: String,
        n_dims: u32,
    },
    #[error("at offset {offset}: tensor '{tensor}' has unknown ggml type id {type_id}")]
    UnknownGgmlType {
        offset: u64,
        tensor: String,
        type_id: u32,
    },
    #[error("tensor '{tensor}' has invalid shape {dims:?} for type {ggml_type}: {reason}")]
    InvalidShape {
        tensor: String,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        reason: &'static str,
    },
    #[error(
        "tensor '{tensor}' data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor '{tensor}' data [{start}, {end}) lies outside the file (size {file_size}); \
         the file is truncated or corrupt"
    )]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u128,
        file_size: u64,
    },
    #[error("missing metadata key '{key}'")]
    MissingKey { key: String },
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        key: String,
        found: ValueType,
        expected: &'static str,
    },
    #[error("metadata key '{key}' has out-of-range value {value}")]
    OutOfRange { key: String, value: String },
    #[error("array '{key}' mixes element types: declared {declared}, item {index} is {found}")]
    MixedArray {
        key: String,
        declared: ValueType,
        index: usize,
        found: ValueType,
    },
    #[error("duplicate {kind} '{name}'")]
    Duplicate { kind: &'static str, name: String },
    #[error("tensor name '{name}' is {len} bytes, ggml allows at most 63")]
    NameTooLong { name: String, len: usize },
    #[error("wrong amount of tensor data for '{tensor}': expected {expected} bytes, got {got}")]
    DataSizeMismatch {
        tensor: String,
        expected: u64,
        got: u64,
    },
    #[error("all tensor data was already written; {extra} more bytes given")]
    TooMuchData { extra: u64 },
    #[error("i/o error writing {what}")]
    Write {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid synthetic model spec")]
    InvalidSpec(#[source] tokbench_core::arch::ArchError),
    #[error("synthetic vocabulary needs at least {min} tokens, spec has {n_vocab}")]
    VocabTooSmall { n_vocab: u32, min: u32 },
}
