#!/usr/bin/env bash
# CUDA compiled, without a GPU and without NVIDIA's installer (issue 16, item 3). Installs
# the CUDA toolkit's compiler, headers and libraries from the Python package registry into a
# virtual environment, points CMake and the llama-cpp-sys-2 build at them, and builds
#
#   1. `tokbench --features cuda` (the engine's llama.cpp with ggml-cuda), and
#   2. `tokbench backends build --accel cuda --cuda-arch 90` (llama-bench, llama-server),
#
# both for one architecture only (sm_90: H100/H200; CUDA_CHECK_ARCH to change it), then
# checks what was built: ggml-cuda's kernels are in it for that architecture, it needs the
# driver library, and, started against a stub driver, it loads and reports that there is no
# driver instead of crashing. Prints a table with each step's wall time.
#
#   scripts/cuda-build-check.sh            about 90 minutes on 2 cores (ggml-cuda twice:
#                                          46 and 42 minutes on 2026-12-07)
#   CUDA_CHECK_JOBS=16 scripts/…           compile jobs (default: the machine's cores)
#
# It is not part of `.ci/run` (it compiles ggml-cuda twice); run it when the CUDA path or the
# vendored llama.cpp changes. Everything goes under target/cuda-check: the wheels' venv, a
# cargo target directory of its own (the CPU build in target/ is left alone) and the tools.
#
# What comes from where:
# - CUDA 13's wheels (nvidia-cuda-nvcc, -crt, nvidia-nvvm, -cuda-runtime, -cublas,
#   -cuda-cccl) install into one directory, site-packages/nvidia/cu13, laid out as a toolkit
#   (bin/nvcc, nvvm/bin/cicc, include/, include/cccl, lib/). CUDA 12's nvcc wheels hold
#   ptxas only, not nvcc. The script adds what the installer's layout has and the wheels
#   lack: the unversioned library names CMake's FindCUDAToolkit looks for (libcudart.so →
#   libcudart.so.13, …) and lib64 (nvcc's own link line looks there).
# - The driver library (libcuda.so) is on no registry. ggml-cuda links it for its virtual
#   memory pool (cuMemCreate …). NVIDIA's toolkit ships a stub for linking without a driver
#   (lib64/stubs/libcuda.so: every entry point returns CUDA_ERROR_STUB_LIBRARY); the wheels
#   do not, so the script makes the same thing: every `cu…` function that the wheel's cuda.h
#   declares, returning 34 (CUDA_ERROR_STUB_LIBRARY), SONAME libcuda.so.1. ggml-cuda is
#   compiled as a user's build compiles it (not with the `cuda-no-vmm` feature, which drops
#   the pool). At run time the real driver is loaded instead, as with NVIDIA's stub.
# - cuBLAS comes as shared libraries only (no libcublas_static.a on the registry), and the
#   llama-cpp-sys-2 build links CUDA statically unless LLAMA_BUILD_SHARED_LIBS=1: here the
#   engine is built with it, so tokbench is linked to libllama.so and libggml*.so, which it
#   finds in the sys crate's out/lib (LD_LIBRARY_PATH). This is the one difference from a
#   user's `cargo build --release --features cuda` with NVIDIA's full toolkit, which links
#   llama.cpp and CUDA's runtime statically, as it always has.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/cuda-check
ARCH=${CUDA_CHECK_ARCH:-90}
JOBS=${CUDA_CHECK_JOBS:-$(nproc)}
# One CUDA 13.0 release, pinned: the newest wheels are not what this was checked with.
WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-cuda-cccl==13.0.85)
mkdir -p "$WORK"
LOG=$WORK/logs
mkdir -p "$LOG"

times=()
step_start=$SECONDS step_name=""
step() {
    [[ -n $step_name ]] && times+=("$(printf '%6d s  %s' $((SECONDS - step_start)) "$step_name")")
    step_name=$1 step_start=$SECONDS
    [[ $1 != end ]] && echo "cuda-check: $1"
    return 0
}
fail() {
    echo "cuda-check: FAILED: $*" >&2
    exit 1
}
summary() {
    local rc=$?
    step end
    echo
    printf 'cuda-check: %s\n' "${times[@]}"
    echo "cuda-check: $( ((rc == 0)) && echo passed || echo "failed (exit $rc)") in $SECONDS s; logs in $LOG"
}
trap summary EXIT

step "toolkit from the Python package registry"
command -v cmake >/dev/null || fail "cmake is missing (apt-get install -y cmake libclang-dev)"
VENV=$WORK/venv
[[ -x $VENV/bin/pip ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "${WHEELS[@]}" > "$LOG/pip.log" 2>&1 ||
    { tail -20 "$LOG/pip.log" >&2; fail "pip install ${WHEELS[*]}"; }
# cuobjdump (to list the device code built) has no 13.0 wheel; 13.2's reads 13.0's output.
# Without its dependencies, which would bring 13.2's runtime beside 13.0's.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps nvidia-cuda-cuobjdump==13.2.51 >> "$LOG/pip.log" 2>&1 ||
    { tail -20 "$LOG/pip.log" >&2; fail "pip install nvidia-cuda-cuobjdump"; }
CUDA=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[[ -x $CUDA/bin/nvcc && -x $CUDA/nvvm/bin/cicc && -f $CUDA/include/cuda_runtime.h ]] ||
    fail "the wheels did not lay out a toolkit in $CUDA (bin/nvcc, nvvm/bin/cicc, include/)"
for lib in cudart cublas cublasLt; do
    so=$(cd "$CUDA/lib" && ls "lib$lib.so."[0-9]* 2>/dev/null | head -1 || true)
    [[ -n $so ]] || fail "no lib$lib.so.N in $CUDA/lib"
    ln -sfn "$so" "$CUDA/lib/lib$lib.so"
done
# nvcc's own link line (nvcc.profile) looks in lib64, as NVIDIA's installer lays it out.
[[ -e $CUDA/lib64 ]] || ln -sfn lib "$CUDA/lib64"
"$CUDA/bin/nvcc" --version | tail -2

step "driver stub (libcuda.so)"
STUB=$CUDA/lib/stubs
mkdir -p "$STUB"
# Every driver entry point cuda.h declares, under both its versioned name (cuMemAlloc_v2,
# what code compiled against this header calls) and its old one.
{
    gcc -E -P -x c "$CUDA/include/cuda.h" -I"$CUDA/include"
    gcc -E -P -x c -D__CUDA_API_VERSION_INTERNAL "$CUDA/include/cuda.h" -I"$CUDA/include"
} | grep -oE '\bCUresult[[:space:]]+(cu[A-Za-z0-9_]+)[[:space:]]*\(' |
    sed -E 's/^CUresult[[:space:]]+//; s/[[:space:]]*\($//' | sort -u > "$WORK/driver-entry-points.txt"
n_entries=$(wc -l < "$WORK/driver-entry-points.txt")
((n_entries > 300)) || fail "found only $n_entries driver entry points in cuda.h"
grep -qx cuMemCreate "$WORK/driver-entry-points.txt" || fail "cuda.h declares no cuMemCreate"
{
    echo "/* Generated by scripts/cuda-build-check.sh: a link-time stand-in for libcuda.so."
    echo "   Every entry point returns CUDA_ERROR_STUB_LIBRARY (34), as NVIDIA's stub does. */"
    sed -E 's/.*/int &(void) { return 34; }/' "$WORK/driver-entry-points.txt"
} > "$WORK/libcuda-stub.c"
gcc -shared -fPIC -O1 -w -Wl,-soname,libcuda.so.1 -o "$STUB/libcuda.so" "$WORK/libcuda-stub.c"
# The name the binaries load (libcuda.so.1) lives apart, as NVIDIA's stubs directory has
# only libcuda.so: CMake may write the stubs directory into a binary's RUNPATH, and a
# libcuda.so.1 there would shadow the real driver on a GPU machine.
rm -f "$STUB/libcuda.so.1"
DRIVER_STUB=$WORK/driver-stub
mkdir -p "$DRIVER_STUB"
ln -sfn "$STUB/libcuda.so" "$DRIVER_STUB/libcuda.so.1"
echo "cuda-check: $n_entries entry points in $STUB/libcuda.so"

# What both builds see: CMake's CUDA compiler and toolkit, one architecture, and the
# libraries (the link of an executable against libggml-cuda.so resolves its libcudart.so.13
# and libcuda.so.1 through LD_LIBRARY_PATH).
export CUDACXX=$CUDA/bin/nvcc CUDAToolkit_ROOT=$CUDA
export PATH=$CUDA/bin:$PATH
export LD_LIBRARY_PATH=$CUDA/lib:$DRIVER_STUB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step "cargo build --release --features cuda (the engine's ggml-cuda)"
export CARGO_TARGET_DIR=$WORK/target
# CMAKE_* variables do not make cargo run the sys crate's build again: a build for another
# architecture starts its llama.cpp over.
if [[ -d $CARGO_TARGET_DIR && $(cat "$CARGO_TARGET_DIR/cuda-arch" 2>/dev/null) != "$ARCH" ]]; then
    echo "cuda-check: the engine's llama.cpp was built for another architecture; building it again"
    cargo clean -q --release -p llama-cpp-sys-2
fi
mkdir -p "$CARGO_TARGET_DIR"
echo "$ARCH" > "$CARGO_TARGET_DIR/cuda-arch"
# The sys crate hard-links its shared libraries' unversioned names, which are symbolic links
# (libllama.so → libllama.so.0), into release/: links to nothing there, which make its next
# run fail ("File exists"). Only those links are removed.
find "$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/deps" "$CARGO_TARGET_DIR/release/examples" \
    -maxdepth 1 -type l -name 'lib*.so' -delete 2>/dev/null || true
# A configure that failed leaves a CMakeCache.txt without a Makefile, and the cmake crate
# then skips configuring and fails to build: start such a directory over.
for b in "$CARGO_TARGET_DIR"/release/build/llama-cpp-sys-2-*/out/build; do
    [[ -f $b/CMakeCache.txt && ! -f $b/Makefile ]] && rm -rf "$b"
done
# The sys crate passes CMAKE_* variables to CMake: without an architecture, ggml-cuda asks
# for `native`, which needs a GPU at build time.
if ! CMAKE_CUDA_ARCHITECTURES=$ARCH CMAKE_CUDA_COMPILER=$CUDACXX LLAMA_BUILD_SHARED_LIBS=1 \
    cargo build --release -p tokbench --features cuda -j "$JOBS" > "$LOG/cargo.log" 2>&1; then
    grep -E "error|Error" "$LOG/cargo.log" | tail -20 >&2 || true
    fail "cargo build --features cuda (see $LOG/cargo.log)"
fi
BIN=$CARGO_TARGET_DIR/release
TB=$BIN/tokbench
# The engine's libllama.so.0, libggml-cuda.so.0 …: the newest sys crate output that has
# ggml-cuda.
ENGINE_LIB=$(ls -td "$CARGO_TARGET_DIR"/release/build/llama-cpp-sys-2-*/out/lib 2>/dev/null |
    while read -r d; do [[ -e $d/libggml-cuda.so ]] && { echo "$d"; break; }; done || true)
[[ -n $ENGINE_LIB ]] || fail "no libggml-cuda.so in the sys crate's out/lib under $CARGO_TARGET_DIR/release/build"
export LD_LIBRARY_PATH=$ENGINE_LIB:$LD_LIBRARY_PATH

step "tokbench backends build --accel cuda --cuda-arch $ARCH"
export TOKBENCH_CACHE=$WORK/cache
"$TB" backends build --accel cuda --cuda-arch "$ARCH" --jobs "$JOBS" > "$LOG/backends-build.out" 2> "$LOG/backends-build.err" ||
    { tail -20 "$LOG/backends-build.err" >&2; fail "tokbench backends build --accel cuda"; }
TOOLS=$(tail -1 "$LOG/backends-build.out")
[[ -x $TOOLS/llama-bench && -x $TOOLS/llama-server ]] || fail "no llama-bench/llama-server in '$TOOLS'"

step "what was built"
ok=0 bad=0
check() { # check WHAT COMMAND…: the command must succeed
    local what=$1
    shift
    if "$@" > /dev/null 2>&1; then
        printf 'cuda-check:   ok    %s\n' "$what"
        ok=$((ok + 1))
    else
        printf 'cuda-check:   FAIL  %s\n' "$what"
        bad=$((bad + 1))
    fi
}
ENGINE_CUDA=$(find "$ENGINE_LIB" -maxdepth 1 -name 'libggml-cuda.so*' -type f 2>/dev/null | head -1 || true)
TOOLS_CUDA=$(find "$TOOLS" -maxdepth 1 -name 'libggml-cuda.so*' -type f 2>/dev/null | head -1 || true)
check "the engine's libggml-cuda.so was built" test -f "$ENGINE_CUDA"
check "the tools' libggml-cuda.so was built" test -f "$TOOLS_CUDA"
check "tokbench is linked to it" sh -c "ldd '$TB' | grep -q 'libggml-cuda.so.* => $ENGINE_LIB/'"
# cuobjdump lists the device code each library holds: sm_$ARCH, and only that (ggml asks
# for 120a where 120 is asked for: the letter is allowed).
for which in engine tools; do
    lib=$ENGINE_CUDA
    [[ $which == tools ]] && lib=$TOOLS_CUDA
    [[ -f $lib ]] || continue
    "$CUDA/bin/cuobjdump" --list-elf "$lib" > "$WORK/elf-$which.txt" 2>&1 || true
    archs=$(grep -oE 'sm_[0-9]+[a-z]?' "$WORK/elf-$which.txt" | sort -u | tr '\n' ' ' || true)
    kernels=$(grep -c 'ELF file' "$WORK/elf-$which.txt" || true)
    echo "cuda-check: the $which build's libggml-cuda.so holds $kernels device code objects for: ${archs:-none}"
    check "the $which build's device code is for sm_$ARCH only" sh -c "echo '$archs' | grep -qxE 'sm_${ARCH}[a-z]? '"
done
check "libggml-cuda.so needs the driver (libcuda.so.1)" sh -c "readelf -d '$ENGINE_CUDA' | grep -q 'NEEDED.*libcuda.so.1'"
check "libggml-cuda.so needs cuBLAS" sh -c "readelf -d '$ENGINE_CUDA' | grep -q 'NEEDED.*libcublas.so'"
# No built file's RUNPATH may lead to a libcuda.so.1 that is not the driver's.
shadowed=""
while IFS= read -r f; do
    rp=$(readelf -d "$f" 2>/dev/null | sed -nE 's/.*\((RUNPATH|RPATH)\).*\[(.*)\]/\2/p' || true)
    rp=${rp//\$ORIGIN/$(dirname "$f")}
    IFS=: read -ra dirs <<< "$rp"
    for d in "${dirs[@]}"; do
        [[ -n $d && -e $d/libcuda.so.1 ]] && shadowed+=" $f ($d)"
    done
done < <(find "$ENGINE_LIB" "$TOOLS" -maxdepth 1 -name 'lib*.so*' -type f; echo "$TB"; echo "$TOOLS/llama-bench"; echo "$TOOLS/llama-server")
check "no RUNPATH leads to the stub as libcuda.so.1${shadowed:+:$shadowed}" test -z "$shadowed"
# Started against the stub driver: it loads, finds no CUDA device, and says so.
"$TB" doctor > "$LOG/doctor.txt" 2>&1 || true
check "tokbench starts; doctor says its engine is built for cuda" grep -q "engine built for: cuda" "$LOG/doctor.txt"
"$TOOLS/llama-bench" --list-devices > "$LOG/llama-bench-devices.txt" 2>&1 || true
# cudart loads libcuda.so.1 itself; the stub's CUDA_ERROR_STUB_LIBRARY comes back as
# "CUDA driver is a stub library" in ggml_cuda_init's message.
check "llama-bench starts; ggml-cuda reaches the (stub) driver" grep -q "stub library" "$LOG/llama-bench-devices.txt"
"$TB" --version > "$LOG/version.txt" 2>&1 || true
step end
trap - EXIT
echo
printf 'cuda-check: %s\n' "${times[@]}"
echo "cuda-check: nvcc $("$CUDA/bin/nvcc" --version | grep -oE 'release [0-9.]+' || true), sm_$ARCH, $JOBS jobs"
echo "cuda-check: doctor says:"
head -20 "$LOG/doctor.txt" | sed 's/^/    /'
echo "cuda-check: llama-bench --list-devices says:"
head -8 "$LOG/llama-bench-devices.txt" | sed 's/^/    /'
echo "cuda-check: $ok ok, $bad failed, $SECONDS s in all"
((bad == 0))
