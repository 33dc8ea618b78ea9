"""Encoding and decoding one callback frame: the flat format (``wire.pack_flat``) against the peer,
``torch.save``/``torch.load(weights_only=True)`` (``wire.pack``/``wire.unpack``), in the same run.

    python bench/bench_wire.py --repeats 2000

The message is what a call of hw4's stated ``gaussian_nll`` under a vjp sends: three (16, 10, 1)
float32 tensors, a cotangent, a spec and the session fields.
"""

from __future__ import annotations

import argparse
import time

import torch

from cs330.grading import wire


def per_call_ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(16, 10, 1, generator=g) for _ in range(4)]
    message = {"session": "0123456789abcdef", "seq": 3, "callback": 1, "spec": [["vjp", 3]], "args": x}
    flat, saved = wire.pack_flat(message)[wire.HEADER.size:], wire.pack(message)[wire.HEADER.size:]
    rows = {
        "flat": (per_call_ms(lambda: wire.pack_flat(message), args.repeats),
                 per_call_ms(lambda: wire.unpack_flat(flat), args.repeats)),
        "torch.save (peer)": (per_call_ms(lambda: wire.pack(message), args.repeats),
                              per_call_ms(lambda: wire.unpack(saved), args.repeats)),
    }
    print(f"{'format':<20}{'encode ms':>10}{'decode ms':>10}{'total ms':>10}")
    for name, (enc, dec) in rows.items():
        print(f"{name:<20}{enc:>10.3f}{dec:>10.3f}{enc + dec:>10.3f}")
    ratio = sum(rows["flat"]) / sum(rows["torch.save (peer)"])
    print(f"flat / torch.save: {ratio:.3f}x")


if __name__ == "__main__":
    main()
