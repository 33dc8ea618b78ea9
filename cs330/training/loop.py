"""The training loop: the homework supplies one step and one evaluation; the loop does the rest.

    state = RunState()                                   # or restored from a checkpoint
    train_loop(step_fn, evaluate_fn, state, steps=2000, eval_every=100, time_limit=600, save=save)

- ``step_fn(step) -> float | dict``: one optimizer step, given the number of steps done before it
  (0, 1, ...: a learning-rate schedule or a per-step data seed is a function of it); returns the
  training loss, or a dict of training metrics (``{"loss": ..., "acc": ...}``).
- ``evaluate_fn(step) -> dict``: held-out metrics after ``step`` steps, e.g. ``{"val_acc": 0.9}``.
- Evaluation cadence: after every ``eval_every`` steps, after the last step, and when out of time.
  Each evaluation appends a history row ``{"step", "train_<metric>"..., <evaluate_fn's metrics>,
  "time_s"}`` and calls ``save(state)`` (e.g. a checkpoint).
- Running loss: each training metric is an exponential moving average with factor ``smoothing``,
  bias-corrected (divided by ``1 - smoothing**n`` after n steps), so early rows are not pulled to 0.
- ``time_limit`` (seconds, this call): evaluate, save and stop once it has passed.
- Ctrl-C: the step in progress finishes (a half-applied optimizer step would corrupt the run), then
  ``save(state)`` runs and the program exits with a message; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm import tqdm


@dataclass
class RunState:
    """Where a run is: steps done, training wall time so far (across resumes), evaluation history."""

    step: int = 0
    time_s: float = 0.0
    history: list[dict] = field(default_factory=list)


@contextmanager
def deferred_interrupt():
    """While active, Ctrl-C (SIGINT) only sets a flag (``flag["set"]``); a second Ctrl-C interrupts at once.

    Outside the main thread signals cannot be caught; there Ctrl-C keeps its usual effect.
    """
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def train_loop(step_fn, evaluate_fn, state: RunState, *, steps: int, eval_every: int,
               time_limit: float | None = None, smoothing: float = 0.9, save=None, progress: bool = True,
               log=print, desc: str = "train") -> RunState:
    """Run ``step_fn`` from ``state.step`` up to ``steps`` (see the module docstring); return ``state``."""
    start, clock, time_before = state.step, time.monotonic(), state.time_s
    averages: dict[str, float] = {}
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress, mininterval=2.0)
    with deferred_interrupt() as interrupt:
        while state.step < steps:
            metrics = step_fn(state.step)
            state.step += 1
            bar.update(1)
            for key, value in (metrics if isinstance(metrics, dict) else {"loss": metrics}).items():
                averages[key] = smoothing * averages.get(key, 0.0) + (1 - smoothing) * float(value)
            elapsed = time.monotonic() - clock
            state.time_s = time_before + elapsed
            out_of_time = time_limit is not None and elapsed >= time_limit
            if state.step % eval_every == 0 or state.step == steps or out_of_time:
                correction = 1 - smoothing ** (state.step - start)
                row = {"step": state.step, **{f"train_{k}": v / correction for k, v in averages.items()},
                       **evaluate_fn(state.step), "time_s": round(state.time_s, 2)}
                state.history.append(row)
                if save is not None:
                    save(state)
                shown = {
                    k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items() if k not in ("step", "time_s")
                }
                bar.set_postfix(shown, refresh=False)
                if log:
                    log(
                        f"step {state.step:6d}  "
                        + "  ".join(f"{k} {v}" for k, v in shown.items())
                        + f"  ({state.time_s:.0f} s)"
                    )
            if out_of_time:
                if log:
                    log(f"time limit of {time_limit:g} s reached: stopping at step {state.step} of {steps}")
                break
            if interrupt["set"]:
                if save is not None:
                    save(state)
                bar.close()
                raise SystemExit(f"interrupted at step {state.step} of {steps}"
                                 + ("; checkpoint saved, rerun with --resume to continue" if save else ""))
    bar.close()
    return state
