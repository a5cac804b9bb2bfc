"""The first-run set-up scripts (issue 19), run for real on loopback only:
- scripts/get-onnxruntime.sh against a package index served by http.server on 127.0.0.1 (a real
  wheel-shaped zip, its sha256 in the link as PyPI gives it): fetched, placed where the package
  lib folder is, linked, cached; a wrong sha256 refused; an unreachable index one line and exit 3.
- scripts/deps.sh --missing: a package is named exactly when its check fails."""
import hashlib
import http.server
import io
import os
import pathlib
import subprocess
import threading
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = "1.99.0"  # not the pinned one: checked against the index's sha256
ARCH = "x86_64"
WHEEL = f"onnxruntime-{VERSION}-cp311-cp311-manylinux_2_28_{ARCH}.whl"


def wheel_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"onnxruntime/capi/libonnxruntime.so.{VERSION}", b"not really a library")
        z.writestr("onnxruntime/LICENSE", b"MIT License (test)")
        z.writestr(f"onnxruntime-{VERSION}.dist-info/METADATA", b"Name: onnxruntime")
    return buf.getvalue()


@pytest.fixture()
def index(tmp_path):
    """A PEP 503 index on loopback; yields (url, set_sha) where set_sha changes the advertised hash."""
    data = wheel_bytes()
    state = {"sha": hashlib.sha256(data).hexdigest(), "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["hits"] += 1
            if self.path == "/simple/onnxruntime/":
                body = f'<html><body><a href="/files/{WHEEL}#sha256={state["sha"]}">{WHEEL}</a></body></html>'.encode()
            elif self.path == f"/files/{WHEEL}":
                body = data
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/simple", state
    finally:
        srv.shutdown()


def fetch(dest, cache, index_url):
    env = dict(os.environ, ONNXRUNTIME_VERSION=VERSION, ONNXRUNTIME_ARCH=ARCH, PIP_INDEX_URL=index_url,
               XDG_CACHE_HOME=str(cache), https_proxy="", http_proxy="", HTTPS_PROXY="", HTTP_PROXY="")
    return subprocess.run([str(ROOT / "scripts/get-onnxruntime.sh"), str(dest)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_fetches_places_links_and_caches(index, tmp_path):
    url, state = index
    dest = tmp_path / "target/lib/pe-sentinel"
    r = fetch(dest, tmp_path / "cache", url)
    assert r.returncode == 0, r.stderr
    assert (dest / f"libonnxruntime.so.{VERSION}").read_bytes() == b"not really a library"
    assert os.readlink(dest / "libonnxruntime.so") == f"libonnxruntime.so.{VERSION}"
    assert (dest / "onnxruntime-LICENSE").read_bytes() == b"MIT License (test)"
    assert "sha256 checked" in r.stderr
    # A second destination comes from the cache: no request reaches the index.
    hits = state["hits"]
    r = fetch(tmp_path / "other", tmp_path / "cache", url)
    assert r.returncode == 0 and state["hits"] == hits, r.stderr
    assert (tmp_path / "other/libonnxruntime.so").exists()


def test_wrong_sha256_is_refused(index, tmp_path):
    url, state = index
    state["sha"] = "0" * 64
    r = fetch(tmp_path / "lib", tmp_path / "cache", url)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "expected " + "0" * 64 + ": refusing it" in r.stderr
    assert not (tmp_path / "lib/libonnxruntime.so").exists()


def test_unreachable_index_is_one_line_and_exit_3(tmp_path):
    r = fetch(tmp_path / "lib", tmp_path / "cache", "http://127.0.0.1:9/simple")
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"onnxruntime {VERSION}: not fetched: cannot reach the package index"), r.stderr


def test_deps_names_a_package_exactly_when_its_check_fails(tmp_path):
    # A PATH with the tools deps.sh itself uses, and cmake only in the second run.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ["bash", "grep", "sed", "id", "python3", "sort", "head", "awk", "cc", "c++", "make",
                 "rustc", "cargo", "dirname", "cat"]:
        for d in os.environ["PATH"].split(":"):
            p = pathlib.Path(d) / tool
            if p.exists():
                (bindir / tool).symlink_to(p)
                break
    env = dict(os.environ, PATH=str(bindir))
    run = lambda: subprocess.run(["bash", str(ROOT / "scripts/deps.sh"), "--missing", "build"],
                                 env=env, capture_output=True, text=True, timeout=60)
    r = run()
    assert r.returncode == 0, r.stderr
    assert "cmake" in r.stdout.split(), r.stdout
    (bindir / "cmake").write_text("#!/bin/sh\n")
    (bindir / "cmake").chmod(0o755)
    r = run()
    assert r.returncode == 0 and "cmake" not in r.stdout.split(), r.stdout + r.stderr
