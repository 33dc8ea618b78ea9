"""Checksums and safe downloads.

``download(url, dest)`` streams into a temporary file next to ``dest``, refuses an HTML page
(a login, quota or error page served with status 200), checks the checksum, and only then
renames the file into place with ``os.replace`` (atomic on one filesystem). On any failure,
nothing half-written is left behind and an existing ``dest`` is untouched.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

CHUNK = 1 << 20  # 1 MiB


class ChecksumError(ValueError):
    """A file's hash differs from the expected one. ``.path``, ``.algo``, ``.expected``, ``.actual``."""

    def __init__(self, path, expected: str, actual: str, algo: str = "sha256"):
        self.path, self.expected, self.actual, self.algo = Path(path), expected, actual, algo
        super().__init__(
            f"{algo} mismatch for {Path(path).name} ({path}):\n"
            f"  expected {expected}\n  got      {actual}\n"
            f"  The file is corrupt, truncated or a different version: delete it and download it again."
        )


class DownloadError(OSError):
    """A download failed (network error, HTTP error, or an HTML page instead of the file)."""


def _hash(path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256sum(path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    return _hash(path, "sha256")


def md5sum(path) -> str:
    """Hex md5 of a file (torchvision's checksums are md5)."""
    return _hash(path, "md5")


def verify_file(path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Check ``path`` against the given hashes; return the path, or raise ``ChecksumError``.

    Raises ``FileNotFoundError`` when the file is missing. With no hash given, only existence is checked.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found at {path}")
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = _hash(path, algo)
            if actual != expected.lower():
                raise ChecksumError(path, expected.lower(), actual, algo)
    return path


def _looks_like_html(content_type: str, head: bytes) -> bool:
    if "text/html" in (content_type or "").lower():
        return True
    head = head.lstrip().lower()
    return head.startswith(b"<!doctype") or head.startswith(b"<html")


def download(url: str, dest, *, sha256: str | None = None, md5: str | None = None,
             timeout: float = 60.0, progress: bool = False) -> Path:
    """Download ``url`` to ``dest`` (a file path) and verify it; return ``dest``.

    Streams to ``.<name>.XXXX.part`` in ``dest``'s folder, hashing on the fly, then ``os.replace``s it
    into place. Raises ``DownloadError`` (network/HTTP error, HTML page) or ``ChecksumError``;
    in both cases the partial file is removed. Works for ``http(s)://`` and ``file://`` URLs.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "cs330-data"})
                response = urllib.request.urlopen(request, timeout=timeout)
            except OSError as e:  # URLError, HTTPError, socket.timeout are all OSErrors
                raise DownloadError(f"could not download {dest.name} from {url}: {e}") from e
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = None
                if progress:
                    from tqdm import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False)
                first = True
                while chunk := response.read(CHUNK):
                    if first and _looks_like_html(response.headers.get("Content-Type", ""), chunk[:512]):
                        raise DownloadError(
                            f"got an HTML page instead of {dest.name} from {url} "
                            f"(an error, login or quota page?); nothing was saved"
                        )
                    first = False
                    out.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                if bar is not None:
                    bar.close()
        for algo, expected in (("sha256", sha256), ("md5", md5)):
            if expected and hashes[algo].hexdigest() != expected.lower():
                raise ChecksumError(dest, expected.lower(), hashes[algo].hexdigest(), algo)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
