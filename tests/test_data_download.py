"""Checksums, downloads (from a local HTTP server, never the network), the registry and `cs330 data`."""

import argparse
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest

from cs330.data import cli as data_cli
from cs330.data import registry
from cs330.data.spec import check_file
from cs330.data.download import ChecksumError, DownloadError, download, md5sum, sha256sum, verify_file

PAYLOAD = b"\x00binary payload\n" * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    routes = {  # path -> (status, content type, body)
        "/file.bin": (200, "application/octet-stream", PAYLOAD),
        "/login": (200, "text/html; charset=utf-8", b"<html><body>sign in</body></html>"),
        "/sneaky.bin": (200, "application/octet-stream", b"  <!DOCTYPE html><html>quota exceeded</html>"),
    }

    def do_GET(self):
        status, ctype, body = self.routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    """A local HTTP server on 127.0.0.1 in a daemon thread, shut down after the module."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def test_hashes_and_verify_file(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(PAYLOAD)
    assert sha256sum(f) == SHA and md5sum(f) == MD5
    assert verify_file(f, sha256=SHA, md5=MD5.upper()) == f
    with pytest.raises(ChecksumError) as e:
        verify_file(f, sha256="0" * 64)
    msg = str(e.value)
    assert "a.bin" in msg and "0" * 64 in msg and SHA in msg and e.value.actual == SHA
    assert isinstance(e.value, ValueError)
    with pytest.raises(ChecksumError, match="md5 mismatch for a.bin"):
        verify_file(f, md5="f" * 32)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        verify_file(tmp_path / "missing.bin")


def test_download_ok(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    assert download(f"{server}/file.bin", dest, sha256=SHA, md5=MD5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["file.bin"]


@pytest.mark.parametrize("path", ["/login", "/sneaky.bin"])
def test_download_rejects_html(server, tmp_path, path):
    dest = tmp_path / "data.zip"
    with pytest.raises(DownloadError, match="HTML page instead of data.zip"):
        download(server + path, dest)
    assert leftovers(tmp_path) == []


def test_download_checksum_mismatch_leaves_nothing_and_keeps_old_file(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(ChecksumError, match="file.bin"):
        download(f"{server}/file.bin", dest, sha256="1" * 64)
    assert leftovers(tmp_path) == []
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        download(f"{server}/file.bin", dest, md5="2" * 32)
    assert dest.read_bytes() == b"old" and leftovers(tmp_path) == ["file.bin"]


def test_download_http_error_and_unreachable(server, tmp_path):
    with pytest.raises(DownloadError, match="nothing.zip"):
        download(f"{server}/nope", tmp_path / "nothing.zip")
    with pytest.raises(DownloadError, match="closed.zip"):  # port 9 (discard): refused at once
        download("http://127.0.0.1:9/x.zip", tmp_path / "closed.zip", timeout=2)
    assert leftovers(tmp_path) == []


def test_download_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = download(src.as_uri(), tmp_path / "out" / "copy.bin", sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


# ---------------------------------------------------------------------------------------------
# registry and CLI, on small fake data roots


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="cs330")
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_registry_names():
    names = registry.datasets()
    for name in ("omniglot", "ml-100k", "ml-latest-small", "sst2", "agnews", "babi", "clothing-reviews", "xsum"):
        assert name in names
    assert registry.get("movielens-100k").name == "ml-100k"
    with pytest.raises(KeyError, match="known: omniglot"):
        registry.get("imagenet")
    om = names["omniglot"]
    assert om.urls["omniglot/omniglot-py/images_background.zip"].endswith("images_background.zip")
    assert "md5:68d2efa1b9178cc56df9314c21c6e718" in om.files["omniglot/omniglot-py/images_background.zip"]


def test_sha256_lf_accepts_crlf_copy(tmp_path):
    lf = b"1\t2\t5\t881250949\n3\t4\t3\t891717742\n"
    (tmp_path / "lf").write_bytes(lf)
    (tmp_path / "crlf").write_bytes(lf.replace(b"\n", b"\r\n"))
    spec = f"sha256-lf:{hashlib.sha256(lf).hexdigest()}"
    assert check_file(tmp_path / "lf", (spec,)) == spec
    assert check_file(tmp_path / "crlf", ("md5:" + "0" * 32, spec)) == spec


def test_verify_corrupt_zip_names_the_file(tmp_path, capsys):
    om = tmp_path / "omniglot" / "omniglot-py"
    om.mkdir(parents=True)
    for part in ("images_background", "images_evaluation"):
        with zipfile.ZipFile(om / f"{part}.zip", "w") as z:
            z.writestr(f"{part}/Latin/character01/0001_01.png", b"not a png")
    assert run_cli("data", "verify", "omniglot", "--root", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "CORRUPT  omniglot/omniglot-py/images_background.zip: md5 mismatch" in out
    assert "images_evaluation.zip" in out and "68d2efa1b9178cc56df9314c21c6e718" in out
    assert run_cli("data", "info", "--root", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"data root:  {tmp_path}" in out and "cache root:" in out
    assert "omniglot           corrupt" in out and "ml-100k            missing" in out


def test_verify_and_line_counts(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    ok = {"u.data": b"1\t1\t5\t1\n", "u.item": b"1|Toy Story\n"}
    files = {f"ml-100k/{k}": (f"sha256:{hashlib.sha256(v).hexdigest()}",) for k, v in ok.items()}
    fake = registry.Dataset("ml-100k", "fake", files, lines={"ml-100k/u.data": 2})
    monkeypatch.setattr(registry, "datasets", lambda root=None: {"ml-100k": fake})
    (folder / "u.data").write_bytes(ok["u.data"])
    assert run_cli("data", "verify", "ml-100k", "--root", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "u.item" in out and "u.data: 1 lines, expected 2" in out
    assert "cs330 data download ml-100k" in out


def test_download_offline_prints_what_to_place_where(tmp_path, capsys, monkeypatch):
    fake = registry.Dataset("toy", "fake", {"toy/a.txt": ("sha256:" + "0" * 64,)},
                            urls={"toy/": "http://127.0.0.1:9/toy.zip"}, offline="Ask a TA.")
    monkeypatch.setattr(registry, "datasets", lambda root=None: {"toy": fake})
    monkeypatch.setenv("CS330_CACHE", str(tmp_path / "cache"))
    assert run_cli("data", "download", "toy", "--root", str(tmp_path / "root")) == 1
    out = capsys.readouterr().out
    assert "could not download toy.zip" in out
    assert f"place these files under {tmp_path / 'root'}" in out and "toy/a.txt" in out and "Ask a TA." in out


def test_fetch_from_a_zip_url(tmp_path, monkeypatch):
    body = b"hello\n"
    archive = tmp_path / "toy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("toy/a.txt", body)
        z.writestr("toy/ignored.sh", b"#!/bin/sh\n")
    fake = registry.Dataset("toy", "fake", {"toy/a.txt": (f"sha256:{hashlib.sha256(body).hexdigest()}",)},
                            urls={"toy/": archive.as_uri()})
    monkeypatch.setattr(registry, "datasets", lambda root=None: {"toy": fake})
    monkeypatch.setenv("CS330_CACHE", str(tmp_path / "cache"))
    report = registry.fetch("toy", tmp_path / "root")
    assert report.status == "present"
    assert leftovers(tmp_path / "root" / "toy") == ["a.txt"]
    assert leftovers(tmp_path / "cache" / "downloads") == []


def test_real_shared_data_verifies(shared_data):
    assert run_cli("data", "verify", "omniglot") == 0
    assert registry.verify("ml-100k").status == "present"


@pytest.fixture
def shared_data():
    env = os.environ.get("CS330_DATA")
    if not (env and (Path(env) / "omniglot").is_dir()):
        pytest.skip("real data not available: set CS330_DATA to the shared data root (e.g. ../shared/data)")
    return Path(env)
