#!/usr/bin/env bash
# HW2's CPU training runs of its RESULTS.md ("5-shot and 20-way at meta-batch 4 on CPU", "Snell et al.'s recipe", "MAML ..."), one thread
# each, wall-clock capped (checkpointed: rerunning a line resumes it). Usage: experiments/hw2_cpu_runs.sh NAME [NAME ...]
# with NAME in  protonet_5w5s maml_5w5s protonet_20w1s protonet_20w5s maml_20w1s maml_20w5s protonet_60w1s_rot
# protonet_60w5s_rot maml_5w1s_rot maml_5w5s_rot
# A run is tested on 600 test tasks of its own N-way K-shot, or of each setting in its "tests" list.
set -euo pipefail
cd "$(dirname "$0")/../hw2_maml_protonet"   # results/ and runs/ are the homework's
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CS330_DATA=${CS330_DATA:-../../shared/data}
MINUTES=${MINUTES:-25}
COMMON="--meta-batch-size 4 --eval-every 100 --checkpoint-dir runs/cpu --results-dir results/cpu_runs --no-progress"
for name in "$@"; do
  tests=("")
  case $name in
    protonet_5w5s)  args="--algorithm protonet --k-shot 5 --steps 3000" ;;
    maml_5w5s)      args="--algorithm maml --k-shot 5 --steps 30000" ;;
    protonet_20w1s) args="--algorithm protonet --n-way 20 --n-query 5 --steps 3000" ;;
    protonet_20w5s) args="--algorithm protonet --n-way 20 --k-shot 5 --n-query 5 --steps 3000" ;;
    maml_20w1s)     args="--algorithm maml --n-way 20 --n-query 5 --steps 30000 --rotations --compile" ;;
    maml_20w5s)     args="--algorithm maml --n-way 20 --k-shot 5 --n-query 5 --steps 30000 --eval-every 250 --rotations --compile" ;;
    # Snell et al.: 60-way episodes, 5 queries, rotated classes, Adam halved every 2000 episodes;
    # one model for the 5-way and 20-way 1-shot tests, selected on 20-way validation tasks
    protonet_60w1s_rot) args="--algorithm protonet --n-way 60 --n-query 5 --meta-batch-size 1 --rotations --lr-halve-every 2000
                              --steps 10000 --eval-every 250 --test-n-way 20 --compile"
                        tests=("--test-n-way 5 --test-n-query 15" "--test-n-way 20") ;;
    # the same for 5-shot, on a schedule compressed to fit a session (halve every 500, 3000 episodes)
    protonet_60w5s_rot) args="--algorithm protonet --n-way 60 --k-shot 5 --n-query 5 --meta-batch-size 1 --rotations
                              --lr-halve-every 500 --steps 3000 --eval-every 250 --test-n-way 20 --compile"
                        tests=("--test-n-way 5 --test-n-query 15" "--test-n-way 20") ;;
    # MAML 5-way to the end of a schedule compressed to fit a session on one core (the paper: 60000
    # iterations of 32 tasks); rotated classes as in the paper; tested with 1 (as trained) and 3 inner steps
    maml_5w1s_rot)  args="--algorithm maml --rotations --lr-halve-every 3000 --steps 12000 --eval-every 250 --compile"
                    tests=("" "--test-inner-steps 3") ;;
    maml_5w5s_rot)  args="--algorithm maml --k-shot 5 --rotations --lr-halve-every 2000 --steps 8000 --eval-every 250 --compile"
                    tests=("" "--test-inner-steps 3") ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  python train.py $COMMON $args --resume --time-limit "$(( MINUTES * 60 ))"
  for t in "${tests[@]}"; do python train.py $COMMON $args $t --test --test-tasks 600; done
done
