#!/usr/bin/env bash
# The runs behind results/ and RESULTS.md, one after another on one CPU thread (~33 min in all, with Omniglot).
# Part A: memorisation on synthetic glyphs, and on Omniglot when the data root (CS330_DATA) holds it;
# Part B: regression learners on sinusoid and mixture tasks; Part C: meta-gradient costs.
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:$PYTHONPATH}"   # the cs330 package of this checkout
DATA=${DATA:-glyphs}
SEED=${SEED:-0}

# Part A: black-box learner (500 steps) and MAML (200 steps), no fix / label shuffling / meta-regulariser
for fix in none shuffle; do
  python train_memorization.py --learner blackbox --fix "$fix" --steps 500 --data "$DATA" --seed "$SEED"
done
python train_memorization.py --learner blackbox --fix mr --beta 0.01 --steps 500 --data "$DATA" --seed "$SEED"
python train_memorization.py --learner blackbox --fix mr --beta 0.03 --steps 500 --data "$DATA" --seed "$SEED"
for fix in none shuffle; do
  python train_memorization.py --learner maml --fix "$fix" --steps 200 --data "$DATA" --seed "$SEED"
done
python train_memorization.py --learner maml --fix mr --beta 1e-4 --steps 200 --data "$DATA" --seed "$SEED"
# does MAML memorise if trained longer? (the 200-step run above still reads the support set)
python train_memorization.py --learner maml --fix none --steps 600 --data "$DATA" --seed "$SEED" --name maml-none-600steps
# MAML memorises when the training pool is small: 5 classes, so every training task is the same 5 characters
for fix in none shuffle; do
  python train_memorization.py --learner maml --fix "$fix" --train-classes 5 --steps 300 --data "$DATA" --seed "$SEED" --name "maml-$fix-5classes"
done
python train_memorization.py --learner maml --fix mr --beta 1e-4 --train-classes 5 --steps 300 --data "$DATA" --seed "$SEED" \
  --name maml-mr-beta0.0001-5classes
# Part A on real Omniglot (first 100 classes of the course train split; new classes: its test split), when it is there
if python -c "from cs330.data import Omniglot; Omniglot(split='train')" 2>/dev/null; then
  for fix in none shuffle; do
    python train_memorization.py --learner blackbox --fix "$fix" --steps 500 --data omniglot --seed "$SEED" --name "blackbox-$fix-omniglot"
  done
  python train_memorization.py --learner maml --fix none --steps 200 --data omniglot --seed "$SEED" --name maml-none-omniglot
  for fix in none shuffle; do
    python train_memorization.py --learner maml --fix "$fix" --train-classes 5 --steps 300 --data omniglot --seed "$SEED" \
      --name "maml-$fix-omniglot-5classes"
  done
  for beta in 1e-4 1e-3; do
    python train_memorization.py --learner maml --fix mr --beta $beta --train-classes 5 --steps 300 --data omniglot --seed "$SEED" \
      --name "maml-mr-beta$beta-omniglot-5classes"
  done
fi
# Part A, regression: tagged sinusoids, the tag tells the function (nonexclusive) or not (exclusive)
for method in cnp maml; do
  for tasks in nonexclusive exclusive; do
    python train_tagged.py --method "$method" --tasks "$tasks" --seed "$SEED"
  done
done

# Part B: five learners on two task families
for family in sinusoid mixture; do
  python train_regression.py --method maml --family "$family" --steps 3000 --seed "$SEED"
  python train_regression.py --method ensemble --family "$family" --steps 1500 --seed "$SEED"
  python train_regression.py --method cnp --family "$family" --steps 3000 --lr 3e-3 --seed "$SEED"
  python train_regression.py --method np --family "$family" --steps 3000 --lr 3e-3 --seed "$SEED"
  python train_regression.py --method bayeshead --family "$family" --steps 3000 --seed "$SEED"
done

# Part C: time / memory per meta-iteration and gradient agreement
python bench_metagrad.py

python report.py > results/summary.md
cat results/summary.md
