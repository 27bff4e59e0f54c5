#!/usr/bin/env bash
# The GPU offload path, run for real without a GPU (issue 16): Vulkan on lavapipe, Mesa's
# Vulkan 1.3 device that runs on the CPU. Builds tokbench with `--features vulkan` (the
# vendored llama.cpp's Vulkan backend, about 10 minutes on 2 cores), runs
# bench-configs/vulkan-check.toml (n_gpu_layers 0, 4 of 9, and 99) through the engine and
# checks what was stored: every cell ok, accel vulkan, the device (llvmpipe), the layers
# llama.cpp offloaded (clamped to the model's), and the weights split between host and
# device buffers as the offload says; then that the Vulkan build's logits agree with the CPU
# build's (`tokbench model logits`). Prints a table. `.ci/run` runs it after the tests.
#
#   scripts/vulkan-check.sh                     the engine (what CI runs)
#   VULKAN_TOOLS=1 scripts/vulkan-check.sh      also llama-bench built by `tokbench backends
#                                               build --accel vulkan` (another ~10 minutes)
#   VULKAN_CHECK_PROFILE=release …              a release build (default: the test build's
#                                               profile, so CI compiles only llama.cpp again)
#
# llama.cpp skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them: this
# script sets it to 0 (lavapipe is the only device here). Debian 12's Vulkan headers lack
# VK_EXT_layer_settings; third_party/llama-tools/cmake/tokbench-llama.cmake declares it.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(mesa-vulkan-drivers libvulkan-dev glslc spirv-headers glslang-tools vulkan-tools)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "vulkan-check: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! vulkaninfo --summary 2>/dev/null | grep -q llvmpipe; then
    echo "vulkan-check: no lavapipe (llvmpipe) Vulkan device; vulkaninfo --summary says:" >&2
    vulkaninfo --summary >&2 || true
    exit 1
fi

PROFILE=${VULKAN_CHECK_PROFILE:-dev}
DIR=debug
[[ $PROFILE == release ]] && DIR=release
# Cargo's target directory: CARGO_TARGET_DIR's where it is set, so a checkout can share one.
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/vulkan-check
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
rm -f "$WORK"/check.db*
t0=$(date +%s)
# The CPU build first (the reference the Vulkan build's logits are compared with; in CI
# the tests just built it), kept aside too.
# --workspace, as the tests build: `-p tokbench` alone unifies the dependencies' features
# differently, which rebuilt two dozen of them and llama.cpp once more (7 minutes in CI).
cargo build -q --profile "$PROFILE" --workspace
cp "$TARGET/$DIR/tokbench" "$WORK/tokbench-cpu"
# Once more, one job at a time, if the first try fails: CI once failed compiling llama.cpp's
# largest object here (mul_mm.comp.cpp, a 67 MB generated shader source, about 2 GB of
# compiler memory) where every other run passed. The retry says so, with the disk and
# memory left, so a real failure still fails and a passing retry is visible in the log.
if ! cargo build -q --profile "$PROFILE" --workspace --features tokbench/vulkan; then
    echo "vulkan-check: the Vulkan build failed; disk free $(df -Pk . | awk 'NR == 2 {printf "%.1f GiB", $4 / 1048576}'), memory available $(awk '/^MemAvailable:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" >&2
    dmesg 2>/dev/null | grep -i -E "out of memory|killed process" | tail -3 >&2 || true
    echo "vulkan-check: building it again, one job at a time" >&2
    cargo build -q -j 1 --profile "$PROFILE" --workspace --features tokbench/vulkan
fi
# Kept aside: the next build without the feature puts the CPU binary back in its place.
cp "$TARGET/$DIR/tokbench" "$WORK/tokbench-vulkan"
TB=$WORK/tokbench-vulkan
built=$(($(date +%s) - t0))
export TOKBENCH_CACHE=$WORK/cache GGML_VK_VISIBLE_DEVICES=0

suite=bench-configs/vulkan-check.toml
if [[ ${VULKAN_TOOLS:-0} == 1 ]]; then
    "$TB" backends build --accel vulkan
    sed 's/^\[\[model\]\]$/backends = ["engine", "llama-bench"]\n\n[[model]]/' "$suite" > "$WORK/suite.toml"
    suite=$WORK/suite.toml
fi
t1=$(date +%s)
"$TB" run "$suite" --db "$WORK/check.db" --plain
ran=$(($(date +%s) - t1))

fails=0
# check WHAT SQL: the statement counts the rows that break WHAT; 0 passes. On $CHECK_DB,
# the suite's database unless it names another.
check() {
    local n
    n=$("$TB" query "$2" --db "${CHECK_DB:-$WORK/check.db}" --format csv | tail -1) || n="no answer"
    if [[ $n == 0 ]]; then
        echo "ok    $1"
    else
        echo "FAIL  $1 ($n rows: $2)"
        fails=$((fails + 1))
    fi
}
# The bytes of kind KIND on buffer BUF in a result's placement.
on() {
    echo "(SELECT IFNULL(SUM(json_extract(b.value, '\$.bytes')), 0) FROM json_each(r.placement_json, '\$.buffers') b
        WHERE json_extract(b.value, '\$.buffer') = '$1' AND json_extract(b.value, '\$.kind') = '$2')"
}
check "every cell measured" \
    "SELECT COUNT(*) FROM v_results WHERE status != 'ok'"
check "3 offloads x 2 tests per backend" \
    "SELECT COUNT(*) FROM (SELECT backend, COUNT(*) AS n FROM v_results GROUP BY backend) WHERE n != 6"
check "stored as the Vulkan build" \
    "SELECT COUNT(*) FROM v_results WHERE accel != 'vulkan'"
check "the engine names the device it used: llvmpipe" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND NOT EXISTS (
        SELECT 1 FROM json_each(r.placement_json, '\$.devices') d
        WHERE json_extract(d.value, '\$.name') = 'Vulkan0'
          AND json_extract(d.value, '\$.description') LIKE 'llvmpipe%')"
check "the engine stores the layers offloaded: n_gpu_layers, at most the model's 8 + output" \
    "SELECT COUNT(*) FROM v_results WHERE backend = 'engine'
        AND (n_layers_total IS NOT 9 OR n_layers_offloaded IS NOT MIN(n_gpu_layers, 9))"
check "no layer offloaded: no weights on the device" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND n_gpu_layers = 0
        AND $(on Vulkan0 model) > 0"
check "4 of 9 layers: weights on the host and on the device" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND n_gpu_layers = 4
        AND NOT ($(on Vulkan0 model) > 0 AND $(on CPU_Mapped model) > 0)"
check "every layer offloaded: more weights on the device than at 4 layers" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND n_gpu_layers = 99
        AND $(on Vulkan0 model) <= (SELECT MAX($(on Vulkan0 model)) FROM v_results r
                                    WHERE backend = 'engine' AND n_gpu_layers = 4)"
check "the KV cache follows its layers: all on the device at 99, none at 0" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine'
        AND ((n_gpu_layers = 99 AND ($(on Vulkan0 KV) = 0 OR $(on CPU KV) > 0))
          OR (n_gpu_layers = 0 AND $(on Vulkan0 KV) > 0))"
check "the summed buffer columns are the buffers' sum" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND model_buffer_bytes IS NOT (
        SELECT SUM(json_extract(b.value, '\$.bytes')) FROM json_each(r.placement_json, '\$.buffers') b
        WHERE json_extract(b.value, '\$.kind') = 'model'
          AND json_extract(b.value, '\$.buffer') NOT LIKE '%_REPACK')"
# The engine's own readings of the device's memory (issue 16, item 2): before and after the
# load and in each test. lavapipe has no VK_EXT_memory_budget, so it reports its whole heap
# free at every reading and the engine marks its usage as not visible, rather than storing
# a use of 0.
check "the engine stores Vulkan0's memory readings, marked usage not visible (no VK_EXT_memory_budget)" \
    "SELECT COUNT(*) FROM v_results r WHERE backend = 'engine' AND NOT EXISTS (
        SELECT 1 FROM json_each(r.placement_json, '\$.device_memory') d
        WHERE json_extract(d.value, '\$.name') = 'Vulkan0'
          AND json_extract(d.value, '\$.total_bytes') > 0
          AND json_extract(d.value, '\$.free_in_test') IS NOT NULL
          AND json_extract(d.value, '\$.usage_visible') = 0)"

# The Vulkan build computes what the CPU build computes: the same prompt on the suite's
# model, 256 tokens in one batch (prompt processing's matrix × matrix kernels) and 128 one
# at a time (generation's matrix × vector; on lavapipe each token is a submission, and 256
# of them took 80 s), at a partial and a full offload, against the CPU build's logits. Agreeing: the same top token at >= 90% of positions (random weights have
# near-ties that rounding flips) and an RMS difference <= 5% of the logits' spread. The
# CPU build differs from itself by 2.4% between its batch and one-at-a-time paths, and
# Q8_0 weights from F16 ones by 3.7%; Q6_K's rounding gives 12%, another model 141%.
t2=$(date +%s)
M=$("$TB" model synth --arch tiny --quant Q8_0 --seed 0 2>/dev/null | cut -f3)
for mode in batch stepwise; do
    flag=(--tokens 256)
    [[ $mode == stepwise ]] && flag=(--tokens 128 --stepwise)
    "$WORK/tokbench-cpu" model logits "$M" "${flag[@]}" \
        --out "$WORK/cpu-$mode.logits" >/dev/null
    for ngl in 4 99; do
        if line=$("$TB" model logits "$M" "${flag[@]}" --ngl "$ngl" \
            --against "$WORK/cpu-$mode.logits" | tail -1); then
            echo "ok    logits, $mode, ngl $ngl: ${line#*): }"
        else
            echo "FAIL  logits, $mode, ngl $ngl: ${line#*): }"
            fails=$((fails + 1))
        fi
    done
done
logits=$(($(date +%s) - t2))

# doctor lists the devices the engine's llama.cpp sees: lavapipe where GGML_VK_VISIBLE_DEVICES
# names it; without it, none of Vulkan's, which a Vulkan build is told to fix.
seen=$("$TB" doctor --db "$WORK/check.db" | grep "engine devices" || true)
if [[ $seen == *llvmpipe* ]]; then
    echo "ok    doctor: ${seen#*] }"
else
    echo "FAIL  doctor names no llvmpipe device: '$seen'"
    fails=$((fails + 1))
fi
# The telemetry probe lists the device with what it measures there: llama.cpp's buffers,
# and no process memory or power (no vendor library), each with why.
probe=$("$TB" telemetry probe --format json || true)
if [[ $probe == *'"source": "llama.cpp Vulkan0"'* && $probe == *"no vendor library reads this device's power (llvmpipe"*
      && $probe == *"Vulkan0 reports all "*" bytes free whatever is allocated (its Vulkan driver has no VK_EXT_memory_budget)"* ]]; then
    echo "ok    telemetry probe: lists Vulkan0 (llvmpipe): device buffers ok; power, process memory and the engine's own device use not supported, with why"
else
    echo "FAIL  telemetry probe does not list the lavapipe device: $probe"
    fails=$((fails + 1))
fi
hidden=$(env -u GGML_VK_VISIBLE_DEVICES "$TB" doctor --db "$WORK/check.db" || true)
if [[ $hidden == *"llama.cpp sees no Vulkan device"*GGML_VK_VISIBLE_DEVICES* ]]; then
    echo "ok    doctor, lavapipe hidden: says llama.cpp sees no Vulkan device, and how to show it"
else
    echo "FAIL  doctor, lavapipe hidden, did not say so: $hidden"
    fails=$((fails + 1))
fi

# A device that cannot hold the model (issue 16's faults): ggml's Vulkan backend told that
# its largest buffer is OOM_LIMIT bytes, less than the offloaded weights' buffer (26.8 MB
# at ngl 99) and more than ngl 0's compute buffer (2.6 MB for pp64). The cell at ngl 99 is
# `oom`, with llama.cpp's own lines on which buffer failed ("failed to allocate Vulkan0
# buffer of size …"), and the run goes on to ngl 0, which is measured. (lavapipe ignores
# GGML_VK_FORCE_MAX_ALLOCATION_SIZE: every allocation still succeeded under a 1 MiB one.)
OOM_LIMIT=8388608
cat > "$WORK/oom.toml" <<'EOF'
name = "vulkan-oom"
description = "the tiny model at ngl 99 on a device whose largest allocation is too small"

[[model]]
synth = "tiny"
seed = 0
quants = ["Q8_0"]

[engine]
threads = 2
n_gpu_layers = [99, 0]

[workload]
tests = ["pp64"]
repetitions = 1
warmup = false
timeout_s = 120
EOF
rm -f "$WORK"/oom.db*
oom_rc=0
GGML_VK_FORCE_MAX_BUFFER_SIZE=$OOM_LIMIT "$TB" run "$WORK/oom.toml" --db "$WORK/oom.db" \
    --plain >"$WORK/oom.log" 2>&1 || oom_rc=$?
if [[ $oom_rc == 4 ]]; then
    echo "ok    a device too small: the run ended with exit 4 (a cell not measured)"
else
    echo "FAIL  a device too small: the run's exit code was $oom_rc, not 4; its output:"
    tail -20 "$WORK/oom.log"
    fails=$((fails + 1))
fi
CHECK_DB=$WORK/oom.db check "a device too small: ngl 99 is oom, with llama.cpp's line naming Vulkan0" \
    "SELECT 1 - COUNT(*) FROM v_results WHERE n_gpu_layers = 99 AND status = 'oom'
        AND error LIKE '%llama.cpp said:%Vulkan0%'"
CHECK_DB=$WORK/oom.db check "a device too small: the run went on, ngl 0 measured" \
    "SELECT 1 - COUNT(*) FROM v_results WHERE n_gpu_layers = 0 AND status = 'ok'"
"$TB" query "SELECT n_gpu_layers AS ngl, status, error FROM v_results ORDER BY n_gpu_layers DESC" \
    --db "$WORK/oom.db" --format md || true

# Offload beyond the layer count (issue 16, item 5): with every layer on the device, a
# tensor override keeps layers 0-3's weights on the host (llama.cpp's -ot, the CPU+GPU
# split a card too small for a model relies on), and split_mode none puts everything on
# main_gpu. Each is its own series, and the override moves bytes from Vulkan0 to the host.
cat > "$WORK/offload.toml" <<'EOF'
name = "vulkan-offload"
description = "the tiny model at ngl 99 with layers 0-3 kept on the host, and split_mode none"

[[model]]
synth = "tiny"
seed = 0
quants = ["Q8_0"]

[engine]
threads = 2
n_gpu_layers = 99
split_mode = ["layer", "none"]
override_tensor = ["", 'blk\.[0-3]\..*=CPU']

[workload]
tests = ["pp64"]
repetitions = 1
warmup = false
timeout_s = 300
EOF
rm -f "$WORK"/offload.db*
"$TB" run "$WORK/offload.toml" --db "$WORK/offload.db" --plain
# The model bytes on the host (any buffer but the device's) in a result's placement.
host_model="(SELECT IFNULL(SUM(json_extract(b.value, '\$.bytes')), 0) FROM json_each(r.placement_json, '\$.buffers') b
        WHERE json_extract(b.value, '\$.buffer') NOT LIKE 'Vulkan%' AND json_extract(b.value, '\$.kind') = 'model')"
CHECK_DB=$WORK/offload.db check "offload settings: 4 cells measured, each its own series" \
    "SELECT 4 - COUNT(DISTINCT IFNULL(split_mode, '') || '|' || IFNULL(tensor_buft_overrides, ''))
        FROM v_results WHERE status = 'ok'"
CHECK_DB=$WORK/offload.db check "offload settings: stored as set, NULL at llama.cpp's defaults" \
    "SELECT COUNT(*) FROM v_results WHERE split_mode IS NOT NULL AND split_mode != 'none'
        OR tensor_buft_overrides IS NOT NULL AND tensor_buft_overrides != 'blk\.[0-3]\..*=CPU'"
CHECK_DB=$WORK/offload.db check "a tensor override moves weights from Vulkan0 to the host" \
    "SELECT COUNT(*) FROM v_results r, v_results base
        WHERE r.tensor_buft_overrides IS NOT NULL AND base.tensor_buft_overrides IS NULL
          AND r.split_mode IS base.split_mode
          AND NOT ($(on Vulkan0 model) < (SELECT $(on Vulkan0 model) FROM v_results r WHERE r.result_id = base.result_id)
               AND $host_model > (SELECT $host_model FROM v_results r WHERE r.result_id = base.result_id))"
"$TB" query "SELECT IFNULL(r.split_mode, 'layer') AS sm, IFNULL(r.tensor_buft_overrides, 'none') AS ot,
        ROUND(r.prefill_tps, 1) AS pp_tps,
        ROUND($(on Vulkan0 model) / 1048576.0, 2) AS vk_model_mib,
        ROUND($host_model / 1048576.0, 2) AS host_model_mib
    FROM v_results r ORDER BY r.result_id" --db "$WORK/offload.db" --format md || true

"$TB" query "SELECT r.backend, r.test, r.n_gpu_layers AS ngl,
        r.n_layers_offloaded || '/' || r.n_layers_total AS offloaded,
        ROUND(r.prefill_tps, 1) AS pp_tps, ROUND(r.decode_tps, 2) AS tg_tps,
        ROUND($(on Vulkan0 model) / 1048576.0, 2) AS vk_model_mib,
        ROUND($(on CPU_Mapped model) / 1048576.0, 2) AS host_model_mib,
        ROUND($(on Vulkan0 KV) / 1048576.0, 2) AS vk_kv_mib,
        ROUND($(on Vulkan0 compute) / 1048576.0, 2) AS vk_compute_mib
    FROM v_results r ORDER BY r.backend, r.n_gpu_layers, r.test" --db "$WORK/check.db"
echo "vulkan-check: build ${built} s, run ${ran} s, logits ${logits} s, ${fails} failed"
[[ $fails == 0 ]]
