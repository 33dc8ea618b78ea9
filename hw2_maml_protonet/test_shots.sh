#!/usr/bin/env bash
# Handout question: models meta-trained 1-shot, tested with K = 1..10 support examples per class.
# Usage: ./test_shots.sh CHECKPOINT_DIR RESULTS_DIR [extra train.py flags, e.g. --meta-batch-size 4 --device cuda]
# Appends "<run>_test<K>shot" entries to RESULTS_DIR/metrics.json and draws RESULTS_DIR/test_shots.png.
# The runs tested: PROTONET=<run name> MAML=<run name> (default protonet_5w1s and maml_5w1s_K1);
# ALGORITHMS="protonet" tests one only (the plot shows both from metrics.json).
set -euo pipefail
cd "$(dirname "$0")"
ckpt=$1 results=$2; shift 2
declare -A run=([protonet]=${PROTONET:-protonet_5w1s} [maml]=${MAML:-maml_5w1s_K1})
for k in ${KS:-1 2 3 5 10}; do
    for algorithm in ${ALGORITHMS:-protonet maml}; do
        # Omniglot has 20 drawings per character: K support + queries must fit, so K = 10 uses 10 queries
        python train.py --algorithm "$algorithm" --test --test-k-shot "$k" --n-query $(( k + 15 > 20 ? 20 - k : 15 )) --test-tasks 600 \
            --checkpoint-dir "$ckpt" --results-dir "$results" --name "${run[$algorithm]}" "$@"
    done
done
python - "$results" "${run[protonet]}" "${run[maml]}" <<'PY'
import json, sys
from pathlib import Path
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
metrics = {key: entry.get("final", entry) for key, entry in json.loads((Path(sys.argv[1]) / "metrics.json").read_text()).items()}  # train.py --test entries: the numbers are under "final"
fig, ax = plt.subplots(figsize=(5, 3.6))
for algorithm, name in zip(("protonet", "maml"), sys.argv[2:]):
    pts = sorted((m["k_shot"], m["test_acc"], m["ci95"]) for key, m in metrics.items()
                 if key == name or key.startswith(name + "_test") and key.endswith("shot"))
    its = {m["iterations"] for key, m in metrics.items() if key == name}
    label = f"{algorithm} ({name}, {its.pop()} iterations)" if len(its) == 1 else f"{algorithm} ({name})"
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts], marker="o", capsize=3, label=label)
    print(label, [(k, round(100 * a, 2)) for k, a, _ in pts])
ax.set(xlabel="support examples per class at test (trained with K = 1)", ylabel="test accuracy, 5-way", xscale="log")
ax.set_xticks([1, 2, 3, 5, 10], labels=["1", "2", "3", "5", "10"]); ax.legend(fontsize=7); fig.tight_layout()
fig.savefig(Path(sys.argv[1]) / "test_shots.png", dpi=100)
PY
