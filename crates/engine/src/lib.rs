//! tokbench-engine: the embedded default backend. [`protocol`] is what a `tokbench engine`
//! child and the runner say to each other; with the `llama` feature, [`bench`] runs the
//! tests through llama.cpp the way llama-bench does and [`quantize`] calls llama.cpp's own
//! quantizer; [`logits`] compares what two builds compute.

pub mod fault;
pub mod logits;
pub mod protocol;

#[cfg(feature = "llama")]
pub mod bench;
#[cfg(feature = "llama")]
pub mod quantize;

/// The accelerator backend this build of the engine was compiled with.
pub fn accel() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "vulkan") {
        "vulkan"
    } else if cfg!(feature = "metal") || cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        "metal"
    } else {
        "cpu"
    }
}

/// The versions of the llama.cpp bindings linked in (they pin the vendored llama.cpp).
pub const LLAMA_BINDINGS: &str = "llama-cpp-2 0.1.160 / llama-cpp-sys-2 0.1.161";
