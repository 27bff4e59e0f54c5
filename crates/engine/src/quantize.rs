//! Quantization through llama.cpp's own `llama_model_quantize`, so a synthesized model gets
//! exactly the per-tensor types a user's `llama-quantize` would give it.

use std::ffi::CString;
use std::path::Path;

use tokbench_core::QuantPreset;

/// A quantization that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("path is not valid UTF-8 without NUL bytes: {0}")]
    BadPath(String),
    #[error("llama_model_quantize failed with code {code} quantizing {input} to {preset}")]
    Failed {
        code: u32,
        input: String,
        preset: QuantPreset,
    },
}

fn c_path(p: &Path) -> Result<CString, QuantizeError> {
    p.to_str()
        .and_then(|s| CString::new(s).ok())
        .ok_or_else(|| QuantizeError::BadPath(p.display().to_string()))
}

/// Quantizes the GGUF at `input` (F16/F32) into `output` at `preset`, using `n_threads`
/// (0: all cores).
pub fn quantize(
    input: &Path,
    output: &Path,
    preset: QuantPreset,
    n_threads: u32,
) -> Result<(), QuantizeError> {
    let inp = c_path(input)?;
    let out = c_path(output)?;
    crate::bench::init_backend_quietly();
    // SAFETY: llama_model_quantize_default_params returns a plain struct by value.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.nthread = i32::try_from(n_threads).unwrap_or(0);
    params.ftype = preset.ftype() as _;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; params
    // is a valid struct whose pointer fields are the defaults (null).
    let code =
        unsafe { llama_cpp_sys_2::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params) };
    if code != 0 {
        return Err(QuantizeError::Failed {
            code,
            input: input.display().to_string(),
            preset,
        });
    }
    Ok(())
}
