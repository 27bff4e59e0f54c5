#!/usr/bin/env bash
# The prepared GPU check of telemetry (issue 4), for a machine with an NVIDIA GPU and the
# driver but no Rust: carry a tokbench built elsewhere (NVML is loaded at run time, so a CPU
# build reads the GPU too) and run this. It needs python3 with PyTorch for a 30 s GPU load.
#
#   scripts/gpu-telemetry-check.sh path/to/tokbench OUT_DIR
#
# Writes OUT_DIR/probe.json (every NVML metric, available or why not),
# OUT_DIR/nvml-recording.json (every NVML call over the load, for TOKBENCH_NVML_REPLAY) and
# OUT_DIR/capture.json (raw samples at 100 ms while PyTorch keeps the GPU busy for 30 s,
# following the load's PID, so the process's own device memory is sampled), then prints a
# short table: the energy counter's update interval, counter vs integrated energy over the
# load, and whether the load's PID was seen. Keep capture.json as a test fixture.
set -euo pipefail
TB=${1:?usage: gpu-telemetry-check.sh TOKBENCH OUT_DIR}
OUT=${2:?usage: gpu-telemetry-check.sh TOKBENCH OUT_DIR}
mkdir -p "$OUT"
"$TB" telemetry probe --format json > "$OUT/probe.json"
"$TB" telemetry probe

python3 - <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
end = time.time() + 32
while time.time() < end:
    b = a @ a
torch.cuda.synchronize()
PY
LOAD=$!
sleep 1
# The NVML calls themselves, recorded beside the capture: TOKBENCH_NVML_REPLAY plays the
# file back (keep it as crates/telemetry/tests/fixtures/nvml/<card>-recorded.json).
"$TB" telemetry nvml-record --seconds 30 --interval-ms 100 --pid "$LOAD" --out "$OUT/nvml-recording.json" &
REC=$!
"$TB" telemetry capture --seconds 30 --interval-ms 100 --pid "$LOAD" --out "$OUT/capture.json"
wait "$REC"
wait "$LOAD"

python3 - "$OUT/capture.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
by = {}
for s in d["samples"]:
    by.setdefault(s["metric"], []).append((s["t_ms"], s["value"]))
def show(k, v): print(f"{k:<44} {v}")
e = by.get("energy_j", [])
changes = [t for (t, v), (_, pv) in zip(e[1:], e) if v != pv]
gaps = [b - a for a, b in zip(changes, changes[1:])]
show("energy counter samples", len(e))
show("energy counter update interval, ms (median)", sorted(gaps)[len(gaps) // 2] if gaps else "—")
p = by.get("power_w", [])
integ = sum((t1 - t0) / 1000 * (v0 + v1) / 2 for (t0, v0), (t1, v1) in zip(p, p[1:]))
counter = (e[-1][1] - e[0][1]) if len(e) > 1 else None
show("energy over the load, counter (J)", f"{counter:.1f}" if counter is not None else "—")
show("energy over the load, integrated power (J)", f"{integ:.1f}" if p else "—")
if counter and p:
    show("integrated / counter", f"{integ / counter:.3f}")
show("mean power (W)", f"{sum(v for _, v in p) / len(p):.1f}" if p else "—")
vp = by.get("vram_proc_bytes", [])
show("load's own device memory seen (peak MiB)", f"{max(v for _, v in vp) / 2**20:.0f}" if vp else "no")
show("device memory used (peak MiB)", f"{max(v for _, v in by.get('vram_used_bytes', [(0, 0)])) / 2**20:.0f}")
PY
