//! The ggml tensor types: ids, block geometry and names, the one table every crate reads
//! (the GGUF reader and writer, the memory calculator, the reports).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bench::CacheType;

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

/// (type, id, block size in elements, block size in bytes, ggml type name), one row per
/// variant in declaration order.
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

// A variant added after the last one needs its row: the table's length is the count.
const _: () = assert!(GGML_TYPES.len() == GgmlType::Q2_0 as usize + 1);

impl GgmlType {
    /// Every known type, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        GGML_TYPES.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (GgmlType, u32, u64, u64, &'static str) {
        // The table lists the variants in declaration order, one row each (checked below, at
        // compile time for the count and by `each_variant_has_its_own_row` for the order).
        &GGML_TYPES[self as usize]
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

    /// Bytes of a row of `n_elements` (`ggml_row_size`), or `None` if `n_elements` is not a
    /// multiple of the block size or the size overflows.
    pub fn row_bytes(self, n_elements: u64) -> Option<u64> {
        if n_elements % self.block_size() != 0 {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.type_size())
    }

    /// Returns true if and only if this is a block-quantized type (`ggml_is_quantized`).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<CacheType> for GgmlType {
    fn from(c: CacheType) -> Self {
        match c {
            CacheType::F32 => Self::F32,
            CacheType::F16 => Self::F16,
            CacheType::Bf16 => Self::BF16,
            CacheType::Q8_0 => Self::Q8_0,
            CacheType::Q4_0 => Self::Q4_0,
            CacheType::Q4_1 => Self::Q4_1,
            CacheType::Iq4Nl => Self::IQ4_NL,
            CacheType::Q5_0 => Self::Q5_0,
            CacheType::Q5_1 => Self::Q5_1,
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
    fn each_variant_has_its_own_row() {
        for (i, row) in GGML_TYPES.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{:?} is out of place", row.0);
            assert_eq!(row.0.row().0, row.0);
        }
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
    fn cache_types_are_ggml_types_of_the_same_name() {
        for c in CacheType::ALL {
            assert_eq!(GgmlType::from(c).name(), c.name());
        }
    }
}
