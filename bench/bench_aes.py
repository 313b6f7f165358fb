"""How fast are AES-256 ZIPs: the engine on one core (encode/aes.py), then the real server.

    python bench/bench_aes.py                 # engine: 64 MiB in 1 MiB chunks; server: both trees
    python bench/bench_aes.py --mib 256 --chunk-kib 256 --runs 3 --engine-only
    python bench/bench_aes.py --tree-mib 512 --small 5000 --repeat 5

Engine: encrypts one random buffer chunk by chunk (CTR keystream, XOR,
HMAC-SHA1 over the ciphertext, as an entry is streamed) and prints MB/s per
run with the best and the median; beside it, the key derivation (PBKDF2, 1000
iterations) that every entry pays once, and ISA-L's CRC-32 for scale.

Server: one `zipserve serve` (with --secret and --token) over bench/trees.py's
mixed tree (~1 MiB files, half text, half random) and its tree of 1-8 KiB
files; in one run, plain ZIP stored and auto (deflate what compresses) beside
the same with a password (POSTed, then the record's link fetched), each by
curl to /dev/null after an untimed run that warms the page and CRC caches.
MB/s are 10^6 bytes of file data per second, the median of --repeat runs;
"vs plain" is the same-run ratio to the plain case of that compression; CPU
s/GB is the server's user+system time per GB of file data.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trees  # noqa: E402
from isal import isal_zlib  # noqa: E402

from zipserve.encode import aes  # noqa: E402

SECRET, TOKEN, PASSWORD = "bench secret", "bench token", "bench password"
CASES = [("plain", "store"), ("aes", "store"), ("plain", "auto"), ("aes", "auto")]


def encrypt_seconds(data: bytes, chunk: int) -> float:
    """Given a buffer and a chunk size, return the seconds one encryptor takes over it."""
    view = memoryview(data)
    start = time.perf_counter()
    enc = aes.AesEncryptor(b"password", bytes(16))
    for i in range(0, len(data), chunk):
        enc.update(view[i: i + chunk])
    enc.finish()
    return time.perf_counter() - start


def engine(args: argparse.Namespace) -> None:
    """Given the options, print the engine's MB/s, PBKDF2's cost and CRC-32's MB/s."""
    data = os.urandom(args.mib << 20)
    rates = [len(data) / encrypt_seconds(data, args.chunk_kib << 10) / 1e6 for _ in range(args.runs)]
    print(f"AES-256 CTR + HMAC-SHA1, {args.mib} MiB in {args.chunk_kib} KiB chunks:")
    print("  runs   " + "  ".join(f"{r:.0f}" for r in rates) + " MB/s")
    print(f"  best   {max(rates):.0f} MB/s   median {statistics.median(rates):.0f} MB/s")
    start = time.perf_counter()
    for i in range(200):
        aes.derive_keys(b"password", i.to_bytes(16, "little"))
    print(f"PBKDF2 key derivation: {(time.perf_counter() - start) / 200 * 1e3:.2f} ms an entry")
    start = time.perf_counter()
    isal_zlib.crc32(data)
    print(f"CRC-32 (ISA-L) for scale: {len(data) / (time.perf_counter() - start) / 1e6:.0f} MB/s")


@contextmanager
def server(root: Path, work: Path) -> Iterator[tuple[str, int]]:
    """Given a folder, run zipserve on it with a secret and a token; yield its URL and pid."""
    port = trees_port()
    cmd = [sys.executable, "-m", "zipserve", "serve", str(root), "--port", str(port), "--secret", SECRET,
           "--token", TOKEN, "--crc-cache", str(work / "crc.sqlite3"),
           "--records", str(work / "records.sqlite3")]
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def trees_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link(url: str, folder: str, kind: str, compression: str) -> str:
    """Given a server, a folder and a case, return the URL that downloads it (a record's link for aes)."""
    if kind == "plain":
        return f"{url}/archive/{folder}.zip?compression={compression}"
    body = json.dumps({"paths": [folder], "format": "zip", "compression": compression,
                       "password": PASSWORD}).encode()
    request = urllib.request.Request(url + "/archive", data=body, method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(request, timeout=60)
    except urllib.error.HTTPError as answer:
        if answer.code == 303:
            return url + answer.headers["Location"]
        raise
    raise RuntimeError("POST /archive did not answer 303")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kw: object) -> None:
        return None


def cpu_seconds(pid: int) -> float:
    """Given a pid, return its user+system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(url: str) -> float:
    """Given a URL, download it with curl to /dev/null (the token as a header); return the seconds."""
    done = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", "-H",
                           f"Authorization: Bearer {TOKEN}", url], capture_output=True, text=True,
                          check=True, timeout=600)
    return float(done.stdout)


def measure(url: str, pid: int, tree: trees.Tree, repeat: int) -> list[tuple[str, float, float]]:
    """Given a running server and a tree below its root, return (case, MB/s, CPU s/GB) for every case."""
    out = []
    for kind, compression in CASES:
        target = link(url, tree.name, kind, compression)
        fetch(target)  # untimed: page cache and CRC cache warm
        cpu, times = cpu_seconds(pid), [fetch(target) for _ in range(repeat)]
        used = (cpu_seconds(pid) - cpu) / repeat
        out.append((f"{kind} {compression}", tree.bytes / statistics.median(times) / 1e6,
                    used / (tree.bytes / 1e9)))
    return out


def through_server(args: argparse.Namespace) -> None:
    """Given the options, print MB/s of plain and AES ZIPs of both trees through one real server."""
    base = Path(args.dir)
    mixed = trees.mixed_tree(base, mib=args.tree_mib)
    small = trees.small_tree(base, count=args.small)
    with tempfile.TemporaryDirectory() as work, server(mixed.path.parent, Path(work)) as (url, pid):
        for tree in (mixed, small):
            trees.warm(tree.path)
            print(f"\n{tree.name}: {tree.files} files, {tree.bytes / 1e6:.0f} MB "
                  f"(median of {args.repeat}, curl to /dev/null)")
            print(f"  {'case':<14}{'MB/s':>8}{'vs plain':>10}{'CPU s/GB':>10}")
            rows = measure(url, pid, tree, args.repeat)
            plain = {name.split()[1]: rate for name, rate, _ in rows if name.startswith("plain")}
            for name, rate, cpu in rows:
                print(f"  {name:<14}{rate:>8.0f}{rate / plain[name.split()[1]]:>10.2f}{cpu:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine-only", action="store_true")
    parser.add_argument("--dir", default=str(trees.DEFAULT_DIR))
    parser.add_argument("--tree-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine(args)
    if not args.engine_only:
        through_server(args)


if __name__ == "__main__":
    main()
