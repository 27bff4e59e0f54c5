#!/usr/bin/env python3
"""Writes the synthetic NVML recording of an H200 that tokbench's NVML replay tests play
(crates/telemetry/tests/fixtures/nvml/h200-synthetic.json). Seeded: the same file every
time. The figures are not measured; crates/telemetry/tests/fixtures/nvml/README.md says
what each is based on. Replace it with a recorded file where an NVIDIA GPU is at hand.

    scripts/nvml-fixture.py [OUT]
"""
import json
import random
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "crates/telemetry/tests/fixtures/nvml/h200-synthetic.json"
STEP_MS = 100
END_MS = 120_000
TDP_MW = 700_000              # H200 SXM board power limit (catalog: 700 W)
IDLE_MW = 75_000              # an assumption: see the README
MIB = 1 << 20
TOTAL = 143_771 * MIB         # 141 GB of HBM3e as NVML counts it (illustrative)
DRIVER_RESERVED = 560 * MIB   # used with nothing running (illustrative)
OTHER_PID, OTHER_BYTES = 4242, 512 * MIB   # another process on the device
BACKEND_BYTES = 20 * 1024 * MIB            # the backend's weights, KV cache and buffers
ENERGY_START_MJ = 8_765_432_100            # the driver loaded days ago
SW_POWER_CAP = 0x4            # nvmlClocksEventReasonSwPowerCap
GPU_IDLE = 0x1                # nvmlClocksEventReasonGpuIdle

rng = random.Random(7)


def phase(t):
    if t < 3_000:
        return "idle"
    if t < 5_000:
        return "load"
    if t < 115_000:
        return "compute"
    return "cooldown"


def instant_mw(t):
    p = phase(t)
    if p == "idle":
        return IDLE_MW + rng.randint(-1_500, 1_500)
    if p == "load":
        return 150_000 + (t - 3_000) * 75 + rng.randint(-5_000, 5_000)
    if p == "compute":
        # 91-99% of the limit; never above it (the power cap holds it there).
        return min(TDP_MW, 640_000 + rng.randint(0, 52_000))
    return max(IDLE_MW, 300_000 - (t - 115_000) * 45) + rng.randint(-2_000, 2_000)


entries = []
energy_mj = float(ENERGY_START_MJ)
last_mw = None
window = []
temp = 31.0
for t in range(0, END_MS + 1, STEP_MS):
    p = phase(t)
    mw = instant_mw(t)
    if last_mw is not None:
        energy_mj += (last_mw + mw) / 2 * STEP_MS / 1000   # mW x s = mJ
    last_mw = mw
    window = (window + [mw])[-10:]                      # the 1 s average of nvmlDeviceGetPowerUsage
    heating = {"idle": -0.02, "load": 0.05, "compute": 0.03, "cooldown": -0.1}[p]
    temp = min(68.0, max(31.0, temp + heating + rng.uniform(-0.05, 0.05)))
    backend = p in ("load", "compute", "cooldown")
    backend_bytes = 0
    if p == "load":
        backend_bytes = BACKEND_BYTES * (t - 3_000) // 2_000
    elif backend:
        backend_bytes = BACKEND_BYTES
    procs = [[OTHER_PID, OTHER_BYTES]]
    if backend:
        procs.insert(0, ["backend", backend_bytes])
    sm = 345 if p == "idle" else (1_980 if mw < 685_000 else 1_830)
    reasons = GPU_IDLE if p == "idle" else (SW_POWER_CAP if mw >= 685_000 else 0)
    entries.append({
        "t_ms": t,
        "devices": [{
            "power_instant_mw": mw,
            "power_usage_mw": round(sum(window) / len(window)),
            "total_energy_mj": int(energy_mj),
            "memory_used_bytes": DRIVER_RESERVED + OTHER_BYTES + backend_bytes,
            "clock_sm_mhz": sm,
            "clock_mem_mhz": 2_619,
            "temperature_c": round(temp),
            "utilization_gpu_pct": 0 if p == "idle" else (rng.randint(97, 100) if p == "compute" else 35),
            "enforced_power_limit_mw": TDP_MW,
            "throttle_reasons": reasons,
            "compute_processes": procs,
            "graphics_processes": [],
        }],
    })

# Each entry lists only what changed since the one before (the replay carries the rest).
prev = {}
for e in entries:
    d = e["devices"][0]
    e["devices"][0] = {k: v for k, v in d.items() if prev.get(k) != v}
    prev = d

doc = {
    "recording": "synthetic",
    "note": "Not measured: made by scripts/nvml-fixture.py; see README.md beside this file for what each figure is based on.",
    "driver_version": "550.54.15",
    "nvml_version": "12.550.54.15",
    "cuda_driver_version": 12040,
    "devices": [{
        "name": "NVIDIA H200",
        "uuid": "GPU-00000000-0000-0000-0000-000000000200",
        "architecture": "Hopper",
        "memory_total_bytes": TOTAL,
        "power_limit_default_mw": TDP_MW,
        "max_clock_sm_mhz": 1_980,
        "max_clock_mem_mhz": 2_619,
    }],
    "timeline": entries,
}
with open(OUT, "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"{OUT}: {len(entries)} readings over {END_MS / 1000:.0f} s, "
      f"{(energy_mj - ENERGY_START_MJ) / 1000:.0f} J")
