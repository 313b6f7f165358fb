"""Encrypted ZIP entries (WinZip AES-256, AE-2) on the compression pool, for sized and streamed bodies.

CTR's keystream at any offset follows from the keys alone, so an entry's data
is cut into blocks and each block is encrypted as its own task on the pool
(aes.ctr: one AES-ECB call and one big-integer XOR, no loop per AES block);
the HMAC-SHA1 code runs over the ciphertext in order, as each task's output is
taken (hashlib releases the GIL on big buffers). One ordered window bounds
the work in flight (ordered.py).

Sized bodies derive each entry's salt (aes.derive_salt, keyed by the server
secret) from the password and the entry's identity: the name and everything
the ETag says of the file, plus its CRC-32, so the same ETag gives the same
bytes on every request and every server, and a file rewritten behind an
unchanged size and mtime still gets another key unless its CRC-32 is the
same. Streamed bodies use random salts: nothing needs their bytes to repeat.

A sized body may start anywhere. Its "salt" piece needs only the keys; a data
piece is encrypted from its offset; the "mac" piece needs the code over the
whole ciphertext, so a body that starts inside an entry and reaches its code
first encrypts the data before its start (read again, not sent).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from zipserve.core.node import Entry
from zipserve.core.plan import ArchivePlan, Sealing
from zipserve.encode import aes
from zipserve.encode.compress import DEFAULT_BLOCK, Pool, window
from zipserve.encode.ordered import Item, Stream, Task, in_order
from zipserve.encode.reads import Reads
from zipserve.sources.crc import crc32

BLOCK = DEFAULT_BLOCK  # bytes encrypted by one task: as big as a deflate block


def identity(entry: Entry, crc: int) -> str:
    """Given a sized entry and its CRC-32, return what its derived salt is keyed to (name and version)."""
    n = entry.node
    return (f"{entry.name}\0{n.origin}\0{n.kind}\0{n.mode}\0{n.size}\0{n.mtime_ns}\0"
            f"{entry.mtime_ns}\0{n.version}\0{crc:08x}")


def encrypt_items(chunks: Iterable[bytes], keys: aes.Keys, pool: Pool, *, offset: int = 0,
                  mac: hmac.HMAC | None = None) -> Iterator[Item]:
    """Given an entry's data from `offset` on, yield Tasks encrypting it block by block on the pool.

    `mac`, when given, takes in the ciphertext in order as each task's output is taken.
    """
    def take(out: bytes) -> tuple[bytes]:
        if mac is not None:
            mac.update(out)
        return (out,)

    at = offset
    for chunk in chunks:
        view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk))  # bytes never change
        for i in range(0, len(view), BLOCK):
            block = view[i: i + BLOCK]
            yield Task(pool.submit(aes.ctr, keys, at, block), take, len(block))
            at += len(block)


def encrypted(chunks: Iterable[bytes], keys: aes.Keys, pool: Pool, *, offset: int = 0,
              mac: hmac.HMAC | None = None) -> Stream:
    """Given an entry's data from `offset` on, return its ciphertext in order (see encrypt_items)."""
    return in_order(encrypt_items(chunks, keys, pool, offset=offset, mac=mac), limit=window(pool))


AHEAD = 8  # encrypted entries of a sized body whose keys are derived ahead, on the pool


def derive(sealing: Sealing, entry: Entry, crc: int) -> tuple[bytes, aes.Keys]:
    """Given the sealing, an entry and its CRC-32, return its derived salt and its keys (PBKDF2)."""
    salt = aes.derive_salt(sealing.secret, sealing.password, identity(entry, crc))
    return salt, aes.derive_keys(sealing.password, salt)


@dataclass
class SizedSeal:
    """The encrypted entries of one sized body: each one's salt and keys, and its code as it goes.

    Keys cost a PBKDF2 each (about a millisecond), more than a small file's
    cipher: while the body is at one entry, those of the next AHEAD entries
    in its span whose CRC-32 is cheap to have (cached, or a small file on a
    local disk, read once more) are derived on the pool; an entry whose CRC
    then differs gets keys of its own. `reads` reads the data a body must
    encrypt without sending (see the module docstring); `local`: reading a
    small file again costs no request.
    """

    plan: ArchivePlan
    pool: Pool
    reads: Reads
    stop: int  # where the body ends
    local: bool
    keys: dict[int, tuple[bytes, aes.Keys]] = field(default_factory=dict)
    codes: dict[int, hmac.HMAC] = field(default_factory=dict)  # codes taking in a data piece
    ahead: dict[int, tuple[int, Future[tuple[bytes, aes.Keys]]]] = field(default_factory=dict)
    looked: int = 0  # entries before this one were looked ahead at

    def salt_keys(self, index: int, entry: Entry, crc: int) -> tuple[bytes, aes.Keys]:
        """Given an entry (its index) and its CRC-32, return its derived salt and keys (PBKDF2 once)."""
        known = self.keys.get(index)
        if known is None:
            assert self.plan.sealing is not None
            self._look_ahead(index)
            early = self.ahead.pop(index, None)
            known = early[1].result() if early is not None and early[0] == crc \
                else derive(self.plan.sealing, entry, crc)
            self.keys[index] = known
        return known

    def _look_ahead(self, index: int) -> None:
        """Given the entry the body is at, have the keys of the next encrypted ones derived on the pool."""
        entries, offsets = self.plan.entries, self.plan.layout.offsets if self.plan.layout else []
        at = max(self.looked, index + 1)
        while at < len(entries) and offsets[at] < self.stop and len(self.ahead) < AHEAD:
            entry = entries[at]
            crc = self._crc(entry) if entry.sealed else None
            if crc is not None:
                self.ahead[at] = crc, self.pool.submit(derive, self.plan.sealing, entry, crc)
            at += 1
        self.looked = at

    def _crc(self, entry: Entry) -> int | None:
        """Given an encrypted entry ahead, return its CRC-32 if cached or cheap to have, else None."""
        node = entry.node
        known = self.reads.crcs.cache.get(node) if node.size else 0
        if known is None and self.local and node.size <= self.reads.hold:
            known = crc32(b"".join(self.reads.data(node)))
        return known

    def prefix(self, index: int, entry: Entry, crc: int) -> bytes:
        """Given an entry and its CRC-32, return its salt and password verifier."""
        salt, keys = self.salt_keys(index, entry, crc)
        return salt + keys.verifier

    def data(self, index: int, entry: Entry, crc: int, lo: int, plain: Iterable[bytes], *,
             coded: bool) -> Stream:
        """Given an entry's plain data from `lo` on, return its ciphertext.

        `coded`: this body sends the entry's code too, so the code takes in the
        ciphertext, and when `lo` is past the start, that of the data before it.
        """
        keys = self.salt_keys(index, entry, crc)[1]
        mac = None
        if coded:
            mac = self.codes[index] = aes.new_mac(keys)
            if lo:
                self._feed(index, mac, keys, 0, lo)
        return encrypted(plain, keys, self.pool, offset=lo, mac=mac)

    def code(self, index: int, entry: Entry, crc: int) -> bytes:
        """Given an entry and its CRC-32, return its 10-byte authentication code."""
        mac = self.codes.pop(index, None)
        if mac is None:  # this body starts at the code: the whole ciphertext is made again
            keys = self.salt_keys(index, entry, crc)[1]
            mac = aes.new_mac(keys)
            self._feed(index, mac, keys, 0, entry.node.size)
        return mac.digest()[:aes.MAC_SIZE]

    def _feed(self, index: int, mac: hmac.HMAC, keys: aes.Keys, lo: int, hi: int) -> None:
        """Given an entry's code, have it take in the ciphertext of the data in [lo, hi), unsent."""
        plain = self.reads.data(self.plan.entries[index].node, lo, hi)
        for _ in encrypted(plain, keys, self.pool, offset=lo, mac=mac):
            pass
