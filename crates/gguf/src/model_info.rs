//! A model summary built from a GGUF header: hyperparameters from the metadata, sizes from the
//! tensor table, and the llama.cpp file type (`general.file_type`, a `llama_ftype`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::error::GgufError;
use crate::reader::GgufFile;
use crate::types::{GgmlType, Value};

/// A `llama_ftype` value as stored in `general.file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FileType(pub u32);

/// `enum llama_ftype` from the vendored `include/llama.h`, with the `LLAMA_FTYPE_MOSTLY_` /
/// `LLAMA_FTYPE_ALL_` prefix dropped.
const FILE_TYPES: [(u32, &str); 36] = [
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
    (39, "NVFP4"),
    (40, "Q1_0"),
    (41, "Q2_0"),
];

impl FileType {
    /// `LLAMA_FTYPE_MOSTLY_F16`, what synthetic models are written as.
    pub const MOSTLY_F16: FileType = FileType(1);

    /// The short name (`Q4_K_M`, `F16`, ...), or `None` for ids llama.cpp does not define.
    pub fn name(self) -> Option<&'static str> {
        FILE_TYPES
            .iter()
            .find(|(id, _)| *id == self.0)
            .map(|(_, n)| *n)
    }

    /// The file type called `name` (case-insensitive), e.g. `q4_k_m`.
    pub fn from_name(name: &str) -> Option<FileType> {
        FILE_TYPES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(id, _)| FileType(*id))
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown file type {}", self.0),
        }
    }
}

/// What a GGUF header says about the model inside.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name`, if present.
    pub name: Option<String>,
    pub block_count: u32,
    pub embedding_length: u32,
    pub head_count: u32,
    /// `{arch}.attention.head_count_kv`, defaulting to `head_count`.
    pub head_count_kv: u32,
    /// `{arch}.attention.key_length`, defaulting to `embedding_length / head_count`.
    pub head_dim: u32,
    pub context_length: u32,
    pub feed_forward_length: u32,
    /// `{arch}.vocab_size`, else the length of `tokenizer.ggml.tokens`.
    pub vocab_size: u32,
    /// `general.file_type`, if present.
    pub file_type: Option<FileType>,
    /// Sum of the element counts of all tensors.
    pub n_params: u64,
    /// Sum of the data sizes of all tensors (without alignment padding).
    pub tensor_bytes: u64,
    /// How many tensors of each ggml type the file holds.
    pub tensor_type_counts: BTreeMap<GgmlType, u32>,
    /// Bytes of `token_embd.weight`, if present.
    pub token_embd_bytes: Option<u64>,
    /// Bytes of `output.weight`; `None` when the output reuses the embeddings (tied).
    pub output_bytes: Option<u64>,
    pub file_size_bytes: u64,
}

/// A scalar, or the largest item of a per-layer array (llama.cpp accepts either for head and
/// FFN sizes).
fn as_u64_or_max(value: &Value) -> Option<u64> {
    match value {
        Value::Array(_, items) => items
            .iter()
            .map(Value::as_u64)
            .try_fold(0u64, |acc, v| v.map(|v| acc.max(v))),
        scalar => scalar.as_u64(),
    }
}

fn optional_u32(file: &GgufFile, key: &str) -> Result<Option<u32>, GgufError> {
    let Some(value) = file.get(key) else {
        return Ok(None);
    };
    let n = as_u64_or_max(value).ok_or_else(|| GgufError::WrongType {
        key: key.to_owned(),
        found: value.value_type(),
        expected: "unsigned integer",
    })?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| GgufError::OutOfRange {
            key: key.to_owned(),
            value: n.to_string(),
        })
}

fn required_u32(file: &GgufFile, key: &str) -> Result<u32, GgufError> {
    optional_u32(file, key)?.ok_or_else(|| GgufError::MissingKey {
        key: key.to_owned(),
    })
}

fn optional_str<'a>(file: &'a GgufFile, key: &str) -> Result<Option<&'a str>, GgufError> {
    match file.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(GgufError::WrongType {
            key: key.to_owned(),
            found: other.value_type(),
            expected: "string",
        }),
    }
}

impl ModelInfo {
    /// Summarizes `file`. Fails with [`GgufError::MissingKey`] naming the first required key
    /// that is absent (`general.architecture`, `{arch}.block_count`, `{arch}.embedding_length`,
    /// `{arch}.attention.head_count`, `{arch}.context_length`, `{arch}.feed_forward_length`, and
    /// `{arch}.vocab_size` when there is no `tokenizer.ggml.tokens`).
    pub fn from_gguf(file: &GgufFile) -> Result<ModelInfo, GgufError> {
        let architecture = optional_str(file, "general.architecture")?
            .ok_or_else(|| GgufError::MissingKey {
                key: "general.architecture".into(),
            })?
            .to_owned();
        let key = |suffix: &str| format!("{architecture}.{suffix}");
        let name = optional_str(file, "general.name")?.map(str::to_owned);
        let block_count = required_u32(file, &key("block_count"))?;
        let embedding_length = required_u32(file, &key("embedding_length"))?;
        let head_count = required_u32(file, &key("attention.head_count"))?;
        let head_count_kv =
            optional_u32(file, &key("attention.head_count_kv"))?.unwrap_or(head_count);
        let head_dim = match optional_u32(file, &key("attention.key_length"))? {
            Some(d) => d,
            None => embedding_length.checked_div(head_count).unwrap_or(0),
        };
        let context_length = required_u32(file, &key("context_length"))?;
        let feed_forward_length = required_u32(file, &key("feed_forward_length"))?;
        let vocab_size = match optional_u32(file, &key("vocab_size"))? {
            Some(n) => n,
            None => match file.get_array_len("tokenizer.ggml.tokens") {
                Some(n) => u32::try_from(n).map_err(|_| GgufError::OutOfRange {
                    key: "tokenizer.ggml.tokens".into(),
                    value: format!("{n} items"),
                })?,
                None => {
                    return Err(GgufError::MissingKey {
                        key: key("vocab_size"),
                    })
                }
            },
        };
        let file_type = optional_u32(file, "general.file_type")?.map(FileType);

        let mut tensor_type_counts = BTreeMap::new();
        let mut n_params = 0u64;
        let mut tensor_bytes = 0u64;
        for t in &file.tensors {
            *tensor_type_counts.entry(t.ggml_type).or_insert(0u32) += 1;
            n_params = n_params.saturating_add(t.n_elements());
            tensor_bytes = tensor_bytes.saturating_add(t.n_bytes());
        }
        Ok(ModelInfo {
            architecture,
            name,
            block_count,
            embedding_length,
            head_count,
            head_count_kv,
            head_dim,
            context_length,
            feed_forward_length,
            vocab_size,
            file_type,
            n_params,
            tensor_bytes,
            tensor_type_counts,
            token_embd_bytes: file.tensor("token_embd.weight").map(|t| t.n_bytes()),
            output_bytes: file.tensor("output.weight").map(|t| t.n_bytes()),
            file_size_bytes: file.file_size,
        })
    }

    /// The file type's short name (`Q4_K_M`), if `general.file_type` is present and known.
    pub fn file_type_name(&self) -> Option<&'static str> {
        self.file_type.and_then(FileType::name)
    }

    /// Average bits per parameter over all tensors.
    pub fn bits_per_weight(&self) -> f64 {
        if self.n_params == 0 {
            return 0.0;
        }
        self.tensor_bytes as f64 * 8.0 / self.n_params as f64
    }

    /// True if and only if the file has no separate `output.weight` (tied embeddings).
    pub fn tied_embeddings(&self) -> bool {
        self.output_bytes.is_none()
    }

    /// f16 KV-cache bytes per token: `block_count * head_count_kv * head_dim * 2 * 2`.
    /// Saturates at `u64::MAX` for a header whose sizes no real model has (three u32 sizes
    /// can overflow a u64).
    pub fn kv_bytes_per_token_f16(&self) -> u64 {
        u64::from(self.block_count)
            .saturating_mul(u64::from(self.head_count_kv))
            .saturating_mul(u64::from(self.head_dim))
            .saturating_mul(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::parse_bytes;
    use crate::types::ValueType;
    use crate::writer::GgufWriter;

    fn file_with(meta: &[(&str, Value)], tensors: &[(&str, &[u64], GgmlType)]) -> GgufFile {
        let mut w = GgufWriter::new();
        for (k, v) in meta {
            w.add_metadata(*k, v.clone()).unwrap();
        }
        for (name, dims, ty) in tensors {
            w.add_tensor(*name, dims, *ty).unwrap();
        }
        let mut data = w.begin(Vec::new()).unwrap();
        while let Some(n) = data.current_tensor().map(|t| t.n_bytes()) {
            data.write_data(&vec![0u8; n as usize]).unwrap();
        }
        parse_bytes(&data.finish().unwrap()).unwrap()
    }

    fn base_meta() -> Vec<(&'static str, Value)> {
        vec![
            ("general.architecture", Value::String("llama".into())),
            ("llama.block_count", Value::U32(2)),
            ("llama.embedding_length", Value::U32(64)),
            ("llama.attention.head_count", Value::U32(4)),
            ("llama.context_length", Value::U32(128)),
            ("llama.feed_forward_length", Value::U32(256)),
            ("llama.vocab_size", Value::U32(300)),
        ]
    }

    #[test]
    fn file_type_names() {
        assert_eq!(FileType(15).name(), Some("Q4_K_M"));
        assert_eq!(FileType(1).name(), Some("F16"));
        assert_eq!(FileType(0).name(), Some("F32"));
        assert_eq!(FileType(4).name(), None);
        assert_eq!(FileType::from_name("q4_k_m"), Some(FileType(15)));
        assert_eq!(FileType(99).to_string(), "unknown file type 99");
    }

    #[test]
    fn defaults_and_sums() {
        let f = file_with(
            &base_meta(),
            &[
                ("token_embd.weight", &[64, 300], GgmlType::Q8_0),
                ("output_norm.weight", &[64], GgmlType::F32),
            ],
        );
        let info = ModelInfo::from_gguf(&f).unwrap();
        assert_eq!(info.head_count_kv, 4);
        assert_eq!(info.head_dim, 16);
        assert_eq!(info.vocab_size, 300);
        assert_eq!(info.n_params, 64 * 300 + 64);
        assert_eq!(info.tensor_bytes, 2 * 34 * 300 + 256);
        assert_eq!(info.token_embd_bytes, Some(2 * 34 * 300));
        assert!(info.tied_embeddings());
        assert_eq!(info.tensor_type_counts[&GgmlType::Q8_0], 1);
        assert_eq!(info.file_type, None);
        assert_eq!(info.kv_bytes_per_token_f16(), 2 * 4 * 16 * 4);
    }

    #[test]
    fn vocab_size_falls_back_to_token_list() {
        let mut meta = base_meta();
        meta.retain(|(k, _)| *k != "llama.vocab_size");
        meta.push((
            "tokenizer.ggml.tokens",
            Value::string_array(["a", "b", "c"]),
        ));
        meta.push(("general.file_type", Value::U32(7)));
        let info = ModelInfo::from_gguf(&file_with(&meta, &[])).unwrap();
        assert_eq!(info.vocab_size, 3);
        assert_eq!(info.file_type_name(), Some("Q8_0"));
    }

    #[test]
    fn per_layer_arrays_use_the_maximum() {
        let mut meta = base_meta();
        meta.retain(|(k, _)| *k != "llama.feed_forward_length");
        meta.push((
            "llama.feed_forward_length",
            Value::Array(ValueType::U32, vec![Value::U32(128), Value::U32(512)]),
        ));
        let info = ModelInfo::from_gguf(&file_with(&meta, &[])).unwrap();
        assert_eq!(info.feed_forward_length, 512);
    }

    #[test]
    fn missing_keys_are_named() {
        for missing in [
            "general.architecture",
            "llama.block_count",
            "llama.embedding_length",
            "llama.attention.head_count",
            "llama.context_length",
            "llama.feed_forward_length",
            "llama.vocab_size",
        ] {
            let mut meta = base_meta();
            meta.retain(|(k, _)| *k != missing);
            let err = ModelInfo::from_gguf(&file_with(&meta, &[])).unwrap_err();
            assert!(
                matches!(&err, GgufError::MissingKey { key } if key == missing),
                "{missing}: {err}"
            );
            assert!(err.to_string().contains(missing));
        }
    }

    #[test]
    fn wrong_types_are_named() {
        let mut meta = base_meta();
        meta.retain(|(k, _)| *k != "llama.block_count");
        meta.push(("llama.block_count", Value::String("two".into())));
        let err = ModelInfo::from_gguf(&file_with(&meta, &[])).unwrap_err();
        assert!(err.to_string().contains("llama.block_count"), "{err}");
    }
}
