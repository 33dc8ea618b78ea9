"""``cs330 data info | verify [NAME] | download NAME``: where data lives and whether it is intact."""

from __future__ import annotations

import argparse
import os

from cs330.data import registry
from cs330.data.download import ChecksumError, DownloadError
from cs330.data.root import ENV_VAR, cache_root, data_root


def _root_source(root) -> str:
    if root is not None:
        return "--root"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "repository default"


def cmd_info(args) -> int:
    print(f"data root:  {data_root(args.root)}  ({_root_source(args.root)})")
    print(f"cache root: {cache_root()}")
    for name in registry.datasets():
        report = registry.verify(name, args.root)
        print(f"  {name:18s} {report.status:10s} {report.dataset.description}")
    return 0


def cmd_verify(args) -> int:
    try:
        names = [registry.get(args.name).name] if args.name else list(registry.datasets())
    except KeyError as e:
        print(f"error: {e.args[0]}")
        return 2
    failed = False
    for name in names:
        report = registry.verify(name, args.root)
        if report.status == "missing" and not args.name:
            print(f"{name}: missing (skipped)")
            continue
        print(f"{name}: {report.status}")
        for line in report.ok:
            print(f"  ok       {line}")
        for rel in report.missing:
            print(f"  MISSING  {report.root / rel}")
        for problem in report.problems:
            print(f"  CORRUPT  {problem}")
        # verifying everything: a dataset that is not there at all is not an error
        failed |= bool(report.problems or (report.missing and (args.name or report.ok)))
        if report.missing and args.name:
            print(f"  Fix: `cs330 data download {name}`")
    return 1 if failed else 0


def cmd_download(args) -> int:
    try:
        ds = registry.get(args.name)
        report = registry.fetch(ds.name, args.root, only_missing=not args.force, progress=True)
    except KeyError as e:
        print(f"error: {e.args[0]}")
        return 2
    except (DownloadError, ChecksumError) as e:
        print(f"error: {e}")
        return 1
    except PermissionError as e:
        print(f"error: cannot write to the data root ({e}); pass --root DIR or set ${ENV_VAR} to a writable folder")
        return 1
    print(f"{ds.name}: {report.status} at {report.root}")
    for problem in report.problems:
        print(f"  CORRUPT  {problem}")
    return 0 if report.status == "present" else 1


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` with its three subcommands to the ``cs330`` command's subparsers."""
    data = subparsers.add_parser("data", help="datasets: where they are, verify, download")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True
    root_help = f"data root (default: ${ENV_VAR}, else the repository's data/)"

    p = sub.add_parser("info", help="data and cache roots; each dataset present/missing/corrupt")
    p.add_argument("--root", default=None, help=root_help)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("verify", help="check checksums and counts (exit 1 on a mismatch)")
    p.add_argument("name", nargs="?", default=None, help="dataset (default: all that are present)")
    p.add_argument("--root", default=None, help=root_help)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("download", help="download a dataset and verify it")
    p.add_argument("name", help="dataset name, e.g. omniglot, ml-100k, sst2")
    p.add_argument("--root", default=None, help=root_help)
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.set_defaults(func=cmd_download)
    return data
