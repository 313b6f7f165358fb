"""CRCs shared by every server of a fleet, as small objects under a prefix of the served bucket.

Two kinds of object, both named by a SHA-256, both never served:

- one per file version, ``<prefix><sha256 of its cache key>`` holding
  "crc32-hex cache-key", and, once its stored ZIP's object exists, "zip NAME";
- one per stored ZIP, ``<prefix>zip/NAME`` (NAME: the SHA-256 of its files'
  keys, in order) holding every file's CRC beside a short hash of its key:
  written once a server knows them all (the first complete download, or a
  resume that gathered the rest).

A cold server asks for the archive's object when a body reaches the central
directory, or follows the pointer of the first per-file object it reads,
whichever comes first: either way one or two GETs give it every CRC of the
archive, and the rest of a resume asks the store nothing.

Writes run in the background (a failed one is logged once and costs only a
later recomputation). Per-file writes wait until the body that learned them
ends (`settle`) or PENDING are waiting, so they can name their archive's
object, and a resume that finds that object drops the ones it holds: it
writes nothing back. Reads run on a pool: tiny objects are all latency, so
many run at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zipserve.sources.s3.errors import code, is_missing

log = logging.getLogger("zipserve.s3")

HEADER = "zipserve-crcs 2"  # the first line of an archive's object: format, version, count


def short(key: str) -> str:
    """Given a cache key, return the 64-bit hash that stands for it in an archive's object."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def archive_text(keys: list[str], values: list[int]) -> bytes:
    """Given an archive's file keys and their CRCs, in order, return the body of its object."""
    lines = (f"{short(k)} {v:08x}\n" for k, v in zip(keys, values, strict=True))
    return "".join([f"{HEADER} {len(keys)}\n", *lines]).encode()


def parse_archive(text: str) -> dict[str, int] | None:
    """Given an archive object's body, return its CRCs by short key, or None if malformed."""
    lines = text.split("\n")
    head = lines[0].rpartition(" ")
    if head[0] != HEADER or not head[2].isdigit() or lines[-1] != "":
        return None
    body = [line.split(" ") for line in lines[1:-1]]
    if len(body) != int(head[2]) or not all(
            len(p) == 2 and len(p[0]) == 16 and len(p[1]) == 8 and _hex(p[0] + p[1]) for p in body):
        return None
    return {k: int(v, 16) for k, v in body}


def parse_file(text: str, key: str) -> tuple[int | None, str | None]:
    """Given a per-file object's body and the key asked, return its CRC and its archive's name."""
    lines = text.split("\n")
    value, _, stored = lines[0].partition(" ")
    if stored != key or len(value) != 8 or not _hex(value):
        return None, None
    name = lines[1][4:] if len(lines) > 1 and lines[1].startswith("zip ") else None
    return int(value, 16), name if name and len(name) == 64 and _hex(name) else None


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def archive_name(keys: list[str]) -> str:
    """Given an archive's file keys, in order, return the hash naming its object (lengths included)."""
    h = hashlib.sha256()
    for k in keys:
        raw = k.encode()
        h.update(len(raw).to_bytes(4, "big") + raw)
    return h.hexdigest()


class S3CrcStore:
    """The shared CRCs under ``s3://bucket/prefix``."""

    PENDING = 256  # background writes queued at most, and per-file writes held back at most
    REMEMBERED = 200_000  # CRCs held from archive objects, at most (then forgotten)

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="zipserve-crc")
        self._room = threading.BoundedSemaphore(self.PENDING)
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}  # per-file writes waiting for their body to end
        self._loaded: dict[str, int] = {}  # short key -> CRC, from archive objects read or written
        self._archive_of: dict[str, str] = {}  # short key -> the archive object holding its CRC
        self._archives: set[str] = set()  # archive objects read or written
        self._warned: set[str] = set()

    def _object(self, key: str) -> str:
        return self.prefix + hashlib.sha256(key.encode()).hexdigest()

    def _archive_object(self, name: str) -> str:
        return self.prefix + "zip/" + name

    # -- per file ------------------------------------------------------------------------------

    def get(self, key: str) -> int | None:
        """Given a key, return its CRC: from an archive object already read, else from its own."""
        with self._lock:
            known = self._loaded.get(short(key))
        if known is not None:
            return known
        text = self._read(self._object(key), 4096)
        value, name = parse_file(text, key) if text is not None else (None, None)
        if name is not None:
            self._load(name)  # the rest of its archive, for the requests that follow
        return value

    def get_many(self, keys: list[str]) -> dict[str, int]:
        found = self.pool.map(self.get, keys)
        return {k: v for k, v in zip(keys, found, strict=True) if v is not None}

    def put(self, key: str, value: int) -> None:
        """Given a file's key and CRC, write it once the body that learned it ends (see settle)."""
        with self._lock:
            self._pending[key] = value
            full = len(self._pending) >= self.PENDING
        if full:
            self.settle()

    def settle(self) -> None:
        """Write every per-file CRC held back (a body ended: nothing more will drop them)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            names = {k: self._archive_of.get(short(k)) for k in pending}
        for key, value in pending.items():
            pointer = f"zip {names[key]}\n" if names[key] else ""
            self._submit(self._object(key), f"{value:08x} {key}\n{pointer}".encode())

    # -- per archive -----------------------------------------------------------------------------

    def get_archive(self, keys: list[str]) -> dict[str, int]:
        """Given a stored ZIP's file keys, in order, return the CRCs its object (or memory) holds."""
        name = archive_name(keys)
        with self._lock:
            loaded = name in self._archives
        if not loaded:
            self._load(name)
        with self._lock:
            found = {k: v for k in keys if (v := self._loaded.get(short(k))) is not None}
            for k, v in found.items():  # what an archive's object holds needs no object of its own
                if self._pending.get(k) == v:
                    del self._pending[k]
        return found

    def put_archive(self, keys: list[str], values: list[int]) -> None:
        """Given every CRC of a stored ZIP's files, in order, write its object once (per process)."""
        name = archive_name(keys)
        with self._lock:
            if name in self._archives or len(keys) > self.REMEMBERED:
                return
        self._hold(name, {short(k): v for k, v in zip(keys, values, strict=True)})
        self._submit(self._archive_object(name), archive_text(keys, values))

    def _load(self, name: str) -> None:
        """Given an archive object's name, read it and hold its CRCs (nothing if it is missing)."""
        obj = self._archive_object(name)
        text = self._read(obj, 64 + 26 * self.REMEMBERED)
        found = parse_archive(text) if text is not None else None
        if found is not None:
            self._hold(name, found)
        elif text is not None:
            self._warn("parse", ValueError(f"{obj} is not a CRC list"))

    def _hold(self, name: str, found: dict[str, int]) -> None:
        with self._lock:
            if len(self._loaded) + len(found) > self.REMEMBERED:
                self._loaded.clear()
                self._archive_of.clear()
                self._archives.clear()
            self._archives.add(name)
            self._loaded.update(found)
            self._archive_of.update(dict.fromkeys(found, name))

    # -- both -------------------------------------------------------------------------------------

    def forget(self, key: str) -> None:
        """Given a key whose CRC proved wrong, delete its object and the archive object holding it."""
        with self._lock:
            self._pending.pop(key, None)
            self._loaded.pop(short(key), None)
            name = self._archive_of.pop(short(key), None)
            if name is not None:
                self._archives.discard(name)
        doomed = [self._object(key)] + ([self._archive_object(name)] if name else [])
        for obj in doomed:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=obj)
            except Exception as exc:
                self._warn("delete", exc)

    def _read(self, obj: str, limit: int) -> str | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=obj)
            with response["Body"] as body:
                return str(body.read(limit + 1).decode("utf-8", "replace"))
        except Exception as exc:
            if not is_missing(exc):
                self._warn("read", exc)
            return None

    def _submit(self, obj: str, data: bytes) -> None:
        self._room.acquire()
        self.pool.submit(self._write, obj, data).add_done_callback(lambda _: self._room.release())

    def _write(self, obj: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=obj, Body=data,
                                   ContentType="text/plain")
        except Exception as exc:
            self._warn("write", exc)

    def _warn(self, what: str, exc: Exception) -> None:
        kind = f"{what}|{code(exc) or type(exc).__name__}"
        if kind not in self._warned:  # once per kind: a read-only store would flood the log
            self._warned.add(kind)
            log.warning("shared CRC cache: %s failed (%s); CRCs are computed instead", what, exc)

    def flush(self) -> None:
        """Write what is held back and wait until every queued write has been made."""
        self.settle()
        for _ in range(self.PENDING):
            self._room.acquire()
        for _ in range(self.PENDING):
            self._room.release()

    def close(self) -> None:
        self.flush()
        self.pool.shutdown(wait=True)
