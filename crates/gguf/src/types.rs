//! The GGUF type vocabulary: ggml tensor types (with their block geometry) and metadata values.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A ggml tensor element type. Ids, block sizes and type sizes follow `ggml/include/ggml.h`,
/// `ggml/src/ggml.c` (`type_traits`) and `ggml/src/ggml-common.h` of the vendored llama.cpp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[expect(
    non_camel_case_types,
    reason = "variant names match ggml's GGML_TYPE_* identifiers"
)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// (type, id, block size in elements, block size in bytes, ggml type name)
const GGML_TYPES: [(GgmlType, u32, u64, u64, &str); 35] = [
    (GgmlType::F32, 0, 1, 4, "f32"),
    (GgmlType::F16, 1, 1, 2, "f16"),
    (GgmlType::Q4_0, 2, 32, 18, "q4_0"),
    (GgmlType::Q4_1, 3, 32, 20, "q4_1"),
    (GgmlType::Q5_0, 6, 32, 22, "q5_0"),
    (GgmlType::Q5_1, 7, 32, 24, "q5_1"),
    (GgmlType::Q8_0, 8, 32, 34, "q8_0"),
    (GgmlType::Q8_1, 9, 32, 36, "q8_1"),
    (GgmlType::Q2_K, 10, 256, 84, "q2_K"),
    (GgmlType::Q3_K, 11, 256, 110, "q3_K"),
    (GgmlType::Q4_K, 12, 256, 144, "q4_K"),
    (GgmlType::Q5_K, 13, 256, 176, "q5_K"),
    (GgmlType::Q6_K, 14, 256, 210, "q6_K"),
    (GgmlType::Q8_K, 15, 256, 292, "q8_K"),
    (GgmlType::IQ2_XXS, 16, 256, 66, "iq2_xxs"),
    (GgmlType::IQ2_XS, 17, 256, 74, "iq2_xs"),
    (GgmlType::IQ3_XXS, 18, 256, 98, "iq3_xxs"),
    (GgmlType::IQ1_S, 19, 256, 50, "iq1_s"),
    (GgmlType::IQ4_NL, 20, 32, 18, "iq4_nl"),
    (GgmlType::IQ3_S, 21, 256, 110, "iq3_s"),
    (GgmlType::IQ2_S, 22, 256, 82, "iq2_s"),
    (GgmlType::IQ4_XS, 23, 256, 136, "iq4_xs"),
    (GgmlType::I8, 24, 1, 1, "i8"),
    (GgmlType::I16, 25, 1, 2, "i16"),
    (GgmlType::I32, 26, 1, 4, "i32"),
    (GgmlType::I64, 27, 1, 8, "i64"),
    (GgmlType::F64, 28, 1, 8, "f64"),
    (GgmlType::IQ1_M, 29, 256, 56, "iq1_m"),
    (GgmlType::BF16, 30, 1, 2, "bf16"),
    (GgmlType::TQ1_0, 34, 256, 54, "tq1_0"),
    (GgmlType::TQ2_0, 35, 256, 66, "tq2_0"),
    (GgmlType::MXFP4, 39, 32, 17, "mxfp4"),
    (GgmlType::NVFP4, 40, 64, 36, "nvfp4"),
    (GgmlType::Q1_0, 41, 128, 18, "q1_0"),
    (GgmlType::Q2_0, 42, 64, 18, "q2_0"),
];

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        GGML_TYPES.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (GgmlType, u32, u64, u64, &'static str) {
        // The table holds every variant; `all_variants_are_in_the_table` checks it.
        GGML_TYPES
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&GGML_TYPES[0])
    }

    /// The type with ggml id `id`, or `None` for ids ggml does not define (e.g. the removed 4, 5,
    /// 31..33, 36..38).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    /// The ggml type id as stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// Elements per block (`blck_size`): 1 for plain types, 32 / 64 / 128 / 256 for quants.
    pub fn block_size(self) -> u64 {
        self.row().2
    }

    /// Bytes per block (`type_size`).
    pub fn type_size(self) -> u64 {
        self.row().3
    }

    /// ggml's own name (`ggml_type_name`), e.g. `q4_K`, `f16`.
    pub fn name(self) -> &'static str {
        self.row().4
    }

    /// The type whose ggml name is `name`, compared case-insensitively.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        GGML_TYPES
            .iter()
            .find(|row| row.4.eq_ignore_ascii_case(name))
            .map(|row| row.0)
    }

    /// Bits per weight of one block: `type_size * 8 / block_size`.
    pub fn bits_per_weight(self) -> f64 {
        (self.type_size() * 8) as f64 / self.block_size() as f64
    }

    /// Bytes of a row of `n_elements`, or `None` if `n_elements` is not a multiple of the block
    /// size or the size overflows.
    pub fn row_bytes(self, n_elements: u64) -> Option<u64> {
        if n_elements % self.block_size() != 0 {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type tag of a GGUF metadata value (`enum gguf_type` in `ggml/include/gguf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type for GGUF type id `id`, if defined.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Encoded size of one value, or `None` for strings and arrays (variable length).
    pub fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The smallest number of bytes one value of this type can occupy (a string: its 8-byte
    /// length; an array: its 4-byte element type and 8-byte count).
    pub fn min_encoded_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            other => other.fixed_size().unwrap_or(1),
        }
    }

    /// The lowercase name used in messages (`u32`, `string`, `array`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A GGUF metadata value.
///
/// Arrays keep their element type so that an empty array survives a write → read round trip.
/// GGUF arrays are homogeneous: every item has `elem_type` (the writer checks it; the reader
/// produces nothing else).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The type tag of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as a `u64` if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an `i64` if it is an integer of any width that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an `f64` if it is a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a `bool` if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// An array of strings.
    pub fn string_array<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::Array(
            ValueType::String,
            items.into_iter().map(|s| Value::String(s.into())).collect(),
        )
    }

    /// An array of `f32`.
    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> Value {
        Value::Array(ValueType::F32, items.into_iter().map(Value::F32).collect())
    }

    /// An array of `i32`.
    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> Value {
        Value::Array(ValueType::I32, items.into_iter().map(Value::I32).collect())
    }

    /// Bytes this value occupies in a GGUF file, excluding its own type tag.
    pub fn encoded_len(&self) -> u64 {
        match self {
            Value::String(s) => 8 + s.len() as u64,
            Value::Array(_, items) => 12 + items.iter().map(Value::encoded_len).sum::<u64>(),
            other => other.value_type().fixed_size().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_removed_ids_are_unknown() {
        for t in GgmlType::all() {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
            assert_eq!(GgmlType::from_name(t.name()), Some(t));
        }
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 43, u32::MAX] {
            assert_eq!(GgmlType::from_id(id), None, "{id}");
        }
    }

    #[test]
    fn all_variants_are_in_the_table() {
        assert_eq!(GgmlType::all().count(), GGML_TYPES.len());
        // The fallback row in `row()` is only reached for F32 itself.
        assert_eq!(GgmlType::Q2_0.id(), 42);
        assert_eq!(GgmlType::MXFP4.id(), 39);
        assert_eq!(GgmlType::BF16.id(), 30);
    }

    #[test]
    fn block_geometry_matches_quantization_reference() {
        let bpw = |t: GgmlType| t.bits_per_weight();
        assert_eq!(bpw(GgmlType::Q4_0), 4.5);
        assert_eq!(bpw(GgmlType::Q8_0), 8.5);
        assert_eq!(bpw(GgmlType::Q4_K), 4.5);
        assert_eq!(bpw(GgmlType::Q6_K), 6.5625);
        assert_eq!(bpw(GgmlType::Q2_K), 2.625);
        assert_eq!(bpw(GgmlType::IQ4_XS), 4.25);
        assert_eq!(bpw(GgmlType::MXFP4), 4.25);
        assert_eq!(GgmlType::Q4_K.row_bytes(4096), Some(16 * 144));
        assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
        assert_eq!(GgmlType::F16.row_bytes(3), Some(6));
    }

    #[test]
    fn value_type_ids_round_trip() {
        for id in 0..13 {
            assert_eq!(ValueType::from_id(id).unwrap().id(), id);
        }
        assert_eq!(ValueType::from_id(13), None);
    }

    #[test]
    fn value_accessors() {
        assert_eq!(Value::I32(-1).as_u64(), None);
        assert_eq!(Value::U8(7).as_u64(), Some(7));
        assert_eq!(Value::U64(u64::MAX).as_i64(), None);
        assert_eq!(Value::F32(0.5).as_f64(), Some(0.5));
        assert_eq!(Value::string_array(["a", "bc"]).encoded_len(), 12 + 9 + 10);
    }
}
