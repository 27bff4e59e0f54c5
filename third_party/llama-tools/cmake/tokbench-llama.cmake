# Included after llama.cpp's project() calls (CMAKE_PROJECT_INCLUDE), by the embedded
# engine's build (.cargo/config.toml) and by `tokbench backends build`.
include_guard(GLOBAL)

# Intel AMX off. GGML_NATIVE compiles for -march=native, which on a Sapphire Rapids or
# newer Xeon turns on ggml's AMX matrix kernels, and those crash: every prompt evaluation
# of a Q8_0 model died with SIGSEGV in ggml_backend_amx_mul_mat, at its ldtilecfg, on this
# project's CI machine (llama.cpp issue 20824; pull request 26954 says the tile
# configuration kept on the stack is optimised away). Explicit -mno-amx-* flags win over
# -march=native with GCC and Clang whatever their order, so everything else native
# (AVX-512, VNNI) stays.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|x86|i[3-6]86)$"
   AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    include(CheckCCompilerFlag)
    check_c_compiler_flag("-mno-amx-tile" TOKBENCH_HAVE_MNO_AMX)
    if(TOKBENCH_HAVE_MNO_AMX)
        add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
        message(STATUS "tokbench: building without Intel AMX (ggml's AMX kernels crash)")
    endif()
endif()

# Vulkan headers older than 1.3.261 (Debian 12's) lack VK_EXT_layer_settings, whose C++
# types ggml-vulkan.cpp uses unconditionally: declare them (vk-layer-settings-compat.h
# says how), force-included into the C++ sources only.
if(GGML_VULKAN)
    include(CheckSymbolExists)
    check_symbol_exists(VK_EXT_layer_settings "vulkan/vulkan_core.h"
                        TOKBENCH_VK_HAVE_LAYER_SETTINGS)
    if(NOT TOKBENCH_VK_HAVE_LAYER_SETTINGS)
        add_compile_options(
            "$<$<COMPILE_LANGUAGE:CXX>:-include>"
            "$<$<COMPILE_LANGUAGE:CXX>:${CMAKE_CURRENT_LIST_DIR}/vk-layer-settings-compat.h>")
        message(STATUS "tokbench: these Vulkan headers lack VK_EXT_layer_settings: "
                       "declaring its types (vk-layer-settings-compat.h)")
    endif()
endif()
