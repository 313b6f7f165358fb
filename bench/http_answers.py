"""Are the HTTP answers the same across two revisions? Asks both apps the same requests and compares.

    python bench/http_answers.py                  # this checkout against HEAD
    python bench/http_answers.py --base 421d2c2   # against any revision

Each revision serves one fixed tree (mtimes fixed) through its own create_app,
in process with Starlette's TestClient, and answers ~600 requests: files and
archives (sized, streamed, gz) with Range, multipart, If-None-Match, If-Match,
If-Range, dates and pinned ?etag=, GET and HEAD; refusals as JSON and HTML; the
listing, the page, POST /archive forms and JSON; a token-protected app; an app
whose stream cap is taken. For each: status, every header in order, and the
SHA-256 of the body. Exits 1 when any answer differs, and prints those.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
MTIME = 1_700_000_000
LM = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an HTTP-date
TARGETS = ["/files/docs/readme.txt", "/files/photos/2024/cat.jpg", "/files/docs/notes/empty.txt",
           "/archive/docs.tar", "/archive/photos.zip?compression=store", "/archive/docs.zip",
           "/archive/docs.tar.gz", "/archive?path=docs&path=top.txt&format=tar",
           "/archive/docs/notes/empty.txt.gz", "/archive/empty-folder.tar"]
# "{etag}" stands for the target's current ETag.
CONDITIONS: list[dict[str, str]] = [
    {}, {"Range": "bytes=0-9"}, {"Range": "bytes=10-"}, {"Range": "bytes=-5"},
    {"Range": "bytes=0-1,5-9"}, {"Range": "bytes=0-1,5-9,3-4"}, {"Range": "bytes=99999999-"},
    {"Range": "bytes=0-,0-"}, {"Range": "bogus"}, {"Range": "bytes=99999999-", "Accept": "text/html"},
    {"If-None-Match": "{etag}"}, {"If-None-Match": "W/{etag}"}, {"If-None-Match": '"x"'},
    {"If-None-Match": "*"}, {"If-Match": "{etag}"}, {"If-Match": '"x"'},
    {"If-Match": '"x"', "Range": "bytes=0-3"}, {"If-Range": "{etag}", "Range": "bytes=2-7"},
    {"If-Range": "W/{etag}", "Range": "bytes=2-7"}, {"If-Range": LM, "Range": "bytes=2-7"},
    {"If-Range": "Wed, 15 Nov 2023 22:13:20 GMT", "Range": "bytes=2-7"},
    {"If-Range": "x", "Range": "bytes=0-1"}, {"If-Modified-Since": LM},
    {"If-Unmodified-Since": "Mon, 13 Nov 2023 22:13:20 GMT"},
    {"If-None-Match": "{etag}", "Range": "bytes=99999999-"},
    {"If-Match": '"x"', "Range": "bytes=99999999-"}]
PINS = [None, "{etag}", '"nope"', ""]
JSON = {"Content-Type": "application/json"}
OTHERS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/files/missing", {}), ("GET", "/files/docs", {}), ("GET", "/files/../etc/passwd", {}),
    ("GET", "/archive/nonexistent.zip", {}), ("GET", "/archive?path=../x&format=zip", {}),
    ("GET", "/archive/docs.rar", {}), ("GET", "/archive?path=docs&format=zip&level=99", {}),
    ("GET", "/archive/docs.zip", {"headers": {"Accept": "text/html"}}), ("GET", "/nothing", {}),
    ("GET", "/nothing", {"headers": {"Accept": "text/html"}}), ("GET", "/openapi.json", {}),
    ("GET", "/docs", {}), ("GET", "/redoc", {}), ("POST", "/files/top.txt", {}),
    ("DELETE", "/files/top.txt", {}), ("PUT", "/archive", {}), ("HEAD", "/api/list", {}),
    ("GET", "/healthz", {}), ("HEAD", "/healthz", {}), ("POST", "/healthz", {}),
    ("GET", "/api/list", {}), ("GET", "/api/list/docs", {}), ("GET", "/api/list?path=docs", {}),
    ("GET", "/api/list/nope", {}), ("GET", "/", {}), ("GET", "/browse/docs", {}),
    ("GET", "/browse/top.txt", {}), ("GET", "/archive?s=garbage", {}),
    ("POST", "/archive", {"data": {"path": ["docs", "top.txt"], "format": "tar"}}),
    ("POST", "/archive", {"json": {"paths": ["docs"], "format": "zip", "name": "x"}}),
    ("POST", "/archive", {"json": {"paths": ["docs"], "level": [1]}}),
    ("POST", "/archive", {"json": ["docs"]}), ("POST", "/archive", {"json": {"paths": ["../etc"]}}),
    ("POST", "/archive", {"content": b"{not json", "headers": JSON}),
    ("POST", "/archive", {"content": b"x" * 5000, "headers": JSON}),
    ("POST", "/archive", {"content": b"x", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/archive", {"content": b'{"paths": ["\\ud800"]}', "headers": JSON})]
GUARDED = ["/files/top.txt", "/files/top.txt?token=tok", "/files/top.txt?sig=bad&expires=1"]


def fixed_tree(root: Path) -> Path:
    """Given a folder to create, fill it with a small tree, every mtime fixed; return it."""
    files = {"docs/readme.txt": b"hello zipserve\n" * 50,
             "docs/notes/long.txt": b"".join(b"line %d of the notes\n" % i for i in range(5000)),
             "docs/notes/empty.txt": b"", "photos/2024/cat.jpg": bytes(range(256)) * 800,
             "photos/caf\u00e9.txt": b"non-ASCII name\n", "top.txt": b"top level\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "empty-folder").mkdir()
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))
    return root


class Recorder:
    """Asks one app and keeps one JSON-able row per answer."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rows: list[dict[str, Any]] = []

    def ask(self, method: str, url: str, **kw: Any) -> None:
        r = self.client.request(method, url, follow_redirects=False, **kw)
        self.rows.append({"request": [method, url, repr(kw)], "status": r.status_code,
                          "headers": r.headers.multi_items(),
                          "body": hashlib.sha256(r.content).hexdigest()[:16]})


def conditional(rec: Recorder) -> None:
    """Ask every target under every condition, GET and HEAD, archives with every pin."""
    for target in TARGETS:
        etag = rec.client.head(target).headers.get("etag", '"none"')
        for method in ("GET", "HEAD"):
            for cond in CONDITIONS:
                headers = {k: v.replace("{etag}", etag) for k, v in cond.items()}
                pins = PINS if target.startswith("/archive") and not cond else [None]
                for pin in pins:
                    url = target if pin is None else (
                        target + ("&" if "?" in target else "?") + "etag=" + pin.replace("{etag}", etag))
                    rec.ask(method, url, headers=headers)


def probe() -> None:
    """Print one JSON line per answer of this checkout's app (run with the checkout importable)."""
    from starlette.testclient import TestClient

    from zipserve.http.app import create_app
    from zipserve.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = fixed_tree(Path(tmp) / "root")
        rows: list[dict[str, Any]] = []
        for settings, run in [({"max_body": 4096}, main_app), ({"token": "tok", "secret": "sec"}, guarded),
                              ({"max_streams": 1}, busy)]:
            app = create_app(Settings(root=root, crc_cache=None, **settings))  # type: ignore[arg-type]
            with TestClient(app, raise_server_exceptions=False) as client:
                rec = Recorder(client)
                run(rec, app)
                rows += rec.rows
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


def main_app(rec: Recorder, app: Any) -> None:
    conditional(rec)
    for method, url, kw in OTHERS:
        rec.ask(method, url, **kw)
    location = rec.client.post("/archive", json={"paths": ["docs", "top.txt"], "format": "tar"},
                               follow_redirects=False).headers["location"]
    rec.ask("GET", location)
    rec.ask("GET", location, headers={"Range": "bytes=0-9"})


def guarded(rec: Recorder, app: Any) -> None:
    for url in GUARDED:
        rec.ask("GET", url)
    rec.ask("GET", "/files/top.txt", headers={"Accept": "text/html"})
    rec.ask("GET", "/files/top.txt", headers={"Authorization": "Bearer tok"})


def busy(rec: Recorder, app: Any) -> None:
    app.state.metrics.try_start(1)  # the only stream slot is taken
    etag = rec.client.head("/archive/docs.tar").headers["etag"]
    for headers in [{}, {"If-None-Match": etag}, {"Range": "bytes=99999999-"}, {"Range": "bytes=0-4"}]:
        for method in ("GET", "HEAD"):
            for url in ("/archive/docs.tar", "/archive/docs.zip"):
                rec.ask(method, url, headers=headers)


def answers(checkout: Path) -> list[str]:
    """Given a checkout, return its app's answers, one JSON line each."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, str(HERE / "bench" / "http_answers.py"), "--probe"],
                          capture_output=True, env=env, cwd=checkout, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode().splitlines()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", default="HEAD", help="revision to compare against (default HEAD)")
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(base), args.base],
                       check=True, capture_output=True)
        try:
            theirs, ours = answers(base), answers(HERE)
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(base)],
                           check=False, capture_output=True)
    differ = [(a, b) for a, b in zip(theirs, ours, strict=False) if a != b]
    for a, b in differ:
        print(f"{args.base[:12]}: {a}\nthis:         {b}\n")
    same = len(theirs) == len(ours) and not differ
    print(f"{len(theirs) - len(differ)} of {len(theirs)} answers identical"
          + ("" if len(theirs) == len(ours) else f" ({len(ours)} answers here)"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
