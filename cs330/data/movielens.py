"""MovieLens ratings as tensors: explicit ratings for regression, implicit interactions for ranking.

Two variants, read from the data root (see ``cs330.data.root``):

- ``"100k"``: ``ml-100k/u.data`` (943 users, 1682 items, 100,000 ratings 1..5), ``u.item``, ``u.user``
- ``"latest-small"``: ``ml-latest-small/ratings.csv`` (610 users, 9,724 rated movies, 100,836 ratings
  0.5..5 in half stars), ``movies.csv``

Raw ids are mapped to contiguous indices ``0..n_users-1`` and ``0..n_items-1`` (sorted by raw id);
``user_ids[u]`` / ``item_ids[i]`` give the raw id back, ``user_index`` / ``item_index`` the other way.

    data = MovieLens(variant="100k")
    train, test = data.split(test_fraction=0.1, seed=0)       # per-user holdout, same index space
    pos = train.interactions()                                # implicit feedback, for ranking
    neg = pos.sample_negatives(users, n=4, generator=g)       # (len(users), 4), never a positive

A dataset can also be built from tensors (``MovieLens.from_tensors``), which is how
``cs330.data.synthetic.make_ratings`` makes a file-free stand-in with the same interface.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cs330.data.root import DataNotFoundError, data_root
from cs330.data.spec import OFFLINE, Dataset, sha256_lf

# sha256 of every file this module reads, keyed by path relative to the data root.
# the specification behind `cs330 data info / verify / download` (collected by cs330.data.registry)
GROUPLENS = "https://files.grouplens.org/datasets/movielens"
ML_100K = {  # every data file of ml-100k.zip (its scripts allbut.pl and mku.sh are not needed)
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}
ML_LATEST_SMALL = {  # LF copies; the official zip has CRLF line endings, hence sha256-lf
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "links.csv": "028a4a1d17751ca9276e0e0718cfc22356350f224a996e1ec348c23274b9209d",
    "movies.csv": "c47b783f23eb304413307e1bb05335e427737da20ec8d3c0e96335567dd5f3dc",
    "ratings.csv": "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",
    "tags.csv": "68eec00a0820c2faa8863a6df7032f13d5899a4462bce9a97213905297ff3d34",
}
SPECS = (
    Dataset("ml-100k", "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies",
            {f"ml-100k/{f}": sha256_lf(h) for f, h in ML_100K.items()},
            urls={"ml-100k/": f"{GROUPLENS}/ml-100k.zip"},
            offline=OFFLINE + " License: research use only, do not redistribute.",
            lines={"ml-100k/u.data": 100_000, "ml-100k/u.item": 1682, "ml-100k/u.user": 943},
            aliases=("movielens-100k",)),
    Dataset("ml-latest-small", "MovieLens latest-small (2018): 100,836 ratings, 610 users, 9,742 movies",
            {f"ml-latest-small/{f}": sha256_lf(h) for f, h in ML_LATEST_SMALL.items()},
            urls={"ml-latest-small/": f"{GROUPLENS}/ml-latest-small.zip"},
            offline=OFFLINE,
            lines={"ml-latest-small/ratings.csv": 100_837, "ml-latest-small/movies.csv": 9743},
            aliases=("movielens-latest-small",)),
)
# sha256 of the files the loaders read, by path relative to the data root
FILES = {**{f"ml-100k/{f}": h for f, h in ML_100K.items() if f not in ("README", "u.genre", "u.info", "u.occupation")},
         **{f"ml-latest-small/{f}": ML_LATEST_SMALL[f] for f in ("ratings.csv", "movies.csv")}}

# variant -> (dataset name in cs330.data.registry, folder, expected (ratings, users, items))
VARIANTS = {
    "100k": ("ml-100k", "ml-100k", (100_000, 943, 1682)),
    "latest-small": ("ml-latest-small", "ml-latest-small", (100_836, 610, 9724)),
}
REQUIRED = {"100k": ("u.data", "u.item", "u.user"), "latest-small": ("ratings.csv", "movies.csv")}
OFFICIAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CorruptDataError(ValueError):
    """A data file exists but cannot be parsed, or has the wrong number of rows."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        super().__init__(
            f"{path}: {problem}. The file looks truncated or corrupt; delete it and download it "
            f"again (`cs330 data download ...`), or check it against its sha256 (cs330.data.movielens.FILES)."
        )


# ----------------------------------------------------------------------------------------------
# Implicit feedback


@dataclass
class Interactions:
    """Unique (user, item) pairs for ranking, sorted by user then item (a CSR matrix).

    users, items: (M,) int64. indptr: (n_users + 1,) int64, so that user u's positives are
    ``items[indptr[u]:indptr[u+1]]`` (sorted).
    """

    users: Tensor
    items: Tensor
    indptr: Tensor
    n_users: int
    n_items: int

    @classmethod
    def from_pairs(cls, users: Tensor, items: Tensor, n_users: int, n_items: int) -> "Interactions":
        """Deduplicate and sort (user, item) pairs."""
        keys = torch.unique(users.long() * n_items + items.long())  # sorted
        u, i = keys // n_items, keys % n_items
        counts = torch.bincount(u, minlength=n_users)
        indptr = torch.zeros(n_users + 1, dtype=torch.long, device=keys.device)
        indptr[1:] = counts.cumsum(0)
        return cls(u, i, indptr, n_users, n_items)

    def __len__(self) -> int:
        return self.users.numel()

    def counts(self) -> Tensor:
        """(n_users,) number of positives per user."""
        return self.indptr[1:] - self.indptr[:-1]

    def positives(self, user: int) -> Tensor:
        """Sorted item indices user ``user`` interacted with."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def positive_sets(self) -> list[set[int]]:
        """One Python set of item indices per user (convenient, not fast)."""
        parts = torch.split(self.items.cpu(), self.counts().cpu().tolist())
        return [set(p.tolist()) for p in parts]

    def mask(self) -> Tensor:
        """Dense (n_users, n_items) bool matrix, True where the user interacted with the item.

        Handy for ranking metrics: ``scores.masked_fill(train.mask(), -inf)`` hides seen items.
        """
        m = torch.zeros(self.n_users, self.n_items, dtype=torch.bool, device=self.items.device)
        m[self.users, self.items] = True
        return m

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """Bool tensor (broadcast shape of users, items): is (user, item) an interaction?"""
        keys = self.users * self.n_items + self.items
        q = users.long() * self.n_items + items.long()
        if keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(keys, q.reshape(-1)).clamp_(max=keys.numel() - 1)
        return (keys[pos] == q.reshape(-1)).reshape(q.shape)

    def sample_negatives(self, users: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Items each user has *not* interacted with, uniformly, with replacement: (len(users), n).

        Exact and loop-free: draw r ~ U{0..n_items - deg(u) - 1} and map it to the r-th
        non-positive item. With the user's sorted positives p_0 < p_1 < ..., the r-th
        non-positive is ``r + #{j : p_j - j <= r}`` (a searchsorted over ``p_j - j``).
        """
        users = users.long().reshape(-1).to(self.items.device)
        deg = self.counts()[users]
        if (deg >= self.n_items).any():
            bad = users[deg >= self.n_items][0].item()
            raise ValueError(f"user {bad} interacted with all {self.n_items} items: no negatives to sample")
        gen_device = generator.device if generator is not None else self.items.device
        u01 = torch.rand(users.numel(), n, generator=generator, device=gen_device).to(self.items.device)
        r = (u01 * (self.n_items - deg)[:, None]).long().clamp_(max=(self.n_items - deg - 1)[:, None])
        local = torch.arange(len(self), device=self.items.device) - self.indptr[self.users]
        shifted = self.users * self.n_items + (self.items - local)  # nondecreasing
        q = users[:, None] * self.n_items + r
        k = torch.searchsorted(shifted, q, right=True) - self.indptr[users][:, None]
        return r + k

    def bpr_triples(self, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One epoch of BPR triples (user, positive item, negative item), shuffled: three (M,) tensors."""
        gen_device = generator.device if generator is not None else self.items.device
        perm = torch.randperm(len(self), generator=generator, device=gen_device).to(self.items.device)
        u, i = self.users[perm], self.items[perm]
        return u, i, self.sample_negatives(u, 1, generator)[:, 0]

    def to(self, device) -> "Interactions":
        to = lambda t: t.to(device)  # noqa: E731
        return Interactions(to(self.users), to(self.items), to(self.indptr), self.n_users, self.n_items)


# ----------------------------------------------------------------------------------------------
# Explicit ratings


class MovieLens(torch.utils.data.Dataset):
    """Explicit ratings as parallel tensors, with contiguous user/item indices.

    Attributes (N = number of ratings):
        users, items:  (N,) int64 indices in [0, n_users) and [0, n_items)
        ratings:       (N,) float32 (1..5 for 100k; 0.5..5 for latest-small)
        timestamps:    (N,) int64 unix seconds
        user_ids, item_ids: (n_users,), (n_items,) int64 raw ids, so user_ids[users] are the raw ids
        item_titles:   list of n_items str
        item_genres:   (n_items, n_genres) bool; genre_names: tuple of str
        user_info:     dict of per-user lists/tensors (100k: age, gender, occupation, zip), may be empty

    Subsets (``split``, ``subset``) keep the same index space and metadata, so a model trained on
    ``train`` scores ``test`` directly. ``data[idx]`` gives ``(users, items, ratings)`` for an index
    or index tensor, so a ``DataLoader`` over it works, but slicing ``data.users[batch]`` is faster.
    """

    def __init__(self, root: str | os.PathLike | None = None, variant: str = "100k"):
        if variant not in VARIANTS:
            raise ValueError(f"unknown MovieLens variant {variant!r}; choose one of {sorted(VARIANTS)}")
        name, folder, (n_ratings, n_users, n_items) = VARIANTS[variant]
        base = data_root(root) / folder
        for file in REQUIRED[variant]:
            if not (base / file).is_file():
                raise DataNotFoundError(name, base, hint=f"missing file: {base / file}")
        load = _load_100k if variant == "100k" else _load_latest_small
        fields = load(base)
        self._set(**fields, name=name, variant=variant, root=base)
        checks = (("ratings", len(self), n_ratings), ("users", self.n_users, n_users), ("items", self.n_items, n_items))
        for what, got, want in checks:
            if got != want:
                path = base / ("u.data" if variant == "100k" else "ratings.csv")
                raise CorruptDataError(path, f"found {got:,} {what}, expected {want:,}")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_tensors(
        cls,
        users: Tensor,
        items: Tensor,
        ratings: Tensor,
        timestamps: Tensor | None = None,
        n_users: int | None = None,
        n_items: int | None = None,
        item_titles: list[str] | None = None,
        name: str = "ratings",
        **meta,
    ) -> "MovieLens":
        """A dataset from index tensors (already contiguous in [0, n_users) x [0, n_items)).

        Extra keyword arguments set metadata (user_ids, item_ids, item_genres, genre_names, user_info).
        """
        users, items = users.long(), items.long()
        n_users = int(users.max()) + 1 if n_users is None else n_users
        n_items = int(items.max()) + 1 if n_items is None else n_items
        if timestamps is None:
            timestamps = torch.arange(users.numel(), device=users.device)
        self = cls.__new__(cls)
        self._set(
            users=users, items=items, ratings=ratings.float(), timestamps=timestamps.long(),
            user_ids=meta.pop("user_ids", torch.arange(n_users)),
            item_ids=meta.pop("item_ids", torch.arange(n_items)),
            item_titles=item_titles if item_titles is not None else [f"item {i}" for i in range(n_items)],
            item_genres=meta.pop("item_genres", torch.zeros(n_items, 0, dtype=torch.bool)),
            genre_names=meta.pop("genre_names", ()),
            user_info=meta.pop("user_info", {}),
            name=name, variant=meta.pop("variant", None), root=None,
        )
        if meta:
            raise TypeError(f"unexpected keyword arguments: {sorted(meta)}")
        return self

    def _set(self, *, users, items, ratings, timestamps, user_ids, item_ids, item_titles,
             item_genres, genre_names, user_info, name, variant, root):
        self.users, self.items, self.ratings, self.timestamps = users, items, ratings, timestamps
        self.user_ids, self.item_ids = user_ids, item_ids
        self.n_users, self.n_items = len(user_ids), len(item_ids)
        self.item_titles, self.item_genres, self.genre_names = item_titles, item_genres, tuple(genre_names)
        self.user_info, self.name, self.variant, self.root = user_info, name, variant, root

    def subset(self, index) -> "MovieLens":
        """The ratings at ``index`` (int indices, a bool mask or a slice), same users/items/metadata."""
        return self._with_rows(self.users[index], self.items[index], self.ratings[index], self.timestamps[index])

    def _with_rows(self, users: Tensor, items: Tensor, ratings: Tensor, timestamps: Tensor) -> "MovieLens":
        out = self.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.users, out.items, out.ratings, out.timestamps = users, items, ratings, timestamps
        return out

    def to(self, device) -> "MovieLens":
        """The same dataset with its four rating tensors on ``device`` (metadata stays on the CPU)."""
        return self._with_rows(*(t.to(device) for t in (self.users, self.items, self.ratings, self.timestamps)))

    # -- basic access ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.users.numel()

    def __getitem__(self, idx):
        return self.users[idx], self.items[idx], self.ratings[idx]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name}: {len(self):,} ratings, "
                f"{self.n_users:,} users, {self.n_items:,} items)")

    @property
    def user_index(self) -> dict[int, int]:
        """Raw user id -> contiguous index."""
        return {int(r): u for u, r in enumerate(self.user_ids.tolist())}

    @property
    def item_index(self) -> dict[int, int]:
        """Raw item (movie) id -> contiguous index."""
        return {int(r): i for i, r in enumerate(self.item_ids.tolist())}

    def user_counts(self) -> Tensor:
        """(n_users,) ratings per user."""
        return torch.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> Tensor:
        """(n_items,) ratings per item."""
        return torch.bincount(self.items, minlength=self.n_items)

    # -- splits ---------------------------------------------------------------------------------

    def split(self, test_fraction: float = 0.1, seed: int = 0, by: str = "user") -> tuple["MovieLens", "MovieLens"]:
        """A seeded (train, test) split of the ratings; together they are exactly this dataset.

        by="user":   each user's ratings are shuffled and round(test_fraction * n_u) go to test, but every
                     user keeps at least one training rating (so every test user is known at training time).
        by="time":   per user, the latest round(test_fraction * n_u) ratings go to test (ties broken by seed).
        by="random": a uniform random test_fraction of all ratings (some users may end up test-only).
        """
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if by == "random":
            g = torch.Generator().manual_seed(seed)
            n_test = round(test_fraction * len(self))
            perm = torch.randperm(len(self), generator=g)
            is_test = torch.zeros(len(self), dtype=torch.bool)
            is_test[perm[:n_test]] = True
        elif by in ("user", "time"):
            counts = self.user_counts().cpu()
            n_test = torch.minimum((counts.double() * test_fraction).round().long(), (counts - 1).clamp(min=0))
            is_test = self._last_k_per_user(n_test, seed, by_time=(by == "time"))
        else:
            raise ValueError(f"by must be 'user', 'time' or 'random', got {by!r}")
        is_test = is_test.to(self.users.device)
        return self.subset(~is_test), self.subset(is_test)

    def leave_k_out(self, k: int = 1, seed: int = 0, by: str = "time") -> tuple["MovieLens", "MovieLens"]:
        """Per user, hold out k ratings (the latest for by="time", random ones for by="user").

        Users with k or fewer ratings keep them all in train. The usual protocol for top-N ranking (MRR, HR@k).
        """
        if by not in ("time", "user"):
            raise ValueError(f"by must be 'time' or 'user', got {by!r}")
        counts = self.user_counts().cpu()
        n_test = torch.where(counts > k, torch.full_like(counts, k), torch.zeros_like(counts))
        is_test = self._last_k_per_user(n_test, seed, by_time=(by == "time")).to(self.users.device)
        return self.subset(~is_test), self.subset(is_test)

    def _last_k_per_user(self, n_test: Tensor, seed: int, by_time: bool) -> Tensor:
        """Bool (N,) marking, per user u, n_test[u] ratings: the latest (by_time) or random ones."""
        g = torch.Generator().manual_seed(seed)
        users = self.users.cpu()
        order = torch.randperm(len(self), generator=g)  # random tie-breaking
        if by_time:  # stable sorts: by descending time, then by user
            order = order[torch.sort(-self.timestamps.cpu()[order], stable=True).indices]
        order = order[torch.sort(users[order], stable=True).indices]
        start = torch.zeros(self.n_users + 1, dtype=torch.long)
        start[1:] = torch.bincount(users, minlength=self.n_users).cumsum(0)
        rank = torch.arange(len(self)) - start[users[order]]  # position within the user's group
        is_test = torch.zeros(len(self), dtype=torch.bool)
        is_test[order] = rank < n_test[users[order]]
        return is_test

    def official_split(self, name: str = "u1") -> tuple["MovieLens", "MovieLens"]:
        """GroupLens' own 100K splits: u1..u5 (5-fold, 20% test) and ua/ub (10 ratings per user in test)."""
        if self.variant != "100k" or self.root is None:
            raise ValueError("official splits exist only for MovieLens(variant='100k') loaded from files")
        if name not in OFFICIAL_SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {OFFICIAL_SPLITS}")
        parts = []
        for part in ("base", "test"):
            path = self.root / f"{name}.{part}"
            if not path.is_file():
                raise DataNotFoundError("ml-100k", self.root, hint=f"missing file: {path}")
            raw = _read_table(path, "\t", 4, skip_header=False).astype(np.int64)
            u = _to_index(raw[:, 0], self.user_ids, path, "user")
            i = _to_index(raw[:, 1], self.item_ids, path, "item")
            rows = (u, i, torch.as_tensor(raw[:, 2], dtype=torch.float32), torch.as_tensor(raw[:, 3]))
            parts.append(self._with_rows(*(t.to(self.users.device) for t in rows)))
        return parts[0], parts[1]

    # -- implicit feedback ----------------------------------------------------------------------

    def interactions(self, min_rating: float | None = None) -> Interactions:
        """Implicit feedback: the unique (user, item) pairs rated (at least ``min_rating`` if given)."""
        keep = slice(None) if min_rating is None else self.ratings >= min_rating
        return Interactions.from_pairs(self.users[keep], self.items[keep], self.n_users, self.n_items)

    def sample_negatives(self, users: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Shortcut for ``self.interactions().sample_negatives(users, n, generator)`` (builds it each call)."""
        return self.interactions().sample_negatives(users, n, generator)


# ----------------------------------------------------------------------------------------------
# Parsing


def _read_table(path: Path, sep: str, n_cols: int, skip_header: bool) -> np.ndarray:
    """A numeric table as a float64 (rows, n_cols) array, with a clear error naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
        if skip_header:
            text = text.split("\n", 1)[1] if "\n" in text else ""
        rows = [r for r in text.replace("\r", "").split("\n") if r]
        arr = np.array(sep.join(rows).replace("\n", sep).split(sep) if rows else [], dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptDataError(path, f"cannot parse it as a {sep!r}-separated numeric table ({e})") from None
    if arr.size != len(rows) * n_cols:
        problem = f"expected {n_cols} fields per row in {len(rows):,} rows, found {arr.size:,} fields"
        raise CorruptDataError(path, problem)
    return arr.reshape(len(rows), n_cols)


def _to_index(raw: np.ndarray, ids: Tensor, path: Path, what: str) -> Tensor:
    """Map raw ids to positions in the sorted id table ``ids``."""
    table = ids.numpy()
    pos = np.searchsorted(table, raw).clip(max=len(table) - 1)
    if not (table[pos] == raw).all():
        bad = raw[table[pos] != raw][0]
        raise CorruptDataError(path, f"unknown {what} id {bad}")
    return torch.as_tensor(pos)


def _index(raw: np.ndarray) -> tuple[Tensor, Tensor]:
    """Contiguous indices for raw ids: (sorted unique raw ids, index of each raw id)."""
    ids, idx = np.unique(raw, return_inverse=True)
    return torch.as_tensor(ids), torch.as_tensor(idx.reshape(-1))


def _load_100k(base: Path) -> dict:
    raw = _read_table(base / "u.data", "\t", 4, skip_header=False).astype(np.int64)
    user_ids, users = _index(raw[:, 0])
    item_ids, items = _index(raw[:, 1])
    # u.item: id|title|release|video release|url|19 genre flags (latin-1)
    titles, genres = {}, {}
    with open(base / "u.item", encoding="latin-1") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("|")
            if len(fields) != 5 + len(GENRES_100K):
                raise CorruptDataError(base / "u.item", f"line {line_no} has {len(fields)} fields, expected 24")
            titles[int(fields[0])] = fields[1]
            genres[int(fields[0])] = [f == "1" for f in fields[5:]]
    missing = [i for i in item_ids.tolist() if i not in titles]
    if missing:
        raise CorruptDataError(base / "u.item", f"no entry for item id {missing[0]} ({len(missing)} missing)")
    info = {"age": [], "gender": [], "occupation": [], "zip": []}
    users_rows = {}
    with open(base / "u.user", encoding="latin-1") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                fields = line.rstrip("\r\n").split("|")
                if len(fields) != 5:
                    raise CorruptDataError(base / "u.user", f"line {line_no} has {len(fields)} fields, expected 5")
                users_rows[int(fields[0])] = fields
    for u in user_ids.tolist():
        if u not in users_rows:
            raise CorruptDataError(base / "u.user", f"no entry for user id {u}")
        _, age, gender, occupation, zip_code = users_rows[u]
        info["age"].append(int(age)), info["gender"].append(gender)
        info["occupation"].append(occupation), info["zip"].append(zip_code)
    info["age"] = torch.tensor(info["age"])
    return dict(
        users=users, items=items, ratings=torch.as_tensor(raw[:, 2], dtype=torch.float32),
        timestamps=torch.as_tensor(raw[:, 3]), user_ids=user_ids, item_ids=item_ids,
        item_titles=[titles[i] for i in item_ids.tolist()],
        item_genres=torch.tensor([genres[i] for i in item_ids.tolist()], dtype=torch.bool),
        genre_names=GENRES_100K, user_info=info,
    )


def _load_latest_small(base: Path) -> dict:
    path = base / "ratings.csv"
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").strip()
    if header != "userId,movieId,rating,timestamp":
        raise CorruptDataError(path, f"unexpected header {header!r}")
    raw = _read_table(path, ",", 4, skip_header=True)
    user_ids, users = _index(raw[:, 0].astype(np.int64))
    item_ids, items = _index(raw[:, 1].astype(np.int64))
    titles, genres = {}, {}
    with open(base / "movies.csv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        if next(reader, None) != ["movieId", "title", "genres"]:
            raise CorruptDataError(base / "movies.csv", "unexpected header")
        for row in reader:
            if len(row) != 3:
                raise CorruptDataError(base / "movies.csv", f"line {reader.line_num} has {len(row)} fields, expected 3")
            titles[int(row[0])], genres[int(row[0])] = row[1], row[2].split("|")
    missing = [i for i in item_ids.tolist() if i not in titles]
    if missing:
        raise CorruptDataError(base / "movies.csv", f"no entry for movie id {missing[0]} ({len(missing)} missing)")
    genre_names = sorted({g for i in item_ids.tolist() for g in genres[i]})
    col = {g: k for k, g in enumerate(genre_names)}
    item_genres = torch.zeros(len(item_ids), len(genre_names), dtype=torch.bool)
    for k, i in enumerate(item_ids.tolist()):
        item_genres[k, [col[g] for g in genres[i]]] = True
    return dict(
        users=users, items=items, ratings=torch.as_tensor(raw[:, 2], dtype=torch.float32),
        timestamps=torch.as_tensor(raw[:, 3].astype(np.int64)), user_ids=user_ids, item_ids=item_ids,
        item_titles=[titles[i] for i in item_ids.tolist()], item_genres=item_genres,
        genre_names=tuple(genre_names), user_info={},
    )
