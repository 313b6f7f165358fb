"""The SHA256SUMS entry of a laid-out archive (tar, stored ZIP): every file's SHA-256, on the way or stored.

A body that reaches the "sums" piece hashes each file it sends whole, and
keeps the digest in the hash store (sources/hashes.py, keyed like the CRC
cache) for later bodies. A file this body did not send whole (a range or
resume that starts past it) has its digest from the store, else from one read
of the file: so a sized tar with SHA256SUMS keeps its Content-Length and
Range, and its bytes are the same on every request while the files are.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from zipserve.core.formats.sums import sums
from zipserve.core.plan import ArchivePlan
from zipserve.encode.reads import Reads
from zipserve.sources.hashes import Sha256s, StreamHash

EMPTY = hashlib.sha256(b"").digest()


@dataclass
class BodySums:
    """One body's digests of the files it sent whole, and the SHA256SUMS they make."""

    plan: ArchivePlan
    sha256s: Sha256s
    reads: Reads
    digests: dict[int, bytes] = field(default_factory=dict)  # entry index -> digest
    made: bytes | None = None

    def hashed(self, index: int, lo: int, hi: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Given a data piece's span and chunks, yield them; when the file went by whole, keep its digest."""
        node = self.plan.entries[index].node
        if lo or hi != node.size:
            yield from chunks
            return
        digest = StreamHash(self.sha256s.store, self.reads.crcs.cache.key_of(node))
        for chunk in chunks:
            digest.update(chunk)
            yield chunk
        self.digests[index] = digest.finish()

    def content(self) -> bytes:
        """Return the SHA256SUMS of every file but itself (the plan's last entry); raise what reads raise."""
        if self.made is None:
            files = [i for i, e in enumerate(self.plan.entries[:-1]) if not e.is_dir]
            self._recall([i for i in files if i not in self.digests])
            self.made = sums((self.plan.entries[i].name, self._digest(i)) for i in files)
        return self.made

    @property
    def index(self) -> int:
        """Return the index of the SHA256SUMS entry: the plan's last."""
        return len(self.plan.entries) - 1

    def crc(self) -> int:
        """Return the CRC-32 of the SHA256SUMS (for a ZIP's header and central record)."""
        return zlib.crc32(self.content())

    def _recall(self, indices: list[int]) -> None:
        """Given files this body did not hash, take what the store holds for them in one batch."""
        key_of = self.reads.crcs.cache.key_of
        keys = {i: key_of(self.plan.entries[i].node) for i in indices if self.plan.entries[i].node.size}
        found = self.sha256s.store.get_many(keys.values())
        self.digests.update((i, found[k]) for i, k in keys.items() if k in found)

    def _digest(self, index: int) -> bytes:
        """Given a file's index, return its digest: this body's, else the store's, else by reading it."""
        known = self.digests.get(index)
        if known is not None:
            return known
        node = self.plan.entries[index].node
        if not node.size:
            return EMPTY
        return self.sha256s.of(self.reads.crcs.cache.key_of(node),
                               lambda: self.reads.data(node), node.shown)
