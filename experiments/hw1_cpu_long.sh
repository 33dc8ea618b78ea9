#!/usr/bin/env bash
# HW1's long CPU runs behind hw1_blackbox/results/cpu-long/ and its RESULTS.md ("Toward the course's 25,000 steps"): one after
# another, one thread each, toward the course's 25000 steps, all done by DEADLINE (UTC, HH:MM, required).
# Each run gets a share of the time left, by weight (about its cost per step), so time a run does not need
# goes to the next. --resume: a rerun continues each run from results/cpu-long/ckpt/<run>.pt.
#   DEADLINE=09:22 CS330_DATA=/path/to/data experiments/hw1_cpu_long.sh
set -euo pipefail
cd "$(dirname "$0")/../hw1_blackbox"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=results/cpu-long
DEADLINE=$(date -u -d "${DEADLINE:?set DEADLINE=HH:MM (UTC), when the whole queue must be done}" +%s)
COMMON=(--steps 25000 --eval-every 250 --eval-batches 8 --out "$OUT" --resume)
python train.py --k-shot 1 --n-way 5 --model transformer "${COMMON[@]}" --time-limit "${TRANSFORMER_S:-1140}"
runs=("1 4 8" "1 3 6" "1 2 4.5" "2 2 6")   # K N weight
for i in "${!runs[@]}"; do
  set -- ${runs[$i]}
  left=$(( DEADLINE - $(date +%s) ))
  share=$(python -c "import sys; w=[float(r.split()[2]) for r in sys.argv[2:]]; print(max(60, int(int(sys.argv[1]) * w[0] / sum(w)) - 20))" \
          "$left" "${runs[@]:$i}")
  echo "$(date -u +%T) lstm K=$1 N=$2: time limit $share s ($left s left until the deadline)"
  python train.py --k-shot "$1" --n-way "$2" --model lstm "${COMMON[@]}" --time-limit "$share"
done
python train.py --compare $OUT/lstm-k1-n2.json $OUT/lstm-k2-n2.json $OUT/lstm-k1-n3.json $OUT/lstm-k1-n4.json --tag lstm --out $OUT
echo "$(date -u +%T) queue done"
