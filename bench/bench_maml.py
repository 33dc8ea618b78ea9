"""Time and peak memory of one MAML meta-iteration: vmap over tasks vs a per-task loop (vs ``higher``),
and a ProtoNet iteration against its FLOP floor.

    python bench/bench_maml.py                 # CPU, one thread, ~3 min
    python bench/bench_maml.py --device cuda   # peak memory from torch.cuda
    python bench/bench_maml.py --malloc keep   # only with cs330.runtime.keep_freed_memory() (CPU default: both)
    python bench/bench_maml.py --impls vmap,vmap+compile,loop+compile,protonet+compile   # torch.compile'd steps

Workload: 5-way 1-shot, 15 queries per class, meta-batch of 16 tasks, Conv4 (64 channels, batch-statistics
norm), 1 inner SGD step, second order, one Adam step; random 28x28 inputs. Each implementation runs in
its own subprocess (peak memory on CPU = the process's peak RSS minus its RSS after set-up, before
the first step: what the meta-iterations add).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
N, K, Q, B = 5, 1, 15, 16


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def batch(device):
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.rand(B, N * K, 1, 28, 28, generator=g), torch.rand(B, N * Q, 1, 28, 28, generator=g)
    sy, qy = torch.arange(N).repeat_interleave(K).repeat(B, 1), torch.arange(N).repeat_interleave(Q).repeat(B, 1)
    return [t.to(device) for t in (sx, sy, qx, qy)]


def make_step(impl: str, device: str):
    """A function running one meta-iteration of ``impl`` ("vmap", "loop", "protonet", each optionally
    "+compile": hw2's train.py --compile, or "higher")."""
    sys.path.insert(0, str(ROOT / "hw2_maml_protonet"))
    import maml as maml_lib
    import protonet as protonet_lib
    from cs330.models import Conv4
    from train import compile_step

    torch.manual_seed(0)
    episode = batch(device)
    impl, _, option = impl.partition("+")
    if impl == "protonet":
        model = protonet_lib.ProtoNet(Conv4(None)).to(device)
        if option == "compile":
            compile_step(model, device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        return lambda: model.outer_step(episode, opt)
    if impl in ("vmap", "loop"):
        model = maml_lib.MAML(Conv4(N), inner_steps=1, inner_lr=0.4, vectorize=impl == "vmap").to(device)
        if option == "compile":
            compile_step(model, device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        return lambda: model.outer_step(episode, opt)
    if impl == "higher":  # the classic implementation: a per-task loop through higher's monkeypatched module
        import higher
        from torch.nn import functional as F

        net = Conv4(N).to(device)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        inner = torch.optim.SGD(net.parameters(), lr=0.4)

        def step():
            opt.zero_grad()
            sx, sy, qx, qy = episode
            for t in range(B):
                with higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
                    diffopt.step(F.cross_entropy(fnet(sx[t]), sy[t]))
                    (F.cross_entropy(fnet(qx[t]), qy[t]) / B).backward()
            opt.step()
        return step
    raise ValueError(impl)


def child(impl: str, device: str, reps: int, threads: int, malloc: str) -> dict:
    torch.set_num_threads(threads)
    if malloc == "keep":
        from cs330.runtime import keep_freed_memory
        assert keep_freed_memory(), "keep_freed_memory() needs glibc"
    step = make_step(impl, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":  # baseline before the first step: model, optimizer and data, no activations
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_mb()
    t = time.perf_counter()
    for _ in range(3 if "+compile" in impl else 1):  # warm-up (compiled: compile, then record CUDA graphs)
        step()
    sync()
    warmup_s = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    if device == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return {"impl": impl, "malloc": malloc, "ms": 1000 * min(times), "ms_median": 1000 * sorted(times)[len(times) // 2],
            "peak_mb": peak, "warmup_s": warmup_s}


def conv4_flops(n_images: int, hidden: int = 64, size: int = 28) -> float:
    """Multiply-adds x 2 of Conv4's convolutions (the bulk of the work) for one forward pass."""
    flops, c_in = 0.0, 1
    for _ in range(4):
        flops += 2 * c_in * hidden * 9 * size * size
        c_in, size = hidden, size // 2
    return flops * n_images


def matmul_gflops(threads: int, n: int = 2048) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impls", default="vmap,loop,higher,protonet")
    p.add_argument("--python", default=sys.executable, help="interpreter for the children (a venv with higher)")
    p.add_argument("--malloc", choices=["default", "keep", "both"], default=None,
                   help="glibc malloc as is, with cs330.runtime.keep_freed_memory(), or both (CPU default: both)")
    p.add_argument("--child", default=None)
    return p


def main() -> None:
    a = build_parser().parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.device, a.reps, a.threads, a.malloc)))
        return
    both = a.malloc == "both" or (a.malloc is None and a.device == "cpu")
    modes = ["default", "keep"] if both else [a.malloc or "default"]
    results = {}
    for malloc in modes:
        for impl in a.impls.split(","):
            py = a.python if impl == "higher" else sys.executable
            out = subprocess.run([py, __file__, "--child", impl, "--device", a.device, "--reps", str(a.reps),
                                  "--threads", str(a.threads), "--malloc", malloc], capture_output=True, text=True)
            if out.returncode:
                why = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode
                print(f"{impl} ({malloc}): failed: {why}")
                continue
            r = results[impl, malloc] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{impl:16s} malloc={malloc:8s} {r['ms']:9.1f} ms/iteration (median {r['ms_median']:.1f})  "
                  f"peak +{r['peak_mb']:.0f} MB  warm-up {r['warmup_s']:.0f} s", flush=True)
    for malloc in modes:
        for impl in ("vmap", "loop", "protonet"):
            if (impl, malloc) in results and (impl + "+compile", malloc) in results:
                e, c = results[impl, malloc], results[impl + "+compile", malloc]
                print(f"malloc={malloc}: {impl}: eager/compiled time {e['ms'] / c['ms']:.2f}x")
        v = results.get(("vmap", malloc))
        for other in ("loop", "higher", "vmap+compile", "loop+compile"):
            if v and (other, malloc) in results:
                o = results[other, malloc]
                print(f"malloc={malloc}: {other}/vmap: time {o['ms'] / v['ms']:.2f}x, "
                      f"peak memory {o['peak_mb'] / max(v['peak_mb'], 1e-9):.2f}x")
    for impl in a.impls.split(","):
        if (impl, "default") in results and (impl, "keep") in results:
            d, k = results[impl, "default"], results[impl, "keep"]
            print(f"{impl}: malloc default/keep: time {d['ms'] / k['ms']:.2f}x")
    if a.device == "cpu" and any(impl.startswith("protonet") for impl, _ in results):
        flops = 3 * conv4_flops(B * N * (K + Q))  # forward + backward (~2x forward)
        peak = matmul_gflops(a.threads)
        floor_ms = 1000 * flops / (peak * 1e9)
        print(f"protonet: {flops / 1e9:.1f} GFLOP/iteration; {a.threads}-thread sgemm peak {peak:.0f} GFLOP/s "
              f"-> floor {floor_ms:.0f} ms")
        for (impl, malloc), r in results.items():
            if impl.startswith("protonet"):
                print(f"{impl} malloc={malloc}: {r['ms']:.0f} ms = {r['ms'] / floor_ms:.2f}x the floor")

if __name__ == "__main__":
    main()
