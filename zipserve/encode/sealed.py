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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from zipserve.core.node import Entry
from zipserve.core.plan import Sealing
from zipserve.encode import aes
from zipserve.encode.compress import DEFAULT_BLOCK, Pool, window
from zipserve.encode.ordered import Item, Stream, Task, in_order

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


@dataclass
class SizedSeal:
    """The encrypted entries of one sized body: each one's salt and keys, and its code as it goes.

    `read(index, lo, hi)` yields an entry's plain data in [lo, hi), for the
    data a body must encrypt without sending (see the module docstring).
    """

    sealing: Sealing
    pool: Pool
    read: Callable[[int, int, int], Iterable[bytes]]
    keys: dict[int, tuple[bytes, aes.Keys]] = field(default_factory=dict)
    codes: dict[int, hmac.HMAC] = field(default_factory=dict)  # codes taking in a data piece

    def salt_keys(self, index: int, entry: Entry, crc: int) -> tuple[bytes, aes.Keys]:
        """Given an entry (its index) and its CRC-32, return its derived salt and keys (PBKDF2 once)."""
        known = self.keys.get(index)
        if known is None:
            s = self.sealing
            salt = aes.derive_salt(s.secret, s.password, identity(entry, crc))
            known = self.keys[index] = salt, aes.derive_keys(s.password, salt)
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
        for _ in encrypted(self.read(index, lo, hi), keys, self.pool, offset=lo, mac=mac):
            pass
