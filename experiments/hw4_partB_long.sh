#!/usr/bin/env bash
# HW4's Part B trained ~10-20x longer than hw4_bayesian/run_all.sh (one CPU thread, ~50 min): is MAML's 5-shot
# sinusoid MSE of 1.17 under-training? Writes hw4_bayesian/results/partB_long/ (RESULTS.md "Part B trained longer";
# report: python hw4_bayesian/report.py --partB_dir hw4_bayesian/results/partB_long).
set -euo pipefail
cd "$(dirname "$0")/../hw4_bayesian"
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
