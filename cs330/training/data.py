"""Omniglot when it is there, the synthetic glyphs only when it is absent; never a silent fallback.

``omniglot_or_glyphs`` decides once, by what is on disk:

- no Omniglot file under the data root (``cs330 data info``): the glyphs, and it says so;
- every file present: Omniglot's course split;
- some files present, or a file that does not read (a truncated zip, an undecodable PNG): the
  loader's error, which names the file. Training on stand-in data because a download broke would
  report numbers about the wrong dataset.
"""

from __future__ import annotations

import hashlib

import torch

from cs330.data import Omniglot, make_glyphs
from cs330.data.omniglot import PARTS, omniglot_dir

GLYPH_ALPHABETS = {"train": (0, 30), "val": (30, 35), "test": (35, 50)}  # 50 alphabets of 20 characters
_GLYPHS: dict[int, torch.Tensor] = {}


def glyph_splits(seed: int = 0) -> dict[str, torch.Tensor]:
    """The stand-in for Omniglot: ``make_glyphs`` with 50 alphabets x 20 characters x 20 drawers, split
    by alphabet like Omniglot's background/evaluation (train 30 alphabets = 600 classes, val 5 = 100,
    test 15 = 300). ``{split: uint8 (classes, 20, 1, 28, 28)}``, 1 = ink; made once per seed per process."""
    if seed not in _GLYPHS:
        _GLYPHS[seed] = make_glyphs(n_alphabets=50, chars_per_alphabet=20, n_drawers=20, seed=seed).images
    images = _GLYPHS[seed]
    return {split: images[20 * lo:20 * hi] for split, (lo, hi) in GLYPH_ALPHABETS.items()}


def omniglot_present(root=None) -> bool:
    """Whether any Omniglot source (zip or extracted folder) is under the data root."""
    folder = omniglot_dir(root)
    return any((folder / f"{p}.zip").exists() or (folder / p).exists() for p in PARTS)


def omniglot_or_glyphs(data: str = "omniglot", root=None, splits=("train", "val", "test"), glyph_seed: int = 0,
                       log=print) -> tuple[dict[str, torch.Tensor], str]:
    """``({split: uint8 (classes, 20, 1, 28, 28)}, source)`` with source ``"omniglot"`` or ``"glyphs"``.

    ``data="glyphs"`` asks for the stand-in; ``data="omniglot"`` gets the glyphs only when no Omniglot
    file exists (see the module docstring). Raises what the Omniglot loader raises for an incomplete
    or corrupt source (``DataNotFoundError``, ``OmniglotIncompleteError``, each naming the file).
    """
    if data not in ("omniglot", "glyphs"):
        raise ValueError(f"data must be 'omniglot' or 'glyphs', got {data!r}")
    if data == "omniglot" and omniglot_present(root):
        return {s: Omniglot(root=root, split=s).images for s in splits}, "omniglot"
    if data == "omniglot" and log:
        log(f"Omniglot is not under {omniglot_dir(root)}: using the synthetic glyphs instead "
            "(see `cs330 data info` / `cs330 data download omniglot`).")
    glyphs = glyph_splits(glyph_seed)
    return {s: glyphs[s] for s in splits}, "glyphs"


def fingerprint(images: dict[str, torch.Tensor]) -> str:
    """sha1 (16 hex digits) of the splits' bytes: two runs with the same fingerprint saw the same data."""
    h = hashlib.sha1()
    for split in sorted(images):
        t = images[split].contiguous().cpu()
        h.update(f"{split}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
