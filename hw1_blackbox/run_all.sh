#!/usr/bin/env bash
# The runs behind results/ and RESULTS.md, one after another (CPU: minutes each at 3000 steps).
# The course runs 25000 steps; pass STEPS=25000 (a GPU helps: --device cuda is picked automatically).
set -euo pipefail
cd "$(dirname "$0")"
STEPS=${STEPS:-3000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for kn in "1 2" "2 2" "1 3" "1 4"; do
  set -- $kn
  python train.py --k-shot "$1" --n-way "$2" --steps "$STEPS" --model lstm
done
python train.py --k-shot 1 --n-way 3 --steps "$STEPS" --model conv_lstm
python train.py --k-shot 1 --n-way 3 --steps "$STEPS" --model transformer
# one experiment to improve 1-shot 3-way: a wider LSTM with a larger learning rate
python train.py --k-shot 1 --n-way 3 --steps "$STEPS" --model lstm --hidden-dim 256 --lr 2e-3 --tag h256-lr2e-3
# the curves together: results/compare-lstm.png (the four (K, N)) and results/compare-k1-n3.png (variants, experiment)
python train.py --compare results/lstm-k1-n2.json results/lstm-k2-n2.json results/lstm-k1-n3.json results/lstm-k1-n4.json --tag lstm
python train.py --compare results/lstm-k1-n3.json results/conv_lstm-k1-n3.json results/transformer-k1-n3.json results/lstm-k1-n3-h256-lr2e-3.json --tag k1-n3
