"""Files that change while they are being sent, and special files in the tree.

Each fault (the file vanishes, shrinks, grows, or is replaced by a folder or a
FIFO, so it can no longer be read as planned) is applied after the response
headers and the first body bytes arrived, for every format. The client must see
a cut transfer (httpx raises, curl exits 18), never a whole-looking archive,
and the server log must name the file.

Timing is made deterministic by size, not by sleeping: the client's receive
buffer is small and it stops reading after the first chunk, so the server can
run at most a few MiB (socket buffers and one chunk) ahead of it; every file
the fault must catch lies well beyond that point.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, metrics, wait_until

MiB = 1 << 20
LEAD = 16 * MiB  # first file of every archive: streamed while the fault is applied
SINGLE = 24 * MiB  # the faulty file itself, for /files/ and .gz
VICTIM = 1 * MiB  # the file that breaks, second in every archive

ARCHIVES = {
    "zip-store": ".zip?compression=store",
    "zip-deflate": ".zip?compression=deflate",
    "tar": ".tar",
    "tar.gz": ".tar.gz",
    "tar.zst": ".tar.zst",
}
SINGLES = ("gz", "files")
FAULTS = ("vanish", "shrink", "grow", "dir", "fifo")
# The tool a user would check each download with.
CHECKS = {
    "zip-store": ["unzip", "-tq"],
    "zip-deflate": ["unzip", "-tq"],
    "tar": ["tar", "-tf"],
    "tar.gz": ["tar", "-tzf"],
    "tar.zst": ["zstd", "-tq"],
    "gz": ["gzip", "-t"],
}


@dataclass
class FaultSite:
    """A real server on a folder the tests fill; the lead file every case links; a single's bytes."""

    server: Server
    root: Path
    lead: Path
    single: bytes


@pytest.fixture(scope="module")
def site(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> FaultSite:
    base = tmp_path_factory.mktemp("faults")
    root = base / "root"
    root.mkdir()
    lead = base / "lead.bin"  # outside the root; linked into each case's folder
    lead.write_bytes(os.urandom(LEAD))
    return FaultSite(serve(root), root, lead, os.urandom(SINGLE))


def apply(fault: str, path: Path) -> None:
    """Given a fault name, do it to the file at path."""
    size = path.stat().st_size
    if fault == "vanish":
        path.unlink()
    elif fault == "shrink":
        os.truncate(path, size // 2)
    elif fault == "grow":
        with path.open("ab") as f:
            f.write(os.urandom(MiB))
    elif fault == "dir":
        path.unlink()
        path.mkdir()
    elif fault == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif fault == "rewrite":  # new bytes under the same size and mtime (cp -p, rsync -t)
        before = path.stat()
        path.write_bytes(os.urandom(size))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        raise AssertionError(fault)


@dataclass
class Fetched:
    status: int
    received: bytes
    cut: bool


def small_window_client() -> httpx.Client:
    """A client whose socket buffers little, so the server cannot run far ahead of it."""
    transport = httpx.HTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)])
    return httpx.Client(transport=transport, timeout=30)


def fetch_with_fault(url: str, fault: Callable[[], None]) -> Fetched:
    """GET url; after the headers and the first body chunk, apply the fault, then read the rest."""
    got: list[bytes] = []
    with small_window_client() as client, client.stream("GET", url) as resp:
        chunks = resp.iter_raw()
        got.append(next(chunks))
        fault()
        try:
            for chunk in chunks:
                got.append(chunk)
        except httpx.RemoteProtocolError:
            return Fetched(resp.status_code, b"".join(got), cut=True)
        return Fetched(resp.status_code, b"".join(got), cut=False)


def tool_accepts(fmt: str, data: bytes, tmp: Path) -> bool:
    """Given received bytes, return whether the user's tool calls them a good archive."""
    path = tmp / ("received." + fmt.replace("-store", "").replace("-deflate", ""))
    path.write_bytes(data)
    done = subprocess.run([*CHECKS[fmt], str(path)], capture_output=True, timeout=60)
    return done.returncode == 0


def logged(server: Server, text: str) -> bool:
    """Wait (bounded) until the server log holds text; return whether it did."""
    return wait_until(lambda: text in server.log_text(), 5)


def archive_case(site: FaultSite, name: str) -> tuple[str, Path]:
    """Make case folder `name` holding a-lead.bin (big) then b-victim.bin; return (rel, victim)."""
    folder = site.root / name
    folder.mkdir()
    os.link(site.lead, folder / "a-lead.bin")
    victim = folder / "b-victim.bin"
    victim.write_bytes(os.urandom(VICTIM))
    return name, victim


# --- faults after the headers ----------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("fmt", list(ARCHIVES))
def test_fault_in_an_archive_cuts_the_transfer(site: FaultSite, tmp_path: Path, fmt: str,
                                               fault: str) -> None:
    rel, victim = archive_case(site, f"case-{fmt}-{fault}")
    url = f"{site.server.url}/archive/{rel}{ARCHIVES[fmt]}"
    fetched = fetch_with_fault(url, lambda: apply(fault, victim))
    assert fetched.status == 200
    assert fetched.cut, "the client saw a complete transfer"
    assert not tool_accepts(fmt, fetched.received, tmp_path)
    assert logged(site.server, f"{rel}/b-victim.bin")


@pytest.mark.parametrize("warm", [True, False])
def test_rewrite_under_the_same_mtime_cuts_a_stored_zip(site: FaultSite, tmp_path: Path,
                                                         warm: bool) -> None:
    # Warm, the victim's CRC is cached and a Wire sends it unread: its ctime,
    # which the rewrite moved, is what catches it. Cold, its bytes are read for
    # the CRC before its header.
    rel, victim = archive_case(site, f"case-rewrite-{warm}")
    url = f"{site.server.url}/archive/{rel}{ARCHIVES['zip-store']}"
    if warm:
        with small_window_client() as client:
            assert tool_accepts("zip-store", client.get(url).content, tmp_path)
    fetched = fetch_with_fault(url, lambda: apply("rewrite", victim))
    if warm:
        assert fetched.cut, "the client saw a complete transfer"
        assert not tool_accepts("zip-store", fetched.received, tmp_path)
        assert logged(site.server, f"{rel}/b-victim.bin")
    else:  # the header's CRC was made from the new bytes: a good archive of them
        assert not fetched.cut
        with zipfile.ZipFile(io.BytesIO(fetched.received)) as z:
            assert z.testzip() is None
            assert z.read(f"{rel}/b-victim.bin") == victim.read_bytes()


@pytest.mark.parametrize("fault", ["shrink", "grow"])
@pytest.mark.parametrize("fmt", SINGLES)
def test_file_changing_while_sent_cuts_the_transfer(site: FaultSite, tmp_path: Path, fmt: str,
                                                    fault: str) -> None:
    name = f"single-{fmt}-{fault}.bin"
    path = site.root / name
    path.write_bytes(site.single)
    url = f"{site.server.url}/{'files/' + name if fmt == 'files' else 'archive/' + name + '.gz'}"
    fetched = fetch_with_fault(url, lambda: apply(fault, path))
    assert fetched.status == 200
    assert fetched.cut, "the client saw a complete transfer"
    if fmt == "files":
        # What arrived is the file as it was, and not all of it.
        assert len(fetched.received) < SINGLE
        assert site.single.startswith(fetched.received)
    else:
        assert not tool_accepts(fmt, fetched.received, tmp_path)
    assert logged(site.server, name)


@pytest.mark.parametrize("fault", ["vanish", "dir", "fifo"])
@pytest.mark.parametrize("fmt", SINGLES)
def test_file_replaced_after_it_was_opened_is_sent_as_it_was(site: FaultSite, tmp_path: Path,
                                                             fmt: str, fault: str) -> None:
    # The server reads through the descriptor it opened and checked: unlinking or
    # replacing the name does not change those bytes, so the transfer completes
    # with exactly the file as planned (what nginx does too), never a mix.
    name = f"opened-{fmt}-{fault}.bin"
    path = site.root / name
    path.write_bytes(site.single)
    url = f"{site.server.url}/{'files/' + name if fmt == 'files' else 'archive/' + name + '.gz'}"
    fetched = fetch_with_fault(url, lambda: apply(fault, path))
    assert fetched.status == 200
    assert not fetched.cut
    if fmt == "files":
        assert fetched.received == site.single
    else:
        import gzip

        assert gzip.decompress(fetched.received) == site.single


def test_fault_counts_as_failed_in_metrics(site: FaultSite) -> None:
    def failed() -> float:
        return metrics(site.server.url)["zipserve_archives_total:failed"]
    before = failed()
    rel, victim = archive_case(site, "case-metrics")
    fetched = fetch_with_fault(f"{site.server.url}/archive/{rel}.tar",
                               lambda: apply("vanish", victim))
    assert fetched.cut
    wait_until(lambda: failed() != before, 5)
    assert failed() == before + 1


# --- what curl users see ----------------------------------------------------------------

def curl_with_fault(url: str, out: Path, fault: Callable[[], None]) -> int:
    """Run curl on url (rate-limited so it reads slowly); once bytes arrive, apply the fault.

    At 4 MB/s the server reaches the victim, behind 16 MiB of lead of which the
    socket buffers hold up to ~10 MB, about 1.5 s after curl's first byte: room
    for this process to be late on a busy machine (at 8 MB/s, a CI run once lost).
    """
    proc = subprocess.Popen(["curl", "-sS", "--limit-rate", "4M", "-o", str(out), url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not (out.exists() and out.stat().st_size > 0):
            assert time.monotonic() < deadline and proc.poll() is None, "curl got no body"
            time.sleep(0.01)
        fault()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        assert proc.stderr is not None
        proc.stderr.close()
    return proc.returncode


@pytest.mark.parametrize(("fmt", "fault"), [("tar", "vanish"), ("zip-store", "shrink"),
                                             ("tar.zst", "fifo")])
def test_curl_exits_18_when_an_archive_source_breaks(site: FaultSite, tmp_path: Path, fmt: str,
                                                     fault: str) -> None:
    rel, victim = archive_case(site, f"curl-{fmt}-{fault}")
    out = tmp_path / "out"
    code = curl_with_fault(f"{site.server.url}/archive/{rel}{ARCHIVES[fmt]}", out,
                           lambda: apply(fault, victim))
    assert code == 18
    assert not tool_accepts(fmt, out.read_bytes(), tmp_path)


def test_curl_exits_18_when_a_file_shrinks(site: FaultSite, tmp_path: Path) -> None:
    path = site.root / "curl-shrink.bin"
    path.write_bytes(site.single)
    out = tmp_path / "out"
    code = curl_with_fault(f"{site.server.url}/files/curl-shrink.bin", out,
                           lambda: apply("shrink", path))
    assert code == 18
    assert site.single.startswith(out.read_bytes())


# --- special files -----------------------------------------------------------------------

@pytest.fixture
def special(site: FaultSite) -> Iterator[Path]:
    folder = site.root / "special"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    (folder / "regular.txt").write_bytes(b"plain\n")
    os.mkfifo(folder / "fifo")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(folder / "sock"))
    yield folder
    shutil.rmtree(folder)


def listing(fmt: str, data: bytes, tmp: Path) -> list[str]:
    """Given a complete archive, return its names as bsdtar lists them (after checking it)."""
    assert tool_accepts(fmt, data, tmp)
    path = tmp / "listed"
    path.write_bytes(data)
    done = subprocess.run(["bsdtar", "-tf", str(path)], capture_output=True, timeout=60,
                          check=True)
    return sorted(n.rstrip("/") for n in done.stdout.decode().splitlines())


@pytest.mark.parametrize("fmt", list(ARCHIVES))
def test_special_files_are_left_out_of_archives(site: FaultSite, special: Path, tmp_path: Path,
                                                fmt: str) -> None:
    resp = httpx.get(f"{site.server.url}/archive/special{ARCHIVES[fmt]}", timeout=10)
    assert resp.status_code == 200
    assert listing(fmt, resp.content, tmp_path) == ["special", "special/regular.txt"]
    assert not server_holds(site.server, special / "fifo")


@pytest.mark.parametrize("name", ["fifo", "sock"])
@pytest.mark.parametrize("prefix", ["/files/special/", "/archive/special/"])
def test_special_file_is_not_found_without_hanging(site: FaultSite, special: Path, prefix: str,
                                                   name: str) -> None:
    suffix = ".zip" if prefix.startswith("/archive") else ""
    resp = httpx.get(f"{site.server.url}{prefix}{name}{suffix}", timeout=10)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert not server_holds(site.server, special / name)


def server_holds(server: Server, path: Path) -> bool:
    """Given a path, return whether the server process has it open."""
    fd_dir = f"/proc/{server.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) == str(path):
                return True
        except OSError:
            continue
    return False
