//! Streaming GGUF v3 writer.
//!
//! All tensor shapes are declared up front, so the header (with every tensor's data offset) is
//! written first; tensor bytes are then streamed in declaration order through
//! [`TensorDataWriter::write_data`], and alignment padding is inserted between tensors. Nothing
//! but the header is ever held in memory.

use std::collections::HashSet;
use std::io::Write;

use crate::error::GgufError;
use crate::reader::{TensorInfo, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::types::{GgmlType, Value};

/// The GGUF version this writer produces.
pub const GGUF_WRITE_VERSION: u32 = 3;
/// ggml's `GGML_MAX_NAME`: tensor names must be shorter than this.
pub const MAX_TENSOR_NAME_BYTES: usize = 64;

/// Plans a GGUF file: metadata and tensor shapes. [`GgufWriter::begin`] writes the header.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
    alignment: u64,
    /// Padded size of the data section so far.
    data_len: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

fn align_up(n: u64, alignment: u64) -> u64 {
    n.div_ceil(alignment) * alignment
}

fn check_homogeneous(key: &str, value: &Value) -> Result<(), GgufError> {
    if let Value::Array(declared, items) = value {
        for (index, item) in items.iter().enumerate() {
            let found = item.value_type();
            if found != *declared {
                return Err(GgufError::MixedArray {
                    key: key.to_owned(),
                    declared: *declared,
                    index,
                    found,
                });
            }
            check_homogeneous(key, item)?;
        }
    }
    Ok(())
}

impl GgufWriter {
    /// An empty plan with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            alignment: DEFAULT_ALIGNMENT,
            data_len: 0,
        }
    }

    /// Adds a metadata pair. Keys must be unique; arrays must be homogeneous. Setting
    /// `general.alignment` (a power-of-two `u32`) changes the alignment and is only allowed
    /// before any tensor is added.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: Value) -> Result<(), GgufError> {
        let key = key.into();
        if self.keys.contains(&key) {
            return Err(GgufError::Duplicate {
                kind: "metadata key",
                name: key,
            });
        }
        check_homogeneous(&key, &value)?;
        if key == ALIGNMENT_KEY {
            match value {
                Value::U32(a) if a.is_power_of_two() && self.tensors.is_empty() => {
                    self.alignment = u64::from(a);
                }
                ref other => {
                    return Err(GgufError::BadAlignment {
                        found: if self.tensors.is_empty() {
                            format!("{other:?}")
                        } else {
                            format!("{other:?} after tensors were added")
                        },
                    })
                }
            }
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Declares the next tensor. `dims` are fastest-varying first (`dims[0]` is the row length).
    /// Returns the tensor info with its data offset.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
    ) -> Result<&TensorInfo, GgufError> {
        let name = name.into();
        if name.len() >= MAX_TENSOR_NAME_BYTES {
            return Err(GgufError::NameTooLong {
                len: name.len(),
                name,
            });
        }
        if self.names.contains(&name) {
            return Err(GgufError::Duplicate {
                kind: "tensor",
                name,
            });
        }
        let invalid = |reason| GgufError::InvalidShape {
            tensor: name.clone(),
            dims: dims.to_vec(),
            ggml_type,
            reason,
        };
        if dims.len() > MAX_DIMS as usize {
            return Err(invalid("more than 4 dimensions"));
        }
        let max = i64::MAX as u64;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d).filter(|&n| n <= max))
            .filter(|_| dims.iter().all(|&d| d <= max))
            .ok_or_else(|| invalid("element count overflows int64"))?;
        if dims.first().copied().unwrap_or(1) % ggml_type.block_size() != 0 {
            return Err(invalid("row length is not a multiple of the block size"));
        }
        let n_bytes = (n_elements / ggml_type.block_size())
            .checked_mul(ggml_type.type_size())
            .ok_or_else(|| invalid("byte size overflows"))?;
        let padded = n_bytes
            .checked_next_multiple_of(self.alignment)
            .and_then(|p| p.checked_add(self.data_len))
            .ok_or_else(|| invalid("data section size overflows"))?;
        let offset = self.data_len;
        self.data_len = padded;
        self.names.insert(name.clone());
        self.tensors.push(TensorInfo {
            name,
            dims: dims.to_vec(),
            ggml_type,
            offset,
        });
        Ok(self.tensors.last().expect("just pushed"))
    }

    /// The metadata planned so far, in order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The tensors planned so far, in order, with their data offsets.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The alignment of the data section and of each tensor.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Bytes of the header before the alignment padding: magic, version, counts, metadata and
    /// tensor infos.
    pub fn header_len(&self) -> u64 {
        let kv: u64 = self
            .metadata
            .iter()
            .map(|(k, v)| 8 + k.len() as u64 + 4 + v.encoded_len())
            .sum();
        let infos: u64 = self
            .tensors
            .iter()
            .map(|t| 8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 4 + 8)
            .sum();
        4 + 4 + 8 + 8 + kv + infos
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> u64 {
        align_up(self.header_len(), self.alignment)
    }

    /// Exact size of the file this plan produces.
    pub fn total_len(&self) -> u64 {
        self.data_offset() + self.data_len
    }

    /// Writes the header (and its padding) to `out` and returns the writer for the tensor data.
    pub fn begin<W: Write>(self, mut out: W) -> Result<TensorDataWriter<W>, GgufError> {
        let mut header = Vec::with_capacity(self.data_offset() as usize);
        header.extend_from_slice(&GGUF_MAGIC);
        header.extend_from_slice(&GGUF_WRITE_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut header, key);
            header.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut header, value);
        }
        for t in &self.tensors {
            put_str(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&t.offset.to_le_bytes());
        }
        header.resize(self.data_offset() as usize, 0);
        out.write_all(&header).map_err(|source| GgufError::Write {
            what: "gguf header".into(),
            source,
        })?;
        let mut w = TensorDataWriter {
            out,
            tensors: self.tensors,
            alignment: self.alignment,
            index: 0,
            written_in_tensor: 0,
            bytes_written: header.len() as u64,
        };
        w.finish_empty_tensors()?;
        Ok(w)
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::String(s) => put_str(buf, s),
        Value::Array(elem_type, items) => {
            buf.extend_from_slice(&elem_type.id().to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(buf, item);
            }
        }
    }
}

/// Streams tensor data, in declaration order, after the header.
#[derive(Debug)]
pub struct TensorDataWriter<W: Write> {
    out: W,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    index: usize,
    written_in_tensor: u64,
    bytes_written: u64,
}

const ZEROS: [u8; 256] = [0; 256];

impl<W: Write> TensorDataWriter<W> {
    /// The tensor whose bytes come next, or `None` once all were written.
    pub fn current_tensor(&self) -> Option<&TensorInfo> {
        self.tensors.get(self.index)
    }

    /// Bytes still owed to the current tensor.
    pub fn remaining_in_tensor(&self) -> u64 {
        self.current_tensor()
            .map_or(0, |t| t.n_bytes() - self.written_in_tensor)
    }

    /// Total bytes written to the output so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn put(&mut self, bytes: &[u8], what: &dyn Fn() -> String) -> Result<(), GgufError> {
        self.out
            .write_all(bytes)
            .map_err(|source| GgufError::Write {
                what: what(),
                source,
            })?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Pads and moves past the current tensor if it is complete, then past any zero-byte ones.
    fn finish_empty_tensors(&mut self) -> Result<(), GgufError> {
        while let Some(t) = self.tensors.get(self.index) {
            if self.written_in_tensor < t.n_bytes() {
                break;
            }
            let name = t.name.clone();
            let mut pad = align_up(t.n_bytes(), self.alignment) - t.n_bytes();
            while pad > 0 {
                let n = pad.min(ZEROS.len() as u64) as usize;
                self.put(&ZEROS[..n], &|| format!("padding after tensor '{name}'"))?;
                pad -= n as u64;
            }
            self.index += 1;
            self.written_in_tensor = 0;
        }
        Ok(())
    }

    /// Writes the next `bytes` of the current tensor. A chunk may not run past the end of the
    /// current tensor; when a tensor is complete the writer pads and moves to the next one.
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(t) = self.tensors.get(self.index) else {
            return Err(GgufError::TooMuchData {
                extra: bytes.len() as u64,
            });
        };
        let len = bytes.len() as u64;
        if len > t.n_bytes() - self.written_in_tensor {
            return Err(GgufError::DataSizeMismatch {
                tensor: t.name.clone(),
                expected: t.n_bytes(),
                got: self.written_in_tensor + len,
            });
        }
        let name = t.name.clone();
        self.put(bytes, &|| format!("data of tensor '{name}'"))?;
        self.written_in_tensor += len;
        self.finish_empty_tensors()
    }

    /// Checks that every tensor was written in full, flushes and returns the output.
    pub fn finish(mut self) -> Result<W, GgufError> {
        if let Some(t) = self.tensors.get(self.index) {
            return Err(GgufError::DataSizeMismatch {
                tensor: t.name.clone(),
                expected: t.n_bytes(),
                got: self.written_in_tensor,
            });
        }
        self.out.flush().map_err(|source| GgufError::Write {
            what: "gguf file (flush)".into(),
            source,
        })?;
        Ok(self.out)
    }
}
