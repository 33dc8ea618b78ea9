#!/usr/bin/env bash
# What HW2's RESULTS.md still needs from a GPU, as device calls of under 10 minutes each (resumable: rerunning
# a line continues from runs/gpu). Prepared on CPU; its GPU paths (--compile's CUDA graphs) are unrun.
#
#   experiments/hw2_gpu_session.sh bench                # ~4 min: bench_maml on cuda, eager vs compiled, vs higher
#   experiments/hw2_gpu_session.sh train NAME MINUTES   # one run, capped, then its tests; NAME as below
#
# Paths below are relative to hw2_maml_protonet/ (the script works there). Needs runs/omniglot_course_28.pt
# (torch.save of the course split's three image tensors; make it on a machine with the data: see RESULTS.md)
# and, for the `higher` peer, its wheel in ../bench/wheels/
# (`pip download --no-deps higher==0.2.1 -d bench/wheels`); carry both: the device has no network.
# Results go to $OUT (the device's return folder) when set, else to results/gpu_runs.
set -euo pipefail
cd "$(dirname "$0")/../hw2_maml_protonet"
OUT=${OUT:-results/gpu_runs}
mkdir -p "$OUT"
case ${1:-} in
  bench)
    pip install --no-deps --no-index ../bench/wheels/higher-*.whl >/dev/null 2>&1 || echo "no higher wheel: its row is skipped"
    python ../bench/bench_maml.py --device cuda --reps 20 \
        --impls vmap,vmap+compile,loop,loop+compile,higher,protonet,protonet+compile | tee "$OUT/bench_cuda.txt"
    ;;
  train)
    name=$2 minutes=$3
    D="--data-file runs/omniglot_course_28.pt --checkpoint-dir runs/gpu --results-dir $OUT --no-progress --compile"
    tests=("")
    case $name in  # the papers' settings: MAML 5-way meta-batch 32 (1 step, 0.4), 20-way meta-batch 16 (5 steps,
                   # 0.1), rotated classes (Finn et al. follow Santoro et al.'s augmentation)
      maml_5w1s)  args="--algorithm maml --rotations --meta-batch-size 32 --steps 60000 --eval-every 2000" ;;
      maml_5w5s)  args="--algorithm maml --rotations --k-shot 5 --meta-batch-size 32 --steps 60000 --eval-every 2000" ;;
      maml_20w1s) args="--algorithm maml --rotations --n-way 20 --n-query 5 --meta-batch-size 16 --inner-steps 5 --inner-lr 0.1 --steps 60000 --eval-every 2000" ;;
      maml_20w5s) args="--algorithm maml --rotations --n-way 20 --k-shot 5 --n-query 5 --meta-batch-size 16 --inner-steps 5 --inner-lr 0.1 --steps 60000 --eval-every 2000" ;;
      # Snell et al.: 60-way episodes with rotated classes; one model per shot, tested 5- and 20-way
      protonet_60w1s) args="--algorithm protonet --n-way 60 --n-query 5 --meta-batch-size 1 --rotations --lr-halve-every 2000 --steps 20000 --eval-every 1000 --test-n-way 20"
                      tests=("--test-n-way 5 --test-n-query 15" "--test-n-way 20") ;;
      protonet_60w5s) args="--algorithm protonet --n-way 60 --k-shot 5 --n-query 5 --meta-batch-size 1 --rotations --lr-halve-every 2000 --steps 20000 --eval-every 1000 --test-n-way 20"
                      tests=("--test-n-way 5 --test-n-query 15" "--test-n-way 20") ;;
      *) echo "unknown run $name" >&2; exit 2 ;;
    esac
    python train.py $D $args --resume --time-limit "$(( minutes * 60 ))"
    for t in "${tests[@]}"; do python train.py $D $args $t --test --test-tasks 1000; done
    cp -r runs/gpu "$OUT/checkpoints"  # brought back, to carry into the next call or session
    ;;
  *) echo "usage: $0 bench | train NAME MINUTES" >&2; exit 2 ;;
esac
