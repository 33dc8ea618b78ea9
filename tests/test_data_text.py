"""Text loaders: counts on the real files (skipped when absent), bAbI parsing, k-shot sampling, errors."""

import hashlib

import pytest
import torch

from cs330.data.root import DataNotFoundError, data_root
from cs330.data.text import (
    FILES,
    BabiExample,
    CorruptTextError,
    TextClassification,
    k_shot_per_class,
    load_agnews,
    load_babi,
    load_clothing_reviews,
    load_sst2,
    load_xsum,
    parse_babi,
)


def _need(rel):
    if not (data_root() / rel).is_file():
        pytest.skip(f"{rel} not in the data root {data_root()} (set CS330_DATA=/path/to/data)")


# -- real data --------------------------------------------------------------------------------


@pytest.mark.parametrize("split, n, n_pos", [("train", 60_614, 33_828), ("dev", 6_735, 3_741), ("test", 872, 444)])
def test_sst2(split, n, n_pos):
    _need(f"text/sst2/{split}.tsv")
    d = load_sst2(split)
    assert len(d) == n and int(d.labels.sum()) == n_pos and d.label_names == ("negative", "positive")
    assert all(t == t.strip() and t for t in d.texts[:100])


def test_agnews():
    _need("text/agnews/test.tsv")
    d = load_agnews("test")
    assert len(d) == 7600 and d.class_counts().tolist() == [1900] * 4
    assert d.label_names[d.labels[0]] == "Business" and d.texts[0].startswith("Unions representing workers")
    _need("text/agnews/dev.tsv")
    assert load_agnews("dev").class_counts().tolist() == [2509, 2458, 2496, 2538]


def test_clothing_reviews():
    _need("text/womens_clothing_reviews/womens_clothing_reviews.csv")
    d = load_clothing_reviews()
    assert len(d) == 23_486 - 845 and all(d.texts)
    assert d.texts[0] == "Absolutely wonderful - silky and sexy and comfortable" and d.labels[0] == 3
    assert any("\n" in t for t in d.texts)  # embedded line breaks survive the csv parser
    assert d.labels.min() == 0 and d.labels.max() == 4


@pytest.mark.parametrize("task", [1, 2])
def test_babi_real(task):
    _need(f"text/babi_en10k/{'qa1_single-supporting-fact' if task == 1 else 'qa2_two-supporting-facts'}_test.txt")
    qa = load_babi(task, "test")
    assert len(qa) == 1000 and len({e.story_id for e in qa}) == 200
    assert all(len(e.supporting) == task for e in qa)
    if task == 1:  # the supporting fact names the answer's location
        assert all(e.story[e.supporting[0]].rstrip(".").split()[-1] == e.answer for e in qa)


def test_xsum():
    _need("text/xsum/test.jsonl")
    docs = load_xsum()
    assert len(docs) == 1000 and len({d.id for d in docs}) == 1000
    assert all(isinstance(d.id, str) and d.document and d.summary for d in docs)


def test_files_sha256_match_shared_copy():
    root = data_root()
    present = [p for p in FILES if (root / p).is_file()]
    if not present:
        pytest.skip("no text files in the data root")
    assert len(FILES) == 11
    for p in present:
        assert hashlib.sha256((root / p).read_bytes()).hexdigest() == FILES[p], p


# -- bAbI parsing -----------------------------------------------------------------------------

SNIPPET = """\
1 Mary got the milk there.
2 John moved to the bedroom.
3 Where is Mary? \tkitchen\t1
4 Mary travelled to the hallway.
5 Where is the milk? \thallway\t1 4
1 Sandra went to the garden.
2 Where is Sandra? \tgarden\t1
"""


def test_parse_babi_snippet():
    qa = parse_babi(SNIPPET.splitlines(keepends=True))
    assert qa == [
        BabiExample(["Mary got the milk there.", "John moved to the bedroom."], "Where is Mary?", "kitchen", [0], 0),
        BabiExample(["Mary got the milk there.", "John moved to the bedroom.", "Mary travelled to the hallway."],
                    "Where is the milk?", "hallway", [0, 2], 0),
        BabiExample(["Sandra went to the garden."], "Where is Sandra?", "garden", [0], 1),
    ]


def test_parse_babi_errors():
    with pytest.raises(CorruptTextError, match="line 1"):
        parse_babi(["Mary went home.\n"])
    with pytest.raises(CorruptTextError, match="supporting facts"):
        parse_babi(["1 Where is Mary? \tkitchen\t7\n"])


# -- k-shot -----------------------------------------------------------------------------------


def _toy(counts):
    labels = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)])
    names = tuple(f"c{c}" for c in range(len(counts)))
    return TextClassification([f"text {i}" for i in range(len(labels))], labels, names)


def test_k_shot_balanced_and_seeded():
    data = _toy([10, 30, 7])
    few = k_shot_per_class(data, k=5, seed=0)
    assert few.class_counts().tolist() == [5, 5, 5] and len(set(few.texts)) == 15
    assert all(data.labels[int(t.split()[1])] == y for t, y in zip(few.texts, few.labels))
    assert k_shot_per_class(data, 5, seed=0).texts == few.texts
    assert k_shot_per_class(data, 5, seed=1).texts != few.texts
    assert k_shot_per_class(data, 3, seed=0, classes=[1]).class_counts().tolist() == [0, 3, 0]


def test_k_shot_too_few_examples():
    with pytest.raises(ValueError, match=r"class 2 \('c2'\) has 7 examples, fewer than k=8"):
        k_shot_per_class(_toy([10, 30, 7]), k=8, seed=0)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("load, name", [
    (lambda r: load_sst2("dev", root=r), "sst2"),
    (lambda r: load_agnews("test", root=r), "agnews"),
    (lambda r: load_clothing_reviews(root=r), "clothing-reviews"),
    (lambda r: load_babi(2, "train", root=r), "babi"),
    (lambda r: load_xsum(root=r), "xsum"),
])
def test_missing_files(tmp_path, load, name):
    with pytest.raises(DataNotFoundError, match=name):
        load(tmp_path)


def test_corrupt_tsv_names_the_file(tmp_path):
    (tmp_path / "text" / "sst2").mkdir(parents=True)
    (tmp_path / "text" / "sst2" / "dev.tsv").write_text("sentence\tlabel\ngood film \t1\ncut off here")
    with pytest.raises(CorruptTextError, match=r"dev.tsv: line 3 has no tab"):
        load_sst2("dev", root=tmp_path)
    (tmp_path / "text" / "agnews").mkdir()
    (tmp_path / "text" / "agnews" / "test.tsv").write_text("some news\tWeather\n")
    with pytest.raises(CorruptTextError, match="unknown label 'Weather'"):
        load_agnews("test", root=tmp_path)
