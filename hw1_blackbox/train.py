"""Train the black-box meta-learner (model.py) on episodes from data_generator.py.

    python train.py --n_way 2 --k_shot 1 --steps 3000              # writes results/lstm-k1-n2.{json,png}
    python train.py --n_way 3 --k_shot 1 --model transformer --steps 3000
    python train.py --data glyphs ...                              # synthetic glyphs, no files needed
    python train.py --compare results/lstm-k?-n?.json --tag lstm      # one plot of several runs: results/compare-lstm.png
    python train.py --n_way 4 --steps 25000 --time_limit 1800 --resume   # continue from results/ckpt/lstm-k1-n4.pt

Every --eval_every steps it measures the query accuracy and loss on --eval_batches meta-batches of
held-out characters (the test split, fixed episodes) and logs them. At the end it writes
``<out>/<run>.json`` (config, history, final accuracy, wall time) and ``<out>/<run>.png`` (curves),
where ``<run>`` is ``<model>-k<K>-n<N>`` plus ``-<tag>`` if given. At every evaluation it also saves a
checkpoint, ``<out>/ckpt/<run>.pt`` (model, optimizer, step, history, RNG states; git-ignored), which
``--resume`` continues from (a longer ``--steps``, or after ``--time_limit`` or a kill). Omniglot is read from the data root
(``CS330_DATA``, see ``cs330 data info``); where it is missing the script says so and uses glyphs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import data_generator as dg
import model as mann


def evaluate(net, images: torch.Tensor, n_way: int, k_shot: int, batch_size: int, n_batches: int,
             seed: int, device) -> tuple[float, float]:
    """(mean query loss, mean query accuracy) over ``n_batches`` fixed episodes (seeded) of ``images``."""
    g = torch.Generator().manual_seed(seed)
    net.eval()
    losses, accs = [], []
    with torch.no_grad():
        for _ in range(n_batches):
            x, y = dg.sample_batch(images, n_way, k_shot, batch_size, g)
            x, y = x.to(device), y.to(device)
            preds = net(x, y)
            losses.append(mann.loss_function(preds, y).item())
            accs.append(mann.query_accuracy(preds, y))
    net.train()
    return sum(losses) / len(losses), sum(accs) / len(accs)


def train(n_way: int = 2, k_shot: int = 1, meta_batch: int = 128, steps: int = 1000, model: str = "lstm",
          seed: int = 0, device: str = "cpu", data: str = "omniglot", lr: float = 1e-3, hidden_dim: int = 128,
          eval_every: int = 100, eval_batches: int = 4, train_images: torch.Tensor | None = None,
          test_images: torch.Tensor | None = None, root=None, time_limit_s: float | None = None,
          progress: bool = True, log=print, checkpoint: str | Path | None = None, resume: bool = False) -> dict:
    """Train a MANN for ``steps`` Adam steps; return ``{"config", "history", "final_test_acc", ...}``.

    ``history`` rows: step, train_loss (mean since the previous row), test_loss, test_acc.
    ``train_images`` / ``test_images`` (C, D, 1, 28, 28) override loading ``data``. With ``time_limit_s`` the
    run stops (after an evaluation) once that much wall time has passed; ``config["steps"]`` is then the steps done.
    With ``checkpoint`` (a ``.pt`` path) the state is saved there at every evaluation; with ``resume`` too, training
    continues from that file if it exists (same settings required). ``time_limit_s`` counts this call only;
    ``time_s`` and ``wall_time_s`` count the whole run.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    source = data
    if train_images is None:
        train_images, source = dg.load_images("train", data, root)
    if test_images is None:
        test_images, _ = dg.load_images("test", source, root)
    # sampling runs on the CPU (cheap tensor indexing); each batch is then moved to the device
    train_x, test_x = dg.prepare_images(train_images), dg.prepare_images(test_images)
    net = mann.MANN(n_way, k_shot + 1, hidden_dim=hidden_dim, model=model, input_dim=train_x.shape[-1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    history, running, start, first = [], [], time.time(), 1
    config = {"n_way": n_way, "k_shot": k_shot, "meta_batch": meta_batch, "model": model, "seed": seed, "data": source,
              "lr": lr, "hidden_dim": hidden_dim}
    if checkpoint and resume and Path(checkpoint).is_file():
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if ck["config"] != config:
            raise ValueError(f"{checkpoint} holds another run: {ck['config']} vs {config}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        g.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        history, first, start = ck["history"], ck["step"] + 1, time.time() - ck["time_s"]
        if log:
            log(f"resuming from {checkpoint} at step {ck['step']} ({ck['time_s']:.0f} s of training so far)")
    session_start = time.time()
    bar = range(first, steps + 1)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"{model} K={k_shot} N={n_way}", mininterval=2.0)
    for step in bar:
        x, y = dg.sample_batch(train_x, n_way, k_shot, meta_batch, g)
        x, y = x.to(device), y.to(device)
        preds = net(x, y)
        loss = mann.loss_function(preds, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(loss.item())
        out_of_time = time_limit_s is not None and time.time() - session_start > time_limit_s
        if step % eval_every == 0 or step == steps or out_of_time:
            test_loss, test_acc = evaluate(net, test_x, n_way, k_shot, meta_batch, eval_batches, seed + 1, device)
            row = {"step": step, "train_loss": sum(running) / len(running), "test_loss": test_loss,
                   "test_acc": test_acc, "time_s": round(time.time() - start, 2)}
            history.append(row)
            running = []
            if checkpoint:
                save_checkpoint(checkpoint, net, opt, g, config, history)
            if progress:
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{test_acc:.3f}")
            if log:
                log(f"step {step:6d}  train loss {row['train_loss']:.4f}  test loss {test_loss:.4f}  "
                    f"test query acc {test_acc:.4f}")
            if out_of_time:
                if log:
                    log(f"time limit of {time_limit_s} s reached: stopping at step {step} of {steps}")
                break
    config = {**config, "steps": history[-1]["step"], "device": str(device)}
    return {"config": config, "history": history, "final_test_acc": history[-1]["test_acc"],
            "best_test_acc": max(r["test_acc"] for r in history), "wall_time_s": round(time.time() - start, 1)}


def save_checkpoint(path, net, opt, g: torch.Generator, config: dict, history: list) -> None:
    """The training state after ``history[-1]`` (written to a temporary file, then renamed: a kill leaves the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": config, "step": history[-1]["step"], "time_s": history[-1]["time_s"], "history": history,
             "model": net.state_dict(), "optimizer": opt.state_dict(), "generator": g.get_state(),
             "torch_rng": torch.get_rng_state()}
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, c = result["history"], result["config"]
    steps = [r["step"] for r in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(steps, [r["test_acc"] for r in h], label="test query accuracy")
    ax1.axhline(1 / c["n_way"], color="gray", ls=":", label="chance")
    ax1.set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title=f"{c['model']}: K={c['k_shot']}, N={c['n_way']}")
    ax1.legend()
    ax2.plot(steps, [r["train_loss"] for r in h], label="train")
    ax2.plot(steps, [r["test_loss"] for r in h], label="test")
    ax2.set(xlabel="step", ylabel="query cross-entropy", title=f"data: {c['data']}")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_compare(paths: list[str], path: Path) -> None:
    """One figure of the test query accuracy of several runs (their ``.json`` files), e.g. the four (K, N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for p in paths:
        run = json.loads(Path(p).read_text())
        h = run["history"]
        ax.plot([r["step"] for r in h], [r["test_acc"] for r in h], label=run.get("name", Path(p).stem))
    ax.set(xlabel="step", ylabel="test query accuracy", ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n_way", type=int, default=2)
    p.add_argument("--k_shot", type=int, default=1)
    p.add_argument("--meta_batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=25000)
    p.add_argument("--model", choices=mann.MODELS, default="lstm")
    p.add_argument("--hidden_dim", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", choices=("omniglot", "glyphs"), default="omniglot")
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--eval_batches", type=int, default=4)
    p.add_argument("--time_limit", type=float, default=None, help="stop after this many seconds (a shorter run)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt/<run>.pt if it exists")
    p.add_argument("--tag", default="", help="appended to the run name, e.g. for your own experiment")
    p.add_argument("--out", default="results")
    p.add_argument("--compare", nargs="+", metavar="RUN.json",
                   help="no training: plot these runs' accuracy curves together into <out>/compare.png (or --tag: compare-<tag>.png)")
    args = p.parse_args(argv)
    if args.compare:
        path = Path(args.out) / (f"compare-{args.tag}.png" if args.tag else "compare.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_compare(args.compare, path)
        print(f"wrote {path}")
        return {}
    name = f"{args.model}-k{args.k_shot}-n{args.n_way}" + (f"-{args.tag}" if args.tag else "")
    out = Path(args.out)
    result = train(args.n_way, args.k_shot, args.meta_batch, args.steps, args.model, args.seed, args.device,
                   args.data, args.lr, args.hidden_dim, args.eval_every, args.eval_batches,
                   time_limit_s=args.time_limit, checkpoint=out / "ckpt" / f"{name}.pt", resume=args.resume)
    result["name"] = name
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / f"{name}.png")
    print(f"{name}: final test query accuracy {result['final_test_acc']:.4f} (best {result['best_test_acc']:.4f}) "
          f"after {result['config']['steps']} steps, {result['wall_time_s']} s; wrote {out / name}.json and .png")
    return result


if __name__ == "__main__":
    main()
