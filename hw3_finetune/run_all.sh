#!/usr/bin/env bash
# Every HW3 experiment, as recorded in RESULTS.md (one CPU thread: an hour or more; bench/README.md has a timing).
# Usage: CS330_DATA=/path/to/data ./run_all.sh [extra flags for every run, e.g. --device cuda]
set -euo pipefail
cd "$(dirname "$0")"
run() { python run.py "$@" --threads "${THREADS:-1}" "${EXTRA[@]}"; }
EXTRA=("$@")
run reviews --k 0 1 8 128 --modes head last all lora4 lora16 --max-steps 100
run icl --task babi --k 0 1 4 --formats none instruction custom --n-eval 50
run icl --task babi --k 4 --formats instruction --orders 3 --n-eval 50
run lora-lm --task babi --k 8 32 128 --n-eval 50 --epochs 2 --max-steps 40
run icl --task xsum --k 0 1 4 --formats instruction --n-eval 20
run icl --task xsum --k 1 --formats none custom --n-eval 20
run lora-lm --task xsum --k 8 32 --n-eval 20 --epochs 2 --max-steps 20 --max-length 320
