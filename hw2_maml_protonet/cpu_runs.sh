#!/usr/bin/env bash
# The CPU training runs of RESULTS.md ("5-shot and 20-way on CPU"), one thread each, wall-clock capped
# (checkpointed: rerunning a line resumes it). Usage: ./cpu_runs.sh NAME [NAME ...]  with NAME in
#   protonet_5w5s maml_5w5s protonet_20w1s protonet_20w5s maml_20w1s
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CS330_DATA=${CS330_DATA:-../../shared/data}
MINUTES=${MINUTES:-25}
COMMON="--meta_batch 4 --val_every 100 --checkpoint_dir runs/cpu --results_dir results/cpu_runs --no_progress"
for name in "$@"; do
  case $name in
    protonet_5w5s)  args="--algorithm protonet --k_shot 5 --iterations 3000" ;;
    maml_5w5s)      args="--algorithm maml --k_shot 5 --iterations 30000" ;;
    protonet_20w1s) args="--algorithm protonet --n_way 20 --n_query 5 --iterations 3000" ;;
    protonet_20w5s) args="--algorithm protonet --n_way 20 --k_shot 5 --n_query 5 --iterations 3000" ;;
    maml_20w1s)     args="--algorithm maml --n_way 20 --n_query 5 --iterations 30000 --inner_lr 0.1" ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  python train.py $args $COMMON --max_minutes "$MINUTES"
  python train.py $args $COMMON --test --test_tasks 600
done
