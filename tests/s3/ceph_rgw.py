"""A one-node Ceph cluster (monitor, one OSD, radosgw) on 127.0.0.1: the real S3 server our tests use.

Not a mock: Debian's radosgw (`apt-get install radosgw ceph-mon ceph-osd`). Ceph 16 has no
standalone RGW backend, so RGW stores its objects in RADOS: one monitor and one OSD on
memstore, with cephx off between the daemons, pools of size 1, and CRUSH choosing among
OSDs rather than hosts. Everything lives in one folder (config, mon and OSD data, logs,
admin sockets, pid files); every daemon listens on 127.0.0.1 only, on free ports; nothing
goes through systemd.

Use it from pytest through the session fixture `ceph_rgw` (tests/s3/fixtures.py, loaded by
tests/conftest.py), or from a shell:

    python tests/s3/ceph_rgw.py start DIR   # prints `export AWS_...` lines
    python tests/s3/ceph_rgw.py env DIR     # the same lines again
    python tests/s3/ceph_rgw.py stop DIR

Addressing is path-style (http://127.0.0.1:PORT/bucket/key); the region is us-east-1.
RGW logs one line per request in DIR/log/client.rgw.s3.log ("beast: ... GET /b/k ...").

What Ceph 16.2 (pacific) answers, checked by tests/test_ceph_rgw.py:
- CRC32 checksums (x-amz-checksum-crc32): not supported. A PUT carrying one gets 200
  whether the value is right or wrong (never verified), and nothing is stored: HEAD or GET
  with x-amz-checksum-mode: ENABLED returns no x-amz-checksum-* header, and
  GetObjectAttributes answers 500. zipserve must not rely on S3 checksums from this store:
  every CRC comes from its caches or from one read. boto3's own defaults (1.36+ adds CRC32 to uploads)
  work here: over plain HTTP it sends the checksum as a header, not as an aws-chunked
  trailer, and RGW ignores it.
- If-Match on a ranged GET: the ETag of a replaced object gets 412 PreconditionFailed; the
  current ETag gets 206 with the slice. A range starting at or past the end is 416
  InvalidRange; ranges are clipped to the size like S3.
- ETags are the quoted MD5 of the body; multipart objects have md5(part MD5s)-N.
- Listing pages hold at most 1000 keys (ListObjectsV2 continuation tokens beyond that). A
  folder marker "a/" is a 0-byte object: with Delimiter="/" the top level shows it only as
  the common prefix "a/"; under Prefix="a/" it is the first key, size 0.
- Bucket names need 3 or more characters (InvalidBucketName otherwise).

Setup quirks (each cost a failed start before it was found):
- With auth none, radosgw loops forever on "get_initial_auth_request returned -13": as a
  daemon it talks to the monitor in secure mode only, which needs cephx. `ms * mode = crc`.
- memstore's mkfs asserts unless the OSD's folder already exists.
- `radosgw-admin user create` waits for the OSD, then creates RGW's pools one map epoch
  at a time; with the monitor's default 1 s paxos propose interval that took ~11 s of a
  13 s start. `paxos propose interval = 0.05` brings the whole start to 2-5 s.
- The monitor writes its cluster and audit logs to /var/log/ceph unless told otherwise.

Figures on the 2-core development machine (memstore): S3 answers 2-5 s after `start`;
the three daemons hold ~135 MB resident when idle (mon 35, OSD 50, RGW 55), and memstore
adds about twice what it stores (a 256 MiB object: ~700 MB in all). boto3 reads a
256 MiB object at 440-465 MiB/s in one stream and 450-580 MiB/s as 8 concurrent 8 MiB
ranged GETs (curl: 530-620 MiB/s), and about half of that with other jobs on the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
DAEMONS = ("mon.a", "osd.0", "client.rgw.s3")  # start order; stopped in reverse
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
INSTALL_HINT = "apt-get install radosgw ceph-mon ceph-osd"
STATE = "cluster.json"
START_TIMEOUT = 90.0  # seconds for the whole start, S3 answering included
STOP_TIMEOUT = 10.0  # seconds a daemon gets after SIGTERM before SIGKILL
STORE_ENV = "ZIPSERVE_CEPH_STORE"  # memstore (the default) or bluestore
# Where `missing_binaries` looks for the programs above, instead of $PATH (e.g. an empty
# folder, to see what a machine without Ceph does); the daemons themselves run from $PATH.
SEARCH_ENV = "ZIPSERVE_CEPH_PATH"

# The OSD's object store. memstore keeps objects in the OSD's memory (2 GiB at most): the
# fastest to start and read. bluestore writes a sparse 10 GiB file in the OSD folder and keeps
# the OSD near 150 MB resident whatever it holds; it starts ~6 s slower and reads ~40% slower.
STORES = {
    "memstore": "osd objectstore = memstore\nmemstore device bytes = 2147483648",
    "bluestore": "osd objectstore = bluestore\nbluestore block create = true\n"
    "bluestore block size = 10737418240\nbluestore fsck on mkfs = false\nosd memory target = 939524096",
}

# The daemons this process started and has not yet seen exit (Popen warns if dropped while running).
_children: dict[int, subprocess.Popen[bytes]] = {}

CONF = """\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = /dev/null
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
mon cluster log file = default={dir}/log/$cluster.$channel.log cluster={dir}/log/$cluster.log
log to stderr = false
err to stderr = true
crash dir = {dir}/crash
mon data = {dir}/mon/$name
osd data = {dir}/osd/$name
mon allow pool size one = true
paxos propose interval = 0.05
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
{store}

[client.rgw.s3]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {dir}/rgw
"""


@dataclass(frozen=True)
class CephRgw:
    """A running cluster: where S3 answers and with which credentials."""

    dir: str
    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client on this endpoint, path-style; close it when done.

        boto3's own checksum defaults stay: over plain HTTP they send CRC32 as a header, which
        RGW 16 ignores (see above). `config` adds or replaces botocore Config settings.
        """
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 2, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 60,
            **config,
        }
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(**settings),
        )

    def env(self) -> dict[str, str]:
        """The variables AWS tools read (boto3 >= 1.28 and the aws CLI read AWS_ENDPOINT_URL)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def log_text(self, name: str = "client.rgw.s3") -> str:
        return (Path(self.dir) / "log" / f"{name}.log").read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident memory of all the cluster's daemons together."""
        total = 0
        for pid in _pids(Path(self.dir)).values():
            total += _rss(pid)
        return total


# -- starting ---------------------------------------------------------------------------------


def missing_binaries() -> list[str]:
    """Return the Ceph programs not found in $ZIPSERVE_CEPH_PATH (when set) or $PATH."""
    where = os.environ.get(SEARCH_ENV) or None
    return [name for name in BINARIES if shutil.which(name, path=where) is None]


def start(directory: Path, *, store: str | None = None, die_with_parent: bool = False) -> CephRgw:
    """Create and start a cluster in `directory` (new or empty); stop it again if any step fails.

    `store` is a key of STORES (default: $ZIPSERVE_CEPH_STORE, else memstore). With
    `die_with_parent`, the kernel kills the daemons if this process dies without stopping them.
    """
    store = store or os.environ.get(STORE_ENV) or "memstore"
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}: one of {', '.join(STORES)}")
    missing = missing_binaries()
    if missing:
        raise RuntimeError(f"Ceph is not installed (no {', '.join(missing)}): {INSTALL_HINT}")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise RuntimeError(f"{directory} is not empty")
    deadline = time.monotonic() + START_TIMEOUT
    try:
        return _start(directory, STORES[store], die_with_parent, deadline)
    except BaseException:
        stop(directory)
        raise


def _start(directory: Path, store: str, die_with_parent: bool, deadline: float) -> CephRgw:
    for sub in ("run", "log", "crash", "mon", "osd/osd.0", "rgw"):
        (directory / sub).mkdir(parents=True)
    ports = _free_ports(3)
    fsid = str(uuid.uuid4())
    conf = directory / "ceph.conf"
    conf.write_text(CONF.format(
        fsid=fsid, dir=directory, mon_v2=ports[0], mon_v1=ports[1], rgw_port=ports[2],
        store=store,
    ))
    monmap = directory / "monmap"
    _run(deadline, "monmaptool", "-c", conf, "--create", "--fsid", fsid,
         "--addv", "a", f"[v2:127.0.0.1:{ports[0]},v1:127.0.0.1:{ports[1]}]", monmap)
    _run(deadline, "ceph-mon", "-c", conf, "-i", "a", "--mkfs", "--monmap", monmap)
    _spawn(directory, die_with_parent, "mon.a", "ceph-mon", "-i", "a")
    osd_uuid = str(uuid.uuid4())
    _run(deadline, "ceph", "-c", conf, "--connect-timeout", "30", "osd", "new", osd_uuid)
    _run(deadline, "ceph-osd", "-c", conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
    _spawn(directory, die_with_parent, "osd.0", "ceph-osd", "-i", "0")
    access_key = "ZS" + secrets.token_hex(9).upper()
    secret_key = secrets.token_hex(20)  # no leading "-" for radosgw-admin to take as an option
    _run(deadline, "radosgw-admin", "-c", conf, "user", "create", "--uid", "zipserve",
         "--display-name", "zipserve tests", "--access-key", access_key, "--secret", secret_key)
    _spawn(directory, die_with_parent, "client.rgw.s3", "radosgw", "-n", "client.rgw.s3")
    endpoint = f"http://127.0.0.1:{ports[2]}"
    _wait_for_http(directory, endpoint, deadline)
    cluster = CephRgw(str(directory), endpoint, access_key, secret_key)
    (directory / STATE).write_text(json.dumps(asdict(cluster), indent=2))
    return cluster


def load(directory: Path) -> CephRgw:
    return CephRgw(**json.loads((directory.resolve() / STATE).read_text()))


def _free_ports(count: int) -> list[int]:
    """Ports free now on 127.0.0.1 (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(deadline: float, *cmd: str | Path) -> None:
    """Run a one-shot Ceph tool; its output goes in the error if it fails."""
    args = [str(part) for part in cmd]
    timeout = max(1.0, deadline - time.monotonic())
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{args[0]} did not finish in {timeout:.0f} s: {' '.join(args)}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _spawn(directory: Path, die_with_parent: bool, name: str, *cmd: str) -> None:
    """Start a daemon in the foreground of its own session and record its pid.

    Foreground (-f) so no fork hides the pid; its own session so a Ctrl-C in the shell that
    ran `start` does not reach it. stderr goes to DIR/log/NAME.stderr.
    """
    args = [cmd[0], "-f", "-c", str(directory / "ceph.conf"), *cmd[1:]]
    with (directory / "log" / f"{name}.stderr").open("wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True,
                                preexec_fn=_kill_me_with_parent if die_with_parent else None)
    _children[proc.pid] = proc
    pids = _pids(directory)
    pids[name] = proc.pid
    (directory / "run" / "pids.json").write_text(json.dumps(pids))


def _kill_me_with_parent() -> None:
    """In the forked child: ask Linux for SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _wait_for_http(directory: Path, endpoint: str, deadline: float) -> None:
    """Poll until RGW answers HTTP at all (an anonymous GET / is a 200 listing no buckets)."""
    for _ in range(int(START_TIMEOUT * 5)):
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return
        except urllib.error.HTTPError as exc:
            exc.close()
            return
        except OSError:
            pass
        dead = [name for name, pid in _pids(directory).items() if not _alive(pid)]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited:\n" + _log_tails(directory))
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise RuntimeError(f"S3 did not answer at {endpoint} in {START_TIMEOUT:.0f} s:\n" + _log_tails(directory))


def _log_tails(directory: Path, lines: int = 15) -> str:
    parts = []
    for path in sorted((directory / "log").glob("*")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(parts)


# -- stopping ---------------------------------------------------------------------------------


def stop(directory: Path) -> None:
    """Stop the cluster's daemons, newest first: SIGTERM, then SIGKILL after a bounded wait."""
    directory = directory.resolve()
    pids = _pids(directory)
    for name in reversed(DAEMONS):
        pid = pids.get(name)
        if pid is not None and _ours(pid, directory):
            _terminate(pid)


def _terminate(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid):
                return
            time.sleep(0.05)
    raise RuntimeError(f"process {pid} survived SIGKILL")


def _pids(directory: Path) -> dict[str, int]:
    path = directory / "run" / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _ours(pid: int, directory: Path) -> bool:
    """The pid still runs one of our daemons (pids get reused): its command names our config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(directory / "ceph.conf").encode() in cmdline


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so it does not linger as a zombie."""
    proc = _children.get(pid)
    if proc is None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    elif proc.poll() is not None:
        del _children[pid]


def _alive(pid: int) -> bool:
    """Running, not a zombie (a killed daemon whose parent has not reaped it yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- command line -----------------------------------------------------------------------------


def _print_env(cluster: CephRgw) -> None:
    for key, value in cluster.env().items():
        print(f"export {key}={value}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop", "env"):
        print("usage: ceph_rgw.py start|stop|env DIR", file=sys.stderr)
        return 2
    command, directory = argv[0], Path(argv[1])
    if command == "start":
        _print_env(start(directory))
    elif command == "env":
        _print_env(load(directory))
    else:
        stop(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
