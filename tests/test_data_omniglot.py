"""Omniglot: reading zips or folders, count checks, the tensor cache, splits (real data test skips if absent)."""

import dataclasses
import hashlib
import io
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cs330.data import omniglot, registry
from cs330.data.episodes import EpisodeSampler
from cs330.data.omniglot import (ALPHABETS, Omniglot, OmniglotIncompleteError, cache_path, load_omniglot,
                                 split_indices, with_rotations)
from cs330.data.root import DataNotFoundError

FAKE = {"images_background": {"Alpha": 2, "Beta": 1}, "images_evaluation": {"Gamma": 2}}


def png(block: int, size: int = 10) -> bytes:
    """A mode-"1" PNG like Omniglot's: white (True) background, a black (False) block x block stroke."""
    a = np.ones((size, size), dtype=bool)
    a[:block, :block] = False
    buf = io.BytesIO()
    Image.fromarray(a).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def make_fake(root: Path, spec=FAKE, drawers=20, shift=0, extracted=False) -> Path:
    """Write a tiny Omniglot under root/omniglot/omniglot-py; character i's stroke block is (i % 5 + 1 + shift)."""
    folder = root / "omniglot" / "omniglot-py"
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for part, alphabets in spec.items():
        files = {}
        for alphabet, n in alphabets.items():
            for c in range(n):
                for d in range(drawers):
                    name = f"{part}/{alphabet}/character{c + 1:02d}/{i + 1:04d}_{d + 1:02d}.png"
                    files[name] = png(i % 5 + 1 + shift)
                i += 1
        if extracted:
            for name, data in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
        else:
            with zipfile.ZipFile(folder / f"{part}.zip", "w") as z:
                for name in reversed(list(files)):  # unsorted on purpose: the loader must sort
                    z.writestr(name, files[name])
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CS330_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_data_says_where_and_how(tmp_path, cache):
    with pytest.raises(DataNotFoundError) as e:
        Omniglot(root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "omniglot" / "omniglot-py") in msg
    assert "cs330 data download omniglot" in msg and "CS330_DATA" in msg and "images_background.zip" in msg


def test_counts_report_missing_alphabets_and_drawers(tmp_path, cache):
    make_fake(tmp_path)
    with pytest.raises(OmniglotIncompleteError) as e:
        load_omniglot(tmp_path)
    msg = str(e.value)
    assert "images_background: 3 of 964 characters" in msg and "images_evaluation: 2 of 659 characters" in msg
    assert "missing alphabet Tifinagh (55 characters)" in msg and "unexpected alphabet Alpha (2 characters)" in msg
    assert sum(ALPHABETS["images_background"].values()) == 964 and sum(ALPHABETS["images_evaluation"].values()) == 659
    short = tmp_path / "short"
    folder = make_fake(short, extracted=True)
    (folder / "images_evaluation/Gamma/character02/0005_20.png").unlink()
    with pytest.raises(OmniglotIncompleteError, match=r"Gamma/character02 \(19\)"):
        load_omniglot(short, expected=FAKE)


def test_corrupt_zip_names_the_file(tmp_path, cache):
    folder = make_fake(tmp_path)
    (folder / "images_evaluation.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(OmniglotIncompleteError, match="images_evaluation.zip is not a valid zip"):
        load_omniglot(tmp_path, expected=FAKE)


def test_load_sorted_ink_and_workers(tmp_path, cache):
    make_fake(tmp_path)
    data = load_omniglot(tmp_path, image_size=5, expected=FAKE, workers=1)
    images = data["images"]
    assert images.shape == (5, 20, 1, 5, 5) and images.dtype == torch.uint8
    assert data["names"] == ["Alpha/character01", "Alpha/character02", "Beta/character01",
                             "Gamma/character01", "Gamma/character02"]
    assert data["parts"] == ["images_background"] * 3 + ["images_evaluation"] * 2
    # character i has a (i+1)-pixel stroke block in a 10x10 image -> 0.5 scale: top-left is ink
    assert (images[:, :, 0, 0, 0] > 0).all() and (images[:, :, 0, -1, -1] == 0).all()
    assert images[4, 0, 0, 0, 0] == 255 and images[0, 0, 0, 0, 0] in (63, 64)  # a 1x1 block in a 2x2 box
    again = load_omniglot(tmp_path, image_size=7, expected=FAKE, workers=2)["images"]
    assert again.shape == (5, 20, 1, 7, 7)


def test_cache_is_reused_and_rebuilt_when_the_source_changes(tmp_path, cache):
    make_fake(tmp_path)
    first = load_omniglot(tmp_path, image_size=6, expected=FAKE, workers=1)
    path = cache_path(tmp_path, 6)
    assert path.is_file() and path.parent.parent == cache
    t = time.perf_counter()
    second = load_omniglot(tmp_path, image_size=6, expected=FAKE)
    assert time.perf_counter() - t < 1.0 and torch.equal(first["images"], second["images"])
    make_fake(tmp_path, shift=2)  # new bytes in both zips
    third = load_omniglot(tmp_path, image_size=6, expected=FAKE, workers=1)
    assert not torch.equal(first["images"], third["images"])
    assert cache_path(tmp_path, 6) != path and not path.exists()  # the stale cache was removed
    assert len(list((cache / "omniglot").glob("omniglot_6px_*.pt"))) == 1


def test_extracted_folder_matches_zip(tmp_path, cache):
    make_fake(tmp_path / "z")
    make_fake(tmp_path / "x", extracted=True)
    a = load_omniglot(tmp_path / "z", image_size=5, expected=FAKE, workers=1)
    b = load_omniglot(tmp_path / "x", image_size=5, expected=FAKE, workers=1)
    assert torch.equal(a["images"], b["images"]) and a["names"] == b["names"]


def test_fetch_omniglot_from_file_urls(tmp_path, cache, monkeypatch):
    src = make_fake(tmp_path / "mirror")
    zips = {p: (f"sha256:{hashlib.sha256((src / f'{p}.zip').read_bytes()).hexdigest()}",)
            for p in ("images_background", "images_evaluation")}
    folder = "omniglot/omniglot-py"
    mirrored = dataclasses.replace(omniglot.SPECS[0], files={f"{folder}/{p}.zip": h for p, h in zips.items()},
                                   urls={f"{folder}/{p}.zip": f"{src.as_uri()}/{p}.zip" for p in zips})
    monkeypatch.setattr(omniglot, "SPECS", (mirrored,))
    root = tmp_path / "root"
    registry.fetch("omniglot", root)
    assert sorted(p.name for p in (root / "omniglot" / "omniglot-py").iterdir()) == [
        "images_background.zip", "images_evaluation.zip"]
    assert load_omniglot(root, image_size=5, expected=FAKE, workers=1)["images"].shape == (5, 20, 1, 5, 5)


def test_split_indices():
    parts = {s: split_indices(s, "course", seed=0) for s in ("train", "val", "test")}
    assert [len(v) for v in parts.values()] == [1100, 100, 423]
    assert torch.equal(torch.cat(list(parts.values())).sort().values, torch.arange(1623))
    assert torch.equal(split_indices("test", "course", seed=0), parts["test"])
    assert not torch.equal(split_indices("test", "course", seed=1), parts["test"])
    assert torch.equal(split_indices("train", "vinyals"), torch.arange(1200))
    assert torch.equal(split_indices("test", "vinyals"), torch.arange(1200, 1623))
    with pytest.raises(ValueError, match="split must be one of"):
        split_indices("val", "vinyals")
    with pytest.raises(ValueError, match="split_scheme"):
        split_indices("train", "lake")


def test_with_rotations():
    images = torch.randint(0, 256, (3, 2, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = with_rotations(images)
    assert out.shape == (12, 2, 1, 4, 4)
    for c in range(3):  # character-major: class c, then c rotated by 90, 180, 270 degrees
        for k in range(4):
            assert torch.equal(out[4 * c + k], torch.rot90(images[c], k, dims=(-2, -1)))
    assert not torch.equal(out[1], out[0])


@pytest.fixture(scope="module")
def real_root():
    env = os.environ.get("CS330_DATA")
    if not env or not (Path(env) / "omniglot" / "omniglot-py").is_dir():
        pytest.skip("real Omniglot not available: set CS330_DATA to the shared data root (e.g. ../shared/data)")
    return Path(env)


def test_real_omniglot(real_root):
    """1623 classes and the split sizes on the real data (the first run builds the cache, ~3-10 s)."""
    data = load_omniglot(real_root)
    assert data["images"].shape == (1623, 20, 1, 28, 28) and data["images"].dtype == torch.uint8
    assert data["names"][1199] == "Gurmukhi/character41" and data["names"][1200] == "Gurmukhi/character42"
    assert len(set(data["alphabets"])) == 50
    ink = data["images"].float().mean() / 255
    assert 0.02 < ink < 0.3  # strokes are sparse: background is 0
    sizes = {s: Omniglot(real_root, split=s).n_classes for s in ("train", "val", "test")}
    assert sizes == {"train": 1100, "val": 100, "test": 423}
    names = [set(Omniglot(real_root, split=s).class_names) for s in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    vin = Omniglot(real_root, split="train", split_scheme="vinyals")
    assert vin.images.shape == (4800, 20, 1, 28, 28) and vin.class_names[1] == "Alphabet_of_the_Magi/character01/rot090"
    assert torch.equal(vin.images[1], torch.rot90(vin.images[0], 1, dims=(-2, -1)))
    test = Omniglot(real_root, split="test", split_scheme="vinyals")
    assert test.n_classes == 423 and len(test) == 423 * 20
    x, y = test[45]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 2 and 0 <= x.min() and x.max() <= 1
    ep = next(iter(EpisodeSampler(test, 5, 1, 15, 16, generator=0)))
    assert ep.support_x.shape == (16, 5, 1, 28, 28) and ep.query_x.shape == (16, 75, 1, 28, 28)
