#!/usr/bin/env bash
# SIGKILL tokbench at random moments of runs (each time resumed; 80 rounds give 50+ kills,
# the rest finish first) and print the figures:
# kills, runs finished, integrity failures, results lost, duplicated, half written.
# Usage: scripts/kill-test.sh [ROUNDS]   (default 80)
set -euo pipefail
cd "$(dirname "$0")/.."
TOKBENCH_KILL_ROUNDS="${1:-80}" cargo test -q -p tokbench --test kill_resume -- --nocapture 2>&1 \
    | grep -E "kill test:|test result|panicked"
