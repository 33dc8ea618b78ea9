"""Omniglot: 1623 handwritten characters from 50 alphabets, 20 drawers each (Lake et al., 2015).

Source layout (torchvision's), under ``<data root>/omniglot/omniglot-py/`` (or ``<root>/omniglot-py/``)::

    images_background.zip  or  images_background/<Alphabet>/<characterNN>/<IIII_DD>.png   964 characters
    images_evaluation.zip  or  images_evaluation/<Alphabet>/<characterNN>/<IIII_DD>.png   659 characters

The zips are read directly (no extraction). Characters are ordered background first, then evaluation,
each sorted by (alphabet, character); drawers sorted by file name. The first use decodes all 32,460
PNGs once into a cache in ``cache_root()``::

    images  uint8 (1623, 20, 1, S, S), ink = 255 * (1 - mean pixel brightness) after an area resize,
            so 0 is background and 255 is a full stroke pixel

keyed by S and a fingerprint of the source (path, size and mtime of every source file), so a changed
source rebuilds it; later loads are one ``torch.load``.

Splits (character classes, never drawers):

- ``course``:  a permutation of all 1623 characters drawn with ``seed``: 1100 train / 100 val / 423 test.
- ``vinyals``: train on the first 1200 characters in that order (all 964 background characters and the
  evaluation ones up to Gurmukhi/character41), each also rotated by 90, 180 and 270 degrees as extra
  classes (4800 classes); test on the other 423, unrotated (Vinyals et al. 2016; the split of Snell et
  al.'s prototypical-networks repository).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import os
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cs330.data.root import DataNotFoundError, cache_root, data_root
from cs330.data.spec import OFFLINE, Dataset, fetch

PARTS = ("images_background", "images_evaluation")
N_DRAWERS = 20
N_CHARACTERS = 1623
CACHE_VERSION = 1

_TABLE = {  # alphabet:number of characters, from the official release
    "images_background": "Alphabet_of_the_Magi:20 Anglo-Saxon_Futhorc:29 Arcadian:26 Armenian:41 "
    "Asomtavruli_(Georgian):40 Balinese:24 Bengali:46 Blackfoot_(Canadian_Aboriginal_Syllabics):14 "
    "Braille:26 Burmese_(Myanmar):34 Cyrillic:33 Early_Aramaic:22 Futurama:26 Grantha:43 Greek:24 "
    "Gujarati:48 Hebrew:22 Inuktitut_(Canadian_Aboriginal_Syllabics):16 Japanese_(hiragana):52 "
    "Japanese_(katakana):47 Korean:40 Latin:26 Malay_(Jawi_-_Arabic):40 Mkhedruli_(Georgian):41 N_Ko:33 "
    "Ojibwe_(Canadian_Aboriginal_Syllabics):14 Sanskrit:42 Syriac_(Estrangelo):23 Tagalog:17 Tifinagh:55",
    "images_evaluation": "Angelic:20 Atemayar_Qelisayer:26 Atlantean:26 Aurek-Besh:26 Avesta:26 Ge_ez:26 "
    "Glagolitic:45 Gurmukhi:45 Kannada:41 Keble:26 Malayalam:47 Manipuri:40 Mongolian:30 "
    "Old_Church_Slavonic_(Cyrillic):45 Oriya:46 Sylheti:28 Syriac_(Serto):23 Tengwar:25 Tibetan:42 ULOG:26",
}
# ALPHABETS[part][alphabet] = number of characters (964 background + 659 evaluation)
ALPHABETS = {p: {a: int(n) for a, n in (x.rsplit(":", 1) for x in s.split())} for p, s in _TABLE.items()}
SPLIT_SIZES = {"course": {"train": 1100, "val": 100, "test": 423}, "vinyals": {"train": 1200, "test": 423}}


class OmniglotIncompleteError(ValueError):
    """The Omniglot source is there but characters or drawers are missing (message lists them)."""


# ---------------------------------------------------------------------------------------------
# finding and listing the source


def omniglot_dir(root=None) -> Path:
    """The ``omniglot-py`` folder: ``<root>/omniglot/omniglot-py`` or ``<root>/omniglot-py``."""
    base = data_root(root)
    candidates = (base / "omniglot" / "omniglot-py", base / "omniglot-py")
    for d in candidates:
        if any((d / p).is_dir() or (d / f"{p}.zip").is_file() for p in PARTS):
            return d
    return candidates[0]


def find_sources(root=None) -> dict[str, Path]:
    """``{part: path}`` for both parts, a zip (preferred) or an extracted folder; else DataNotFoundError."""
    d = omniglot_dir(root)
    sources = {}
    for part in PARTS:
        for path in (d / f"{part}.zip", d / part):
            if path.exists():
                sources[part] = path
                break
    missing = [p for p in PARTS if p not in sources]
    if missing:
        raise DataNotFoundError(
            "omniglot", d,
            f"Missing: {', '.join(f'{p}.zip (or an extracted {p}/ folder)' for p in missing)} in {d}.",
        )
    return sources


def list_source(path: Path) -> dict[tuple[str, str], list[str]]:
    """``{(alphabet, character): sorted member names}`` of one part (zip or folder), sorted by key.

    Member names are zip entry names, or paths relative to ``path`` for a folder.
    """
    path = Path(path)
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.startswith("__MACOSX")]
        except zipfile.BadZipFile as e:
            raise OmniglotIncompleteError(f"{path.name} is not a valid zip file ({e}): a corrupt or truncated "
                                          f"download? Check it with `cs330 data verify omniglot`.") from None
        # entries look like images_background/<Alphabet>/<character>/<file>.png
        split = [(n, n.split("/")) for n in names if n.endswith(".png")]
        entries = [(parts[-3], parts[-2], n) for n, parts in split if len(parts) >= 4]
    else:
        entries = [(a.name, c.name, f"{a.name}/{c.name}/{f.name}")
                   for a in path.iterdir() if a.is_dir()
                   for c in a.iterdir() if c.is_dir()
                   for f in c.iterdir() if f.suffix == ".png"]
    listing: dict[tuple[str, str], list[str]] = {}
    for alphabet, character, name in entries:
        listing.setdefault((alphabet, character), []).append(name)
    return {key: sorted(listing[key]) for key in sorted(listing)}


def check_counts(counts: dict[str, dict[tuple[str, str], int]], expected=ALPHABETS, n_drawers=N_DRAWERS) -> list[str]:
    """Problems (empty if none) with ``counts[part][(alphabet, character)] = number of drawers``."""
    problems = []
    for part, alphabets in expected.items():
        found: dict[str, int] = {}
        for alphabet, _ in counts.get(part, {}):
            found[alphabet] = found.get(alphabet, 0) + 1
        n_found, n_expected = sum(found.values()), sum(alphabets.values())
        if n_found != n_expected:
            problems.append(f"{part}: {n_found} of {n_expected} characters")
        for alphabet, n in alphabets.items():
            if alphabet not in found:
                problems.append(f"{part}: missing alphabet {alphabet} ({n} characters)")
            elif found[alphabet] != n:
                problems.append(f"{part}: {alphabet} has {found[alphabet]} of {n} characters")
        for alphabet in sorted(set(found) - set(alphabets)):
            problems.append(f"{part}: unexpected alphabet {alphabet} ({found[alphabet]} characters)")
        short = [f"{a}/{c} ({n})" for (a, c), n in counts.get(part, {}).items() if n != n_drawers]
        if short:
            more = f" and {len(short) - 5} more" if len(short) > 5 else ""
            problems.append(f"{part}: {len(short)} characters without {n_drawers} drawers: "
                            f"{', '.join(short[:5])}{more}")
    return problems


def verify_counts(root) -> list[str]:
    """``cs330 data verify``'s count check: every alphabet, character and drawer of the source under ``root``."""
    try:
        sources = find_sources(root)
    except FileNotFoundError as e:
        return [str(e).splitlines()[0]]
    return check_counts({p: {k: len(v) for k, v in list_source(s).items()} for p, s in sources.items()})


# the specification behind `cs330 data info / verify / download omniglot` (collected by cs330.data.registry)
URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
ZIPS = {  # original torchvision zip (md5) or the shared, re-encoded one (sha256)
    "images_background": ("md5:68d2efa1b9178cc56df9314c21c6e718",
                          "sha256:ee5c50bc9e78241f174c87e8e34b2534d31612eba07642b2852dbf2f8cf8bf64"),
    "images_evaluation": ("md5:6b91aef0f799c5bb55b94e3f2daec811",
                          "sha256:2a4c01f3cbfb207aa46ac41759891fbf0382ca66023f49dfcaec4a4b03907cbb"),
}
_FOLDER = "omniglot/omniglot-py"
SPECS = (Dataset("omniglot", "Omniglot: 1623 handwritten characters x 20 drawers (50 alphabets)",
                 {f"{_FOLDER}/{p}.zip": h for p, h in ZIPS.items()},
                 urls={f"{_FOLDER}/{p}.zip": f"{URL}/{p}.zip" for p in ZIPS},
                 offline=OFFLINE + " The shared copy holds re-encoded zips, accepted by their sha256.",
                 extracted={f"{_FOLDER}/{p}.zip": f"{_FOLDER}/{p}" for p in ZIPS},
                 check=verify_counts),)


def _fingerprint(sources: dict[str, Path]) -> str:
    """sha1 over (path, size, mtime) of every source file: any change gives a new cache key."""
    h = hashlib.sha1(f"v{CACHE_VERSION}".encode())
    for part, path in sorted(sources.items()):
        h.update(f"{part}|{path.resolve()}\n".encode())
        files = [path] if path.is_file() else sorted(path.glob("*/*/*.png"))
        for f in files:
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# decoding and the cache


def _decode(job) -> np.ndarray:
    """Decode ``names`` from one source into uint8 ink (len(names), size, size). Runs in a worker."""
    source, names, size = job
    out = np.empty((len(names), size, size), dtype=np.uint8)
    z = zipfile.ZipFile(source) if str(source).endswith(".zip") else None
    try:
        for i, name in enumerate(names):
            try:
                raw = z.read(name) if z is not None else (Path(source) / name).read_bytes()
                im = Image.open(io.BytesIO(raw)).convert("L")  # stroke 0, background 255
            except (OSError, zipfile.BadZipFile) as e:
                raise OmniglotIncompleteError(f"cannot decode {name} in {source}: {e}") from None
            if im.size != (size, size):
                im = im.resize((size, size), Image.BOX)  # area average
            out[i] = 255 - np.asarray(im)
    finally:
        if z is not None:
            z.close()
    return out


def _decode_all(jobs, workers: int) -> list[np.ndarray]:
    workers = min(workers, os.cpu_count() or 1)
    usable = workers > 1 and "fork" in mp.get_all_start_methods() and not mp.current_process().daemon
    if not usable:
        return [_decode(j) for j in jobs]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(_decode, jobs))


def build_images(sources: dict[str, Path], image_size: int = 28, expected=ALPHABETS, workers: int = 1) -> dict:
    """Decode every image: ``images`` uint8 (n_characters, n_drawers, 1, S, S) plus names.

    Raises OmniglotIncompleteError when the counts differ from ``expected`` (None: only require
    the same number of drawers for every character).
    """
    listings = {part: list_source(path) for part, path in sources.items()}
    counts = {part: {k: len(v) for k, v in listing.items()} for part, listing in listings.items()}
    drawers = {n for c in counts.values() for n in c.values()}
    problems = check_counts(counts, expected) if expected is not None else []
    if expected is None and len(drawers) > 1:
        problems.append(f"characters have different numbers of drawers: {sorted(drawers)}")
    if problems or not drawers:
        where = ", ".join(str(p) for p in sources.values())
        raise OmniglotIncompleteError(
            f"Omniglot at {where} is incomplete or not the standard release:\n  "
            + "\n  ".join(problems or ["no character folders with .png files found"])
            + "\n  Fix: re-download it (`cs330 data download omniglot`) or check it with `cs330 data verify omniglot`."
        )
    keys = [(part, *key) for part in PARTS for key in listings.get(part, {})]
    jobs = []  # one job per part and worker: each job opens (and lists) its zip once
    for part in PARTS:
        chars = list(listings.get(part, {}).values())
        step = max(1, -(-len(chars) // max(1, workers)))
        for i in range(0, len(chars), step):
            jobs.append((str(sources[part]), [n for names in chars[i:i + step] for n in names], image_size))
    n_drawers = drawers.pop()
    images = torch.from_numpy(np.concatenate(_decode_all(jobs, workers)))
    images = images.view(-1, n_drawers, 1, image_size, image_size)
    return {
        "images": images,
        "parts": [p for p, _, _ in keys],
        "alphabets": [a for _, a, _ in keys],
        "names": [f"{a}/{c}" for _, a, c in keys],
    }


def cache_path(root=None, image_size: int = 28) -> Path:
    """Where the decoded tensor for this source and size is cached (the name holds the fingerprint)."""
    sources = find_sources(root)
    where = hashlib.sha1(str(omniglot_dir(root).resolve()).encode()).hexdigest()[:8]
    return cache_root() / "omniglot" / f"omniglot_{image_size}px_{where}_{_fingerprint(sources)[:16]}.pt"


def load_omniglot(root=None, image_size: int = 28, *, expected=ALPHABETS, workers: int = 1) -> dict:
    """All characters as a dict (see ``build_images``), from the cache or decoded once and cached.

    Decoding is a one-off cost of seconds; ``workers=2`` decodes in a forked pool of 2 processes (off by
    default: it measured no gain, see bench/README.md).

    The cache file is written atomically; caches of older versions of the same source are removed.
    """
    sources = find_sources(root)
    path = cache_path(root, image_size)
    if path.is_file():
        try:
            data = torch.load(path, weights_only=True)
        except Exception:  # truncated or from an incompatible version: rebuild
            data = None
        if data is not None:
            counts = {p: {} for p in PARTS}
            for part, name in zip(data["parts"], data["names"]):
                counts[part][tuple(name.split("/", 1))] = data["images"].shape[1]
            problems = check_counts(counts, expected) if expected is not None else []
            if problems:
                raise OmniglotIncompleteError(f"Omniglot cache {path} does not match: " + "; ".join(problems))
            return data
    data = build_images(sources, image_size, expected, workers)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, tmp)
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache still gives the data, just not faster next time
        warnings.warn(f"could not write the Omniglot cache {path}: {e}")
        return data
    finally:
        tmp.unlink(missing_ok=True)
    stem = path.name.rsplit("_", 1)[0]  # omniglot_<S>px_<where>
    for old in path.parent.glob(f"{stem}_*.pt"):
        if old != path:
            old.unlink(missing_ok=True)
    return data


# ---------------------------------------------------------------------------------------------
# splits and the dataset


def with_rotations(images: torch.Tensor) -> torch.Tensor:
    """(C, D, ..., H, W) classes -> (4C, D, ..., H, W): every class, then it rotated by 90, 180 and 270
    degrees as three new classes, character-major (c0, c0/rot090, c0/rot180, c0/rot270, c1, ...)."""
    return torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)], dim=1).flatten(0, 1)


def split_indices(split: str, split_scheme: str = "course", seed: int = 0, n: int = N_CHARACTERS) -> torch.Tensor:
    """Sorted character indices (into the ordered 1623) of one split; see the module docstring."""
    sizes = SPLIT_SIZES.get(split_scheme)
    if sizes is None:
        raise ValueError(f"split_scheme must be one of {sorted(SPLIT_SIZES)}, got {split_scheme!r}")
    if split not in sizes:
        raise ValueError(f"split must be one of {list(sizes)} for split_scheme={split_scheme!r}, got {split!r}")
    if n != sum(sizes.values()):
        raise ValueError(f"the {split_scheme} split needs {sum(sizes.values())} characters, got {n}")
    if split_scheme == "course":
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    else:
        order = torch.arange(n)
    start = 0
    for name, size in sizes.items():
        if name == split:
            return order[start:start + size].sort().values
        start += size
    raise AssertionError("unreachable")


class Omniglot(torch.utils.data.Dataset):
    """One split of Omniglot, grouped by class. ``len`` = n_classes * 20 images.

    Attributes:
        images:      uint8 (n_classes, 20, 1, S, S), 0 = background, 255 = ink (the sampler's input)
        class_names: list of n_classes names ``Alphabet/characterNN`` (``.../rot090`` etc. for rotations)
        alphabets:   list of n_classes alphabet names

    ``dataset[i]`` is ``(x, y)``: x float (1, S, S) in [0, 1] (after ``transform``), y = i // 20.
    """

    def __init__(self, root=None, split: str = "train", split_scheme: str = "course", image_size: int = 28,
                 download: bool = False, seed: int = 0, transform=None, target_transform=None):
        if download:
            fetch(SPECS[0], root, only_missing=True)
        data = load_omniglot(root, image_size)
        idx = split_indices(split, split_scheme, seed, n=data["images"].shape[0])
        images = data["images"][idx]
        names = [data["names"][i] for i in idx.tolist()]
        alphabets = [data["alphabets"][i] for i in idx.tolist()]
        if split_scheme == "vinyals" and split == "train":  # character-major: c0/rot000, c0/rot090, ...
            images = with_rotations(images)
            names = [f"{n}/rot{90 * k:03d}" for n in names for k in range(4)]
            alphabets = [a for a in alphabets for _ in range(4)]
        self.images, self.class_names, self.alphabets = images.contiguous(), names, alphabets
        self.split, self.split_scheme, self.image_size = split, split_scheme, image_size
        self.transform, self.target_transform = transform, target_transform

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    def __len__(self) -> int:
        return self.images.shape[0] * self.images.shape[1]

    def __getitem__(self, index: int):
        c, d = divmod(int(index), self.images.shape[1])
        x, y = self.images[c, d].float() / 255.0, c
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def __repr__(self) -> str:
        return (f"Omniglot(split={self.split!r}, split_scheme={self.split_scheme!r}, "
                f"classes={self.n_classes}, images={len(self)}, size={self.image_size})")
