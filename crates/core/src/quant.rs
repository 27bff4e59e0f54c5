//! Quantization presets: the names people use (`Q4_K_M`) and the `llama_ftype` ids that
//! llama.cpp's quantizer takes. Only presets that need no importance matrix are listed.

use std::fmt;
use std::str::FromStr;

/// A llama.cpp quantization preset (a `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(
    non_camel_case_types,
    reason = "the names people type: Q4_K_M, not Q4KM"
)]
pub enum QuantPreset {
    F32,
    F16,
    BF16,
    Q8_0,
    Q6_K,
    Q5_K_M,
    Q5_K_S,
    Q5_1,
    Q5_0,
    Q4_K_M,
    Q4_K_S,
    Q4_1,
    Q4_0,
    Q3_K_L,
    Q3_K_M,
    Q3_K_S,
    IQ4_XS,
    IQ4_NL,
    IQ3_M,
    IQ3_S,
    IQ3_XS,
    IQ3_XXS,
    Q2_K,
    Q2_K_S,
    IQ2_M,
    IQ2_S,
    IQ2_XS,
    IQ2_XXS,
    IQ1_M,
    IQ1_S,
}

impl QuantPreset {
    /// Every preset, most bits first.
    pub const ALL: [QuantPreset; 30] = [
        Self::F32,
        Self::F16,
        Self::BF16,
        Self::Q8_0,
        Self::Q6_K,
        Self::Q5_K_M,
        Self::Q5_K_S,
        Self::Q5_1,
        Self::Q5_0,
        Self::Q4_K_M,
        Self::Q4_K_S,
        Self::Q4_1,
        Self::IQ4_NL,
        Self::Q4_0,
        Self::IQ4_XS,
        Self::Q3_K_L,
        Self::Q3_K_M,
        Self::IQ3_M,
        Self::IQ3_S,
        Self::Q3_K_S,
        Self::IQ3_XS,
        Self::IQ3_XXS,
        Self::Q2_K,
        Self::Q2_K_S,
        Self::IQ2_M,
        Self::IQ2_S,
        Self::IQ2_XS,
        Self::IQ2_XXS,
        Self::IQ1_M,
        Self::IQ1_S,
    ];

    /// The `llama_ftype` value (`include/llama.h`, `enum llama_ftype`).
    pub fn ftype(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
            Self::Q2_K => 10,
            Self::Q3_K_S => 11,
            Self::Q3_K_M => 12,
            Self::Q3_K_L => 13,
            Self::Q4_K_S => 14,
            Self::Q4_K_M => 15,
            Self::Q5_K_S => 16,
            Self::Q5_K_M => 17,
            Self::Q6_K => 18,
            Self::IQ2_XXS => 19,
            Self::IQ2_XS => 20,
            Self::Q2_K_S => 21,
            Self::IQ3_XS => 22,
            Self::IQ3_XXS => 23,
            Self::IQ1_S => 24,
            Self::IQ4_NL => 25,
            Self::IQ3_S => 26,
            Self::IQ3_M => 27,
            Self::IQ2_S => 28,
            Self::IQ2_M => 29,
            Self::IQ4_XS => 30,
            Self::IQ1_M => 31,
            Self::BF16 => 32,
        }
    }

    /// The preset whose `llama_ftype` is `ftype`, if it is one of ours.
    pub fn from_ftype(ftype: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.ftype() == ftype)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q8_0 => "Q8_0",
            Self::Q6_K => "Q6_K",
            Self::Q5_K_M => "Q5_K_M",
            Self::Q5_K_S => "Q5_K_S",
            Self::Q5_1 => "Q5_1",
            Self::Q5_0 => "Q5_0",
            Self::Q4_K_M => "Q4_K_M",
            Self::Q4_K_S => "Q4_K_S",
            Self::Q4_1 => "Q4_1",
            Self::Q4_0 => "Q4_0",
            Self::Q3_K_L => "Q3_K_L",
            Self::Q3_K_M => "Q3_K_M",
            Self::Q3_K_S => "Q3_K_S",
            Self::Q2_K => "Q2_K",
            Self::Q2_K_S => "Q2_K_S",
            Self::IQ4_XS => "IQ4_XS",
            Self::IQ4_NL => "IQ4_NL",
            Self::IQ3_M => "IQ3_M",
            Self::IQ3_S => "IQ3_S",
            Self::IQ3_XS => "IQ3_XS",
            Self::IQ3_XXS => "IQ3_XXS",
            Self::IQ2_M => "IQ2_M",
            Self::IQ2_S => "IQ2_S",
            Self::IQ2_XS => "IQ2_XS",
            Self::IQ2_XXS => "IQ2_XXS",
            Self::IQ1_M => "IQ1_M",
            Self::IQ1_S => "IQ1_S",
        }
    }

    /// Returns true if and only if llama.cpp's quantizer refuses this preset without an
    /// importance matrix: it puts some weight matrices in IQ1_*, IQ2_*, IQ3_XXS, or (for
    /// Q2_K_S) Q2_K, which `tensor_requires_imatrix` (`src/llama-quant.cpp`) marks as needing
    /// one. Files of these presets are always made with a matrix.
    pub fn needs_imatrix(self) -> bool {
        matches!(
            self,
            Self::IQ1_S
                | Self::IQ1_M
                | Self::IQ2_XXS
                | Self::IQ2_XS
                | Self::IQ2_S
                | Self::IQ2_M
                | Self::IQ3_XXS
                | Self::IQ3_XS
                | Self::Q2_K_S
        )
    }

    /// Returns true if and only if files of this preset are, as published, made with an
    /// importance matrix, which changes some tensor types (see
    /// [`crate::fit::tensor_type_with`]): every IQ preset and Q2_K_S. K-quant and legacy
    /// presets are predicted as `llama-quantize` makes them without one (its size table).
    pub fn published_with_imatrix(self) -> bool {
        self.needs_imatrix()
            || matches!(
                self,
                Self::IQ4_XS | Self::IQ4_NL | Self::IQ3_S | Self::IQ3_M
            )
    }

    /// Returns true if and only if producing this preset from an F16 model needs
    /// llama.cpp's quantizer (F16 itself is written directly).
    pub fn needs_quantizer(self) -> bool {
        self != Self::F16
    }
}

impl fmt::Display for QuantPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown quantization name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown quantization `{0}` (known: {known})", known = QuantPreset::ALL.map(|q| q.name()).join(", "))]
pub struct UnknownQuant(pub String);

impl FromStr for QuantPreset {
    type Err = UnknownQuant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        let canonical = match upper.as_str() {
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            "Q3_K" => "Q3_K_M",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|q| q.name() == canonical)
            .ok_or_else(|| UnknownQuant(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_resolve() {
        for q in QuantPreset::ALL {
            assert_eq!(q.name().parse::<QuantPreset>().unwrap(), q);
            assert_eq!(QuantPreset::from_ftype(q.ftype()), Some(q));
        }
        assert_eq!("q4_k".parse::<QuantPreset>().unwrap(), QuantPreset::Q4_K_M);
        let err = "Q9_X".parse::<QuantPreset>().unwrap_err().to_string();
        assert!(err.contains("Q9_X") && err.contains("Q4_K_M"), "{err}");
    }
}
