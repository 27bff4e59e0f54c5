#!/usr/bin/env python3
"""Telemetry's cost as a share of a core: the CPU time of tokbench's own process (not its
engine child; read from /proc/PID/stat while it runs) over a tg256 x10 run with telemetry at
100 ms and with it off, alternately, twice. The difference over the wall time is what
sampling costs (issue 20's goal: at most 0.5%). Linux only; clock ticks are 10 ms, so the
figure is good to about 0.15%.

    scripts/telemetry-cost.py MODEL.gguf      (TOKBENCH: the binary, default target/release)
"""
import os, subprocess, sys, time
M = sys.argv[1]
TB = os.environ.get("TOKBENCH", "target/release/tokbench")
tick = os.sysconf("SC_CLK_TCK")
def run(interval):
    db = f"/tmp/tel-{interval}.db"
    for s in ("", "-wal", "-shm"):
        try: os.remove(db + s)
        except FileNotFoundError: pass
    t0 = time.time()
    p = subprocess.Popen([TB, "run", "-m", M, "-p", "0", "-n", "256", "-r", "10", "-t", "1",
                          "--db", db, "--plain", "--telemetry-interval-ms", str(interval)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = 0
    while p.poll() is None:
        try:
            f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
            last = (int(f[11]) + int(f[12])) / tick  # utime + stime of the process itself
        except (FileNotFoundError, IndexError, ValueError):
            pass
        time.sleep(0.02)
    return last, time.time() - t0
for _ in range(2):
    on, w_on = run(100)
    off, w_off = run(0)
    print(f"telemetry 100 ms: {on:.2f} s CPU in {w_on:.1f} s; off: {off:.2f} s CPU in {w_off:.1f} s; "
          f"cost {100 * (on - off) / w_on:.2f}% of a core")
