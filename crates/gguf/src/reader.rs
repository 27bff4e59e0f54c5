//! GGUF v2/v3 header reader: magic, version, metadata and the tensor table. Tensor data is never
//! read; only its placement is checked against the file size.
//!
//! Every read is checked against the bytes that remain before it happens, so truncated or
//! corrupt input yields a [`GgufError`] naming the offset and what was expected there — never a
//! panic, and never an allocation sized by an untrusted count.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::Path;

use crate::error::GgufError;
use crate::types::{GgmlType, Value, ValueType};

/// The file magic, `GGUF` in ASCII.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// Longest metadata string accepted (tokenizer JSON blobs are a few MB).
const MAX_STRING_BYTES: u64 = 256 << 20;
/// Most items accepted in one metadata array (the largest vocabularies are ~262k tokens).
const MAX_ARRAY_ITEMS: u64 = 16 << 20;
/// Most metadata array items accepted in the whole file, nested ones included. Each item
/// is a 32-byte [`Value`] in memory from as little as one byte of file, so without a
/// total a file of many large `u8` arrays would cost 32 times its size; with it, metadata
/// items cost at most 512 MiB whatever the file (real models hold under 2M items).
pub const MAX_METADATA_ITEMS: u64 = 16 << 20;
/// Deepest array nesting accepted (llama.cpp itself accepts none).
const MAX_ARRAY_DEPTH: usize = 8;
/// Initial capacity cap for vectors whose final length comes from the file.
const PREALLOC_CAP: u64 = 4096;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, fastest-varying first: `dims[0]` is the row length (ggml `ne[0]`).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the tensor data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements: the product of the dimensions (1 for zero dimensions). Saturates
    /// instead of overflowing; tensors from the reader never overflow.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Bytes of tensor data: `n_elements / block_size * type_size`. Saturates instead of
    /// overflowing; tensors from the reader never overflow.
    pub fn n_bytes(&self) -> u64 {
        (self.n_elements() / self.ggml_type.block_size()).saturating_mul(self.ggml_type.type_size())
    }

    /// Row length in elements (`dims[0]`, or 1 for a zero-dimensional tensor).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    /// Metadata in file order; keys are unique.
    pub metadata: Vec<(String, Value)>,
    /// The tensor table in file order; names are unique.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufFile {
    /// Reads the header of the GGUF file at `path` through a buffered reader; tensor data is not
    /// read.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let open_err = |source| GgufError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let file_size = file.metadata().map_err(open_err)?.len();
        parse_reader(BufReader::with_capacity(1 << 20, file), file_size)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `key` as an unsigned integer (any integer type holding a non-negative value).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// `key` as a `u32` (any integer type holding a value that fits).
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        u32::try_from(self.get_u64(key)?).ok()
    }

    /// `key` as a signed integer (any integer type holding a value that fits).
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    /// `key` as a float (`f32` or `f64`).
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    /// `key` as a bool.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The items of the array stored under `key`.
    pub fn get_array(&self, key: &str) -> Option<&[Value]> {
        self.get(key)?.as_array()
    }

    /// The length of the array stored under `key`.
    pub fn get_array_len(&self, key: &str) -> Option<usize> {
        self.get_array(key).map(<[Value]>::len)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute byte range of `tensor`'s data in the file.
    pub fn tensor_file_range(&self, tensor: &TensorInfo) -> Range<u64> {
        let start = self.data_offset.saturating_add(tensor.offset);
        start..start.saturating_add(tensor.n_bytes())
    }
}

/// Parses a complete GGUF file held in memory (tests, fuzzing, small files).
pub fn parse_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    parse_reader(bytes, bytes.len() as u64)
}

/// Parses a GGUF header from `reader`, positioned at the start of a file of `file_size` bytes.
/// Reads only the header; `file_size` bounds every length and checks tensor placement.
pub fn parse_reader<R: Read>(reader: R, file_size: u64) -> Result<GgufFile, GgufError> {
    let mut p = Parser {
        r: reader,
        pos: 0,
        size: file_size,
        items_left: MAX_METADATA_ITEMS,
    };
    p.parse()
}

struct Parser<R> {
    r: R,
    pos: u64,
    size: u64,
    /// Metadata array items that may still be decoded ([`MAX_METADATA_ITEMS`] in all).
    items_left: u64,
}

impl<R: Read> Parser<R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                offset: self.pos,
                needed: n,
                what: what(),
                file_size: self.size,
            });
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &dyn Fn() -> String) -> Result<(), GgufError> {
        let n = buf.len() as u64;
        self.need(n, what)?;
        self.r.read_exact(buf).map_err(|source| GgufError::Read {
            offset: self.pos,
            what: what(),
            source,
        })?;
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a length-prefixed string's raw bytes.
    fn string_bytes(&mut self, what: &dyn Fn() -> String) -> Result<Vec<u8>, GgufError> {
        let len_offset = self.pos;
        let len = self.u64(&|| format!("length of {}", what()))?;
        self.need(len, what)?;
        if len > MAX_STRING_BYTES {
            return Err(GgufError::OverLimit {
                offset: len_offset,
                what: what(),
                count: len,
                unit: "bytes",
                limit: MAX_STRING_BYTES,
            });
        }
        // `len` is bounded by both the remaining input and MAX_STRING_BYTES.
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// A string that must be valid UTF-8 (keys, tensor names).
    fn strict_string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let offset = self.pos;
        let bytes = self.string_bytes(what)?;
        String::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 {
            offset,
            what: what(),
        })
    }

    /// A string value; invalid UTF-8 is replaced rather than rejected, as some converted
    /// vocabularies carry partial byte sequences.
    fn lossy_string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let bytes = self.string_bytes(what)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn value_type(&mut self, what: &dyn Fn() -> String) -> Result<ValueType, GgufError> {
        let offset = self.pos;
        let id = self.u32(&|| format!("type of {}", what()))?;
        ValueType::from_id(id).ok_or_else(|| GgufError::InvalidValueType {
            offset,
            type_id: id,
            what: what(),
        })
    }

    /// Checks that `count` items of at least `min_item_bytes` each can fit in what remains.
    fn check_count(
        &self,
        offset: u64,
        count: u64,
        min_item_bytes: u64,
        what: &dyn Fn() -> String,
    ) -> Result<(), GgufError> {
        let min_bytes = u128::from(count) * u128::from(min_item_bytes);
        if min_bytes > u128::from(self.remaining()) {
            return Err(GgufError::CountTooLarge {
                offset,
                what: what(),
                count,
                min_bytes,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn value(
        &mut self,
        ty: ValueType,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            // Any non-zero byte is true, as in C.
            ValueType::Bool => Value::Bool(self.array::<1>(what)?[0] != 0),
            ValueType::String => Value::String(self.lossy_string(what)?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestingTooDeep {
                        offset: self.pos,
                        max_depth: MAX_ARRAY_DEPTH,
                        what: what(),
                    });
                }
                let elem_type = self.value_type(&|| format!("elements of {}", what()))?;
                let count_offset = self.pos;
                let count = self.u64(&|| format!("item count of {}", what()))?;
                let items_what = || format!("{elem_type} array {}", what());
                self.check_count(
                    count_offset,
                    count,
                    elem_type.min_encoded_size(),
                    &items_what,
                )?;
                if count > MAX_ARRAY_ITEMS {
                    return Err(GgufError::OverLimit {
                        offset: count_offset,
                        what: items_what(),
                        count,
                        unit: "items",
                        limit: MAX_ARRAY_ITEMS,
                    });
                }
                if count > self.items_left {
                    return Err(GgufError::MetadataTooLarge {
                        offset: count_offset,
                        what: items_what(),
                        count,
                        limit: MAX_METADATA_ITEMS,
                    });
                }
                self.items_left -= count;
                let mut items = Vec::with_capacity(count.min(PREALLOC_CAP) as usize);
                for i in 0..count {
                    items.push(
                        self.value(elem_type, depth + 1, &|| format!("item {i} of {}", what()))?,
                    );
                }
                Value::Array(elem_type, items)
            }
        })
    }

    fn parse(&mut self) -> Result<GgufFile, GgufError> {
        let magic: [u8; 4] = self.array(&|| "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = self.u32(&|| "version".into())?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let tensor_count_offset = self.pos;
        let tensor_count = self.u64(&|| "tensor count".into())?;
        let kv_count_offset = self.pos;
        let kv_count = self.u64(&|| "metadata key-value count".into())?;
        // Smallest key-value pair: 8-byte key length + 4-byte type + 1-byte value.
        self.check_count(kv_count_offset, kv_count, 13, &|| {
            "metadata key-value pairs".into()
        })?;

        let mut metadata = Vec::with_capacity(kv_count.min(PREALLOC_CAP) as usize);
        let mut seen_keys = HashSet::new();
        for i in 0..kv_count {
            let key_offset = self.pos;
            let key = self.strict_string(&|| format!("key of metadata pair {i}"))?;
            if !seen_keys.insert(key.clone()) {
                return Err(GgufError::DuplicateKey {
                    offset: key_offset,
                    key,
                });
            }
            let what = || format!("value of '{key}'");
            let ty = self.value_type(&what)?;
            let value = self.value(ty, 0, &what)?;
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
            Some((_, other)) => {
                return Err(GgufError::BadAlignment {
                    found: format!("{other:?}"),
                })
            }
        };

        // Smallest tensor info: 8-byte name length + 4-byte n_dims + 4-byte type + 8-byte offset.
        self.check_count(tensor_count_offset, tensor_count, 24, &|| {
            "tensor infos".into()
        })?;
        let mut tensors = Vec::with_capacity(tensor_count.min(PREALLOC_CAP) as usize);
        let mut seen_names = HashSet::new();
        for i in 0..tensor_count {
            tensors.push(self.tensor_info(i, &mut seen_names)?);
        }

        // llama.cpp aligns the data section only when there are tensors.
        let data_offset = if tensor_count > 0 {
            self.pos.div_ceil(alignment).saturating_mul(alignment)
        } else {
            self.pos
        };

        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(GgufError::MisalignedTensor {
                    tensor: t.name.clone(),
                    offset: t.offset,
                    alignment,
                });
            }
            let start = u128::from(data_offset) + u128::from(t.offset);
            let end = start + u128::from(t.n_bytes());
            if end > u128::from(self.size) {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    start: data_offset.saturating_add(t.offset),
                    end,
                    file_size: self.size,
                });
            }
        }

        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_size: self.size,
        })
    }

    fn tensor_info(
        &mut self,
        index: u64,
        seen_names: &mut HashSet<String>,
    ) -> Result<TensorInfo, GgufError> {
        let name_offset = self.pos;
        let name = self.strict_string(&|| format!("name of tensor {index}"))?;
        if !seen_names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor {
                offset: name_offset,
                name,
            });
        }
        let dims_offset = self.pos;
        let n_dims = self.u32(&|| format!("dimension count of tensor '{name}'"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                offset: dims_offset,
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(self.u64(&|| format!("dimension {d} of tensor '{name}'"))?);
        }
        let type_offset = self.pos;
        let type_id = self.u32(&|| format!("ggml type of tensor '{name}'"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownGgmlType {
            offset: type_offset,
            tensor: name.clone(),
            type_id,
        })?;
        let offset = self.u64(&|| format!("data offset of tensor '{name}'"))?;

        let invalid = |reason| GgufError::InvalidShape {
            tensor: name.clone(),
            dims: dims.clone(),
            ggml_type,
            reason,
        };
        // ggml stores dimensions as int64_t, so each and their product must fit in i64.
        let max = i64::MAX as u64;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d).filter(|&n| n <= max))
            .filter(|_| dims.iter().all(|&d| d <= max))
            .ok_or_else(|| invalid("element count overflows int64"))?;
        let row_len = dims.first().copied().unwrap_or(1);
        if row_len % ggml_type.block_size() != 0 {
            return Err(invalid("row length is not a multiple of the block size"));
        }
        (n_elements / ggml_type.block_size())
            .checked_mul(ggml_type.type_size())
            .ok_or_else(|| invalid("byte size overflows"))?;

        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::writer::GgufWriter;

    /// A small valid file with every value type, a nested and an empty array, and tensors whose
    /// data ends exactly at the end of the file (so every strict prefix is truncated).
    fn sample_file() -> Vec<u8> {
        let mut w = GgufWriter::new();
        let meta = [
            ("general.architecture", Value::String("llama".into())),
            ("t.u8", Value::U8(1)),
            ("t.i8", Value::I8(-2)),
            ("t.u16", Value::U16(3)),
            ("t.i16", Value::I16(-4)),
            ("t.u32", Value::U32(5)),
            ("t.i32", Value::I32(-6)),
            ("t.f32", Value::F32(0.5)),
            ("t.bool", Value::Bool(true)),
            ("t.u64", Value::U64(1 << 40)),
            ("t.i64", Value::I64(-(1 << 40))),
            ("t.f64", Value::F64(0.25)),
            ("t.strs", Value::string_array(["a", "bc", ""])),
            ("t.empty", Value::Array(ValueType::I32, vec![])),
            (
                "t.nested",
                Value::Array(
                    ValueType::Array,
                    vec![
                        Value::Array(ValueType::U8, vec![Value::U8(1), Value::U8(2)]),
                        Value::Array(ValueType::String, vec![Value::String("x".into())]),
                    ],
                ),
            ),
        ];
        for (k, v) in meta {
            w.add_metadata(k, v).unwrap();
        }
        w.add_tensor("a", &[8, 2], GgmlType::F16).unwrap();
        w.add_tensor("b", &[32], GgmlType::Q8_0).unwrap();
        w.add_tensor("c", &[16], GgmlType::F32).unwrap();
        let mut data = w.begin(Vec::new()).unwrap();
        for n in [32usize, 34, 64] {
            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            data.write_data(&bytes).unwrap();
        }
        data.finish().unwrap()
    }

    struct Raw(Vec<u8>);

    impl Raw {
        fn header(tensors: u64, kvs: u64) -> Raw {
            let mut r = Raw(b"GGUF".to_vec());
            r.u32(3).u64(tensors).u64(kvs);
            r
        }
        fn u32(&mut self, v: u32) -> &mut Raw {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn u64(&mut self, v: u64) -> &mut Raw {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn str(&mut self, s: &str) -> &mut Raw {
            self.u64(s.len() as u64);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn pad_to(&mut self, len: usize) -> &mut Raw {
            self.0.resize(len, 0);
            self
        }
    }

    fn err(bytes: &[u8]) -> GgufError {
        parse_bytes(bytes).expect_err("expected a parse error")
    }

    #[test]
    fn sample_parses() {
        let bytes = sample_file();
        let f = parse_bytes(&bytes).unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.metadata.len(), 15);
        assert_eq!(f.alignment, 32);
        assert_eq!(f.data_offset % 32, 0);
        assert_eq!(f.file_size, bytes.len() as u64);
        assert_eq!(f.get_str("general.architecture"), Some("llama"));
        assert_eq!(f.get_u64("t.u8"), Some(1));
        assert_eq!(f.get_u64("t.i8"), None);
        assert_eq!(f.get_i64("t.i64"), Some(-(1 << 40)));
        assert_eq!(f.get_f64("t.f32"), Some(0.5));
        assert_eq!(f.get_bool("t.bool"), Some(true));
        assert_eq!(f.get_array_len("t.strs"), Some(3));
        assert_eq!(f.get_array_len("t.empty"), Some(0));
        assert_eq!(f.get_array_len("t.nested"), Some(2));
        let b = f.tensor("b").unwrap();
        assert_eq!((b.n_elements(), b.n_bytes()), (32, 34));
        assert_eq!(f.tensors[2].offset, 96);
        assert_eq!(f.tensor_file_range(&f.tensors[2]).end, f.file_size);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample_file();
        for len in 0..bytes.len() {
            match parse_bytes(&bytes[..len]) {
                Err(GgufError::Truncated {
                    offset, file_size, ..
                }) => {
                    assert_eq!(file_size, len as u64);
                    assert!(offset <= len as u64);
                }
                Err(GgufError::CountTooLarge { .. } | GgufError::TensorOutOfBounds { .. }) => {}
                other => panic!("prefix {len}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let bytes = sample_file();
        for i in 0..bytes.len() {
            for v in [0x00, 0xFF, 0x7F, 0x80] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = parse_bytes(&b);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..5000 {
            let mut b = bytes.clone();
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            let cut = rng.gen_range(0..=b.len());
            let _ = parse_bytes(&b[..cut]);
        }
    }

    #[test]
    fn truncated_header_names_offset_and_field() {
        let e = err(&Raw::header(0, 0).0[..20]);
        assert_eq!(
            e.to_string(),
            "at offset 16: expected 8 bytes for metadata key-value count, file ends at 20"
        );
        let e = err(b"GGU");
        assert_eq!(
            e.to_string(),
            "at offset 0: expected 4 bytes for magic, file ends at 3"
        );
    }

    #[test]
    fn bad_magic_and_versions() {
        let mut raw = Raw::header(0, 0);
        raw.0[..4].copy_from_slice(b"GGML");
        assert!(matches!(err(&raw.0), GgufError::BadMagic { .. }));
        for version in [0, 1, 4, 0x0300_0000] {
            let mut raw = Raw::header(0, 0);
            raw.0[4..8].copy_from_slice(&u32::to_le_bytes(version));
            assert!(
                matches!(err(&raw.0), GgufError::UnsupportedVersion { version: v } if v == version)
            );
        }
        let mut raw = Raw::header(0, 0);
        raw.0[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(parse_bytes(&raw.0).unwrap().version, 2);
    }

    #[test]
    fn absurd_counts_and_lengths_are_rejected_before_allocating() {
        let e = err(&Raw::header(u64::MAX, 0).0);
        assert!(
            matches!(e, GgufError::CountTooLarge { offset: 8, .. }),
            "{e}"
        );
        let e = err(&Raw::header(0, u64::MAX).0);
        assert!(
            matches!(e, GgufError::CountTooLarge { offset: 16, .. }),
            "{e}"
        );

        // Key with an absurd length.
        let mut raw = Raw::header(0, 1);
        raw.u64(u64::MAX).u32(0).pad_to(64);
        let e = err(&raw.0);
        assert_eq!(
            e.to_string(),
            format!(
                "at offset 32: expected {} bytes for key of metadata pair 0, file ends at 64",
                u64::MAX
            )
        );

        // String value longer than the file.
        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(8).u64(1 << 40);
        let e = err(&raw.0);
        assert!(
            matches!(e, GgufError::Truncated { needed, .. } if needed == 1 << 40),
            "{e}"
        );

        // Array with an absurd count.
        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(9).u32(4).u64(u64::MAX / 2);
        let e = err(&raw.0);
        assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
        assert!(e.to_string().contains("'k'"), "{e}");

        // A string over the limit that the file could hold.
        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(8).u64(MAX_STRING_BYTES + 1);
        raw.pad_to(raw.0.len() + MAX_STRING_BYTES as usize + 1);
        let e = err(&raw.0);
        assert!(matches!(e, GgufError::OverLimit { offset: 37, .. }), "{e}");

        // Nested arrays deeper than the limit.
        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(9);
        for _ in 0..100 {
            raw.u32(9).u64(1);
        }
        raw.pad_to(raw.0.len() + 64);
        assert!(matches!(err(&raw.0), GgufError::NestingTooDeep { .. }));
    }

    #[test]
    fn invalid_value_types_and_duplicates() {
        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(13).u64(0);
        let e = err(&raw.0);
        assert!(
            matches!(
                e,
                GgufError::InvalidValueType {
                    type_id: 13,
                    offset: 33,
                    ..
                }
            ),
            "{e}"
        );

        let mut raw = Raw::header(0, 2);
        raw.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
        assert!(matches!(err(&raw.0), GgufError::DuplicateKey { .. }));

        let mut raw = Raw::header(0, 1);
        raw.str("general.alignment").u32(4).u32(48);
        assert!(matches!(err(&raw.0), GgufError::BadAlignment { .. }));
        let mut raw = Raw::header(0, 1);
        raw.str("general.alignment").u32(10).u64(64);
        assert!(matches!(err(&raw.0), GgufError::BadAlignment { .. }));
    }

    fn one_tensor(name: &str, dims: &[u64], type_id: u32, offset: u64, data: usize) -> Vec<u8> {
        let mut raw = Raw::header(1, 0);
        raw.str(name).u32(dims.len() as u32);
        for &d in dims {
            raw.u64(d);
        }
        raw.u32(type_id).u64(offset);
        let data_offset = raw.0.len().div_ceil(32) * 32;
        raw.pad_to(data_offset + data);
        raw.0
    }

    #[test]
    fn tensor_errors_name_the_tensor() {
        assert!(parse_bytes(&one_tensor("w", &[4, 2], 1, 0, 16)).is_ok());

        let e = err(&one_tensor("w", &[4, 2], 4, 0, 16));
        assert!(
            matches!(e, GgufError::UnknownGgmlType { type_id: 4, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("'w'"), "{e}");

        let e = err(&one_tensor("w", &[4, 2], 1, 0, 15));
        assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
        assert!(e.to_string().contains("'w'"), "{e}");

        let e = err(&one_tensor("w", &[4, 2], 1, u64::MAX - 31, 16));
        assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");

        let e = err(&one_tensor("w", &[4, 2], 1, 8, 64));
        assert!(matches!(e, GgufError::MisalignedTensor { .. }), "{e}");

        let e = err(&one_tensor("w", &[1, 1, 1, 1, 1], 1, 0, 16));
        assert!(matches!(e, GgufError::TooManyDims { n_dims: 5, .. }), "{e}");

        let e = err(&one_tensor("w", &[1 << 40, 1 << 40], 0, 0, 16));
        assert!(matches!(e, GgufError::InvalidShape { .. }), "{e}");
        assert!(e.to_string().contains("'w'"), "{e}");

        let e = err(&one_tensor("w", &[u64::MAX, 0], 0, 0, 16));
        assert!(matches!(e, GgufError::InvalidShape { .. }), "{e}");

        let e = err(&one_tensor("w", &[100], 12, 0, 1024));
        assert!(e.to_string().contains("block size"), "{e}");

        let mut raw = Raw::header(2, 0);
        raw.str("w").u32(1).u64(4).u32(0).u64(0);
        raw.str("w").u32(1).u64(4).u32(0).u64(32);
        raw.pad_to(256);
        assert!(matches!(err(&raw.0), GgufError::DuplicateTensor { .. }));
    }

    #[test]
    fn invalid_utf8_key_is_an_error_but_values_are_lossy() {
        let mut raw = Raw::header(0, 1);
        raw.u64(2);
        raw.0.extend_from_slice(&[0xC3, 0x28]);
        raw.u32(4).u32(0);
        assert!(matches!(
            err(&raw.0),
            GgufError::InvalidUtf8 { offset: 24, .. }
        ));

        let mut raw = Raw::header(0, 1);
        raw.str("k").u32(8).u64(2);
        raw.0.extend_from_slice(&[0xC3, 0x28]);
        let f = parse_bytes(&raw.0).unwrap();
        assert_eq!(f.get_str("k"), Some("\u{FFFD}("));
    }

    #[test]
    fn open_reports_missing_file() {
        let e = GgufFile::open("/nonexistent/dir/model.gguf").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/model.gguf"), "{e}");
    }
}
