#!/usr/bin/env bash
# Every run behind results/metrics.json and RESULTS.md, one after another (~6 min on one CPU core).
#   CS330_DATA=/path/to/data bash run_all.sh [extra train.py flags, e.g. --device cuda]
set -euo pipefail
cd "$(dirname "$0")"
rm -f results/metrics.json
python train.py --no-progress --arch shared   --sweep 0 0.1 0.25 0.5 0.75 0.9 1 "$@"
python train.py --no-progress --arch separate --sweep 0 0.1 0.25 0.5 0.75 0.9 1 "$@"
for arch in shared separate; do
  for weighting in uncertainty pcgrad; do
    python train.py --no-progress --arch "$arch" --weighting "$weighting" "$@"
  done
done
