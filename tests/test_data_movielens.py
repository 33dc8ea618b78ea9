"""MovieLens loaders: counts on the real files (skipped when absent), splits, negative sampling, errors."""

import hashlib
import shutil

import pytest
import torch

from cs330.data.movielens import FILES, CorruptDataError, Interactions, MovieLens
from cs330.data.root import DataNotFoundError, data_root
from cs330.data.synthetic import make_ratings


def _real(variant):
    folder = {"100k": "ml-100k", "latest-small": "ml-latest-small"}[variant]
    if not (data_root() / folder).is_dir():
        pytest.skip(f"{folder} not in the data root {data_root()} (set CS330_DATA=/path/to/data)")
    return MovieLens(variant=variant)


@pytest.fixture(scope="module")
def ml100k():
    return _real("100k")


@pytest.fixture(scope="module")
def small():
    return _real("latest-small")


@pytest.fixture(scope="module")
def synth():
    return make_ratings(n_users=200, n_items=300, seed=0)


# -- real data --------------------------------------------------------------------------------


def test_100k_counts_and_maps(ml100k):
    d = ml100k
    assert (len(d), d.n_users, d.n_items) == (100_000, 943, 1682)
    assert d.users.dtype == d.items.dtype == d.timestamps.dtype == torch.int64 and d.ratings.dtype == torch.float32
    # the counts of 0-5 stars (the shared README swaps two)
    assert torch.bincount(d.ratings.long()).tolist() == [0, 6110, 11370, 27145, 34174, 21201]
    assert d.item_titles[0] == "Toy Story (1995)" and d.item_genres.shape == (1682, 19)
    # the first line of u.data is "196 242 3 881250949"
    assert (d.user_ids[d.users[0]], d.item_ids[d.items[0]], d.ratings[0], d.timestamps[0]) == (196, 242, 3.0, 881250949)
    assert d.user_index[196] == d.users[0] and d.item_index[242] == d.items[0]
    assert d.user_info["age"].shape == (943,) and len(d.user_info["occupation"]) == 943


def test_latest_small_counts(small):
    d = small
    assert (len(d), d.n_users, d.n_items) == (100_836, 610, 9724)
    assert set(d.ratings.unique().tolist()) == {x / 2 for x in range(1, 11)}
    assert d.item_titles[d.item_index[1]] == "Toy Story (1995)"
    assert "Comedy" in d.genre_names and d.item_genres.sum(1).min() >= 1


@pytest.mark.parametrize("name", ["u1", "ua"])
def test_official_splits_partition_u_data(ml100k, name):
    train, test = ml100k.official_split(name)
    assert len(train) + len(test) == 100_000
    key = lambda d: set((d.users * 10_000 + d.items).tolist())  # noqa: E731
    assert key(train).isdisjoint(key(test)) and key(train) | key(test) == key(ml100k)
    if name == "ua":  # 10 test ratings per user
        assert (test.user_counts() == 10).all()


def test_files_sha256_match_shared_copy():
    root = data_root()
    present = [p for p in FILES if (root / p).is_file()]
    if not present:
        pytest.skip("no MovieLens files in the data root")
    for p in present:
        assert hashlib.sha256((root / p).read_bytes()).hexdigest() == FILES[p], p


def test_negatives_on_real_data(ml100k):
    train, _ = ml100k.split(0.2, seed=0)
    inter = train.interactions()
    users = torch.arange(ml100k.n_users).repeat_interleave(50)
    neg = inter.sample_negatives(users, 20, torch.Generator().manual_seed(0))
    assert neg.shape == (len(users), 20)
    assert not inter.mask()[users[:, None], neg].any()


# -- splits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["user", "time", "random"])
def test_split_partitions_and_is_deterministic(synth, by):
    train, test = synth.split(0.2, seed=3, by=by)
    assert len(train) + len(test) == len(synth)
    rows = lambda d: set(zip(d.users.tolist(), d.items.tolist()))  # noqa: E731  (pairs are unique)
    assert rows(train).isdisjoint(rows(test)) and rows(train) | rows(test) == rows(synth)
    assert abs(len(test) / len(synth) - 0.2) < 0.02
    again = synth.split(0.2, seed=3, by=by)[1]
    assert torch.equal(again.users, test.users) and torch.equal(again.items, test.items)
    other = synth.split(0.2, seed=4, by=by)[1]
    assert by == "time" or not torch.equal(other.items, test.items)
    assert (train.n_users, train.n_items, test.n_items) == (synth.n_users, synth.n_items, synth.n_items)
    if by != "random":  # every user keeps training ratings
        assert (train.user_counts() >= 1).all()


def test_time_split_holds_out_the_latest(synth):
    train, test = synth.split(0.25, by="time")
    last_train = torch.zeros(synth.n_users, dtype=torch.long).scatter_reduce(0, train.users, train.timestamps, "amax")
    assert (test.timestamps >= last_train[test.users]).all()


def test_leave_one_out(synth):
    train, test = synth.leave_k_out(1, seed=0)
    assert (test.user_counts() == 1).all() and len(train) == len(synth) - synth.n_users


# -- implicit feedback ------------------------------------------------------------------------


def test_interactions_and_negative_sampling():
    # user 0: items {1, 3}; user 1: all but item 2; user 2: none
    users, items = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([3, 1, 3, 0, 1, 3])
    inter = Interactions.from_pairs(users, items, n_users=3, n_items=4)
    assert len(inter) == 5 and inter.counts().tolist() == [2, 3, 0]
    assert inter.positive_sets() == [{1, 3}, {0, 1, 3}, set()]
    assert inter.contains(torch.tensor([0, 0, 2]), torch.tensor([1, 2, 0])).tolist() == [True, False, False]
    g = torch.Generator().manual_seed(0)
    neg = inter.sample_negatives(torch.tensor([0, 1, 2]), 400, g)
    assert set(neg[0].tolist()) == {0, 2} and set(neg[1].tolist()) == {2} and set(neg[2].tolist()) == {0, 1, 2, 3}
    full = Interactions.from_pairs(torch.zeros(4, dtype=torch.long), torch.arange(4), 1, 4)
    with pytest.raises(ValueError, match="all 4 items"):
        full.sample_negatives(torch.tensor([0]), 1)


def test_negatives_never_positive_and_seeded(synth):
    inter = synth.interactions()
    users = torch.randint(synth.n_users, (5000,), generator=torch.Generator().manual_seed(1))
    a = inter.sample_negatives(users, 8, torch.Generator().manual_seed(7))
    b = inter.sample_negatives(users, 8, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() < synth.n_items
    assert not inter.contains(users[:, None], a).any()
    u, i, j = inter.bpr_triples(torch.Generator().manual_seed(0))
    assert len(u) == len(inter) and inter.contains(u, i).all() and not inter.contains(u, j).any()


def test_min_rating_interactions(synth):
    liked = synth.interactions(min_rating=4)
    assert len(liked) == int((synth.ratings >= 4).sum())


def test_from_tensors_and_indexing(synth):
    assert len(synth) > 0 and synth.n_users == 200 and synth.n_items == 300
    u, i, r = synth[torch.arange(5)]
    assert u.shape == i.shape == r.shape == (5,)
    assert ((synth.ratings >= 1) & (synth.ratings <= 5)).all()
    d = MovieLens.from_tensors(torch.tensor([0, 1]), torch.tensor([2, 0]), torch.tensor([5.0, 1.0]))
    assert (d.n_users, d.n_items, len(d)) == (2, 3, 2)


# -- errors -----------------------------------------------------------------------------------


def test_missing_files_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match="ml-100k"):
        MovieLens(root=tmp_path, variant="100k")
    with pytest.raises(DataNotFoundError, match="ratings.csv"):
        MovieLens(root=tmp_path, variant="latest-small")
    with pytest.raises(ValueError, match="variant"):
        MovieLens(root=tmp_path, variant="1m")


def _fake_100k(folder, data: str):
    folder.mkdir()
    (folder / "u.data").write_text(data)
    (folder / "u.item").write_text("1|A (1995)|01-Jan-1995||url" + "|0" * 19 + "\n", encoding="latin-1")
    (folder / "u.user").write_text("1|24|M|technician|85711\n")


def test_corrupt_files_name_the_file(tmp_path):
    _fake_100k(tmp_path / "ml-100k", "1\t1\t3\t881250949\n1\t1\t4\n")  # a short last row
    with pytest.raises(CorruptDataError, match="u.data"):
        MovieLens(root=tmp_path)
    shutil.rmtree(tmp_path / "ml-100k")
    _fake_100k(tmp_path / "ml-100k", "1\t1\t3\t881250949\n")  # parses, but far too few rows
    with pytest.raises(CorruptDataError, match=r"u.data: found 1 ratings, expected 100,000"):
        MovieLens(root=tmp_path)


def test_truncated_real_file(tmp_path):
    src = data_root() / "ml-latest-small"
    if not src.is_dir():
        pytest.skip("ml-latest-small not in the data root")
    dst = tmp_path / "ml-latest-small"
    dst.mkdir()
    shutil.copy(src / "movies.csv", dst)
    (dst / "ratings.csv").write_bytes((src / "ratings.csv").read_bytes()[:100_000])  # cut mid-row
    with pytest.raises(CorruptDataError, match="ratings.csv"):
        MovieLens(root=tmp_path, variant="latest-small")


def test_crlf_copy_loads_the_same(tmp_path, small):
    """The official GroupLens zip has CRLF line endings; the shared copy has LF."""
    dst = tmp_path / "ml-latest-small"
    dst.mkdir()
    for name in ("ratings.csv", "movies.csv"):
        (dst / name).write_bytes((small.root / name).read_bytes().replace(b"\n", b"\r\n"))
    crlf = MovieLens(root=tmp_path, variant="latest-small")
    assert torch.equal(crlf.ratings, small.ratings) and crlf.item_titles == small.item_titles
