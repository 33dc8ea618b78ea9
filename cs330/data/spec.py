"""A dataset's specification (``Dataset``: files, checksums, URLs, counts) and what is done with one:
``verify`` it under a data root, ``fetch`` it. Each dataset module (``omniglot``, ``movielens``, ``text``)
declares its own ``SPECS``, torchvision-style; ``cs330.data.registry`` collects them by name.

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


def sha256_lf(*hexes: str) -> tuple[str, ...]:
    """Accepted hashes of a text file whose LF copy has these sha256s (a CRLF copy passes too)."""
    return tuple(f"sha256-lf:{h}" for h in hexes)


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


def verify(ds: Dataset, root=None) -> Report:
    """Check every file of ``ds`` under the data root: checksums, then line and item counts."""
    base = data_root(root)
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


def fetch(ds: Dataset, root=None, *, only_missing: bool = True, progress: bool = False) -> Report:
    """Download ``ds`` into the data root and verify it; return the final ``verify`` report.

    Raises DownloadError (whose message says what to place where) when it cannot be downloaded, and
    ChecksumError when a downloaded file is not the expected one.
    """
    base = data_root(root)
    report = verify(ds, root)
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
    return verify(ds, root)
