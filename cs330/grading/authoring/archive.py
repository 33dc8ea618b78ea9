"""Deterministic zips: the same folder always gives the same bytes (sorted entries, fixed timestamps)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zip_folder(folder: Path, target: Path, prefix: str = "") -> Path:
    """A deterministic zip of ``folder`` (sorted entries, fixed timestamps, modes kept)."""
    target.unlink(missing_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                arc = (Path(prefix) / path.relative_to(folder)).as_posix()
                info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return target
