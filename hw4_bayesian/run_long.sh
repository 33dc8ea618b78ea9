#!/usr/bin/env bash
# Part B trained ~10-20x longer than run_all.sh (one CPU thread, ~50 min): is MAML's 5-shot sinusoid
# MSE of 1.17 under-training? Writes results/partB_long/ (report: python report.py --partB_dir results/partB_long).
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:$PYTHONPATH}"
SEED=${SEED:-0}
OUT=results/partB_long
for family in sinusoid mixture; do
  python train_regression.py --method maml --family "$family" --steps 70000 --seed "$SEED" --out "$OUT"
  python train_regression.py --method cnp --family "$family" --steps 30000 --lr 3e-3 --seed "$SEED" --out "$OUT"
  python train_regression.py --method np --family "$family" --steps 30000 --lr 3e-3 --seed "$SEED" --out "$OUT"
  python train_regression.py --method ensemble --family "$family" --steps 15000 --seed "$SEED" --out "$OUT"
  python train_regression.py --method bayeshead --family "$family" --steps 30000 --seed "$SEED" --out "$OUT"
done
