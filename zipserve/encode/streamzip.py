"""ZIP with deflated entries, written front to back (its size is not known before).

Every entry becomes items of one ordered window on the compression pool (see ordered.py):
small entries are read whole and compressed as one task each, large entries block by block,
and the window runs across entries, so the workers stay busy from one file to the next.
Entries whose CRC and compressed size are known before their header (small ones, stored
ones) carry them in the local header; only large deflated entries need a data descriptor
(APPNOTE 4.3.9).  Offsets and central records are taken as each entry's turn comes.
Under checksums=sha256 every file's data is hashed as it is sent, and a stored
SHA256SUMS entry follows the last one. Under encryption every file is WinZip
AES-256 (AE-2) with a random salt: a small one encrypted in the same task that
deflates it, a larger one block by block on the pool (sealed.py), its deflate
output fed to the encryption as it comes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from zipserve.core.formats import zip
from zipserve.core.formats.sums import SUMS_NAME, sums
from zipserve.core.node import PACKED_STORED, Entry, Node
from zipserve.core.plan import Sealing
from zipserve.core.selection import Options
from zipserve.encode import aes, compress
from zipserve.encode.ordered import Item, Later, Task, in_order
from zipserve.encode.reads import Reads
from zipserve.encode.sealed import encrypt_items
from zipserve.errors import SourceChanged
from zipserve.sources.base import Reader, Span
from zipserve.sources.crc import crc32

OVERHEAD = 4096  # the weight of an entry in the window beyond its bytes: many tiny ones count


@dataclass
class Small:
    """A small file read ahead: its bytes, CRC, (when deflated) compressed bytes, (when sealed) encrypted."""

    data: bytes
    crc: int
    deflated: bytes | None
    sealed: bytes | None = None  # salt, verifier, ciphertext of what is written, code

    @property
    def written(self) -> bytes:
        """Return the entry's data as written in the archive."""
        if self.sealed is not None:
            return self.sealed
        return self.deflated if self.deflated is not None else self.data


def prepare_small(data: bytes, level: int, auto: bool, password: bytes | None = None) -> Small:
    """Given a small file's bytes, return it CRC'd and deflated unless auto finds it does not shrink.

    Runs on a compression worker; depends only on the bytes and options (and,
    given a password, encrypts what is written with a random salt).  Under auto
    the test is whether fast deflate saves a few percent: ISA-L levels deflate
    once and look at what they saved, slower levels are spared by a fast trial first.
    """
    small = _deflated_small(data, level, auto)
    if password is not None:
        small.sealed = aes.encrypt(password, aes.random_salt(), small.written)
    return small


def _deflated_small(data: bytes, level: int, auto: bool) -> Small:
    fast = compress.engine_for(level).name == "isal"
    if auto and not fast and not compress.shrinks(data):
        return Small(data, crc32(data), None)
    deflated = compress.deflate_bytes(data, level=level)
    if auto and fast and not compress.saves(deflated, data):
        return Small(data, crc32(data), None)
    return Small(data, crc32(data), deflated)


@dataclass
class Place:
    """Where an entry's local header and data start in the archive, known when its turn comes."""

    offset: int = 0
    data: int = 0


class StreamedZip:
    """Writes one ZIP whose entries are deflated where the plan says so."""

    def __init__(self, reads: Reads, entries: tuple[Entry, ...], options: Options,
                 sealing: Sealing | None = None) -> None:
        self.reads, self.entries, self.options = reads, entries, options
        self.password = sealing.password if sealing is not None else None
        self.auto = options.compression == "auto"
        self.records: list[bytes] = []
        self.pos = 0  # bytes sent so far
        # Under checksums=sha256: every file's name -> SHA-256 of its data, taken as it is sent.
        self.digests: dict[str, bytes] | None = {} if options.checksums == "sha256" else None

    def __iter__(self) -> Iterator[bytes]:
        # Small files are read whole: an object store fetches them a window ahead.
        reader = self.reads.prefetch(self._whole_reads())
        try:
            for chunk in in_order(self._items(reader), limit=compress.window(self.reads.pool)):
                self.pos += len(chunk)
                yield chunk
        finally:
            reader.close()
            self.reads.packed_done()
        if self.digests is not None:
            yield from self._sums()
        cd = b"".join(self.records)
        yield cd
        yield zip.end_records(len(self.records), self.pos, len(cd))

    def _items(self, reader: Reader) -> Iterator[Item]:
        """Given the body's reader, yield every entry's items in order, submitting their work on the way."""
        for entry in self.entries:
            size = entry.node.size
            if entry.deflate and 0 < size <= compress.DEFAULT_BLOCK:
                yield self._small(entry, reader)
            elif entry.deflate and size:
                yield from self._large(entry, reader)
            else:
                yield from self._stored(entry, reader)

    def _whole_reads(self) -> Iterator[Span]:
        """Yield the files read whole in one go (by _small and _stored), in entry order."""
        for entry in self.entries:
            size = entry.node.size
            if size and (size <= compress.DEFAULT_BLOCK if entry.deflate else size <= self.reads.hold):
                yield entry.node, 0, size

    def _small(self, entry: Entry, reader: Reader) -> Task[Small]:
        """A small deflatable entry: read whole now, CRC'd and deflated (or not) as one task."""
        node = entry.node
        data = b"".join(reader.read(node, 0, node.size, node.size))

        def take(done: Small) -> tuple[bytes, bytes]:
            self.reads.learned(node, done.crc)
            body = done.written
            if self.digests is not None:
                self.digests[entry.name] = hashlib.sha256(done.data).digest()
            deflated = done.deflated is not None
            compressed = len(body) if deflated or entry.sealed else None
            self._learn(entry, len(body) if deflated else PACKED_STORED)
            self.records.append(zip.info(entry, done.crc, deflated=deflated, compressed=compressed,
                                         offset=self.pos).central_record())
            return zip.local_header(entry, done.crc, deflated=deflated, compressed=compressed), body

        password = self.password if entry.sealed else None
        future = self.reads.pool.submit(prepare_small, data, self.options.level, self.auto, password)
        return Task(future, take, len(data) + OVERHEAD)

    def _stored(self, entry: Entry, reader: Reader) -> Iterator[Item]:
        """A stored entry: its CRC known before its header (read with the data when small)."""
        node = entry.node
        if entry.is_dir or node.size == 0:
            chunks: Iterator[bytes] = iter(())
            crc = 0
        elif node.size <= self.reads.hold:  # read once, for both its CRC and its bytes
            data = b"".join(self.reads.data(node, learn=True, reader=reader))
            chunks, crc = iter([data]), crc32(data)
        else:
            crc = self.reads.crc_of(node)
            chunks = self.reads.data(node, expected=crc)
        if not entry.is_dir:
            chunks = self._hashed(entry, chunks)
        place = Place()
        yield self._header(place, zip.local_header(entry, crc))
        if entry.sealed:
            yield from self._sealed(entry, chunks, whole=node.size <= self.reads.hold)
        else:
            yield from chunks
        yield Later(lambda: self._record(zip.info(entry, crc, offset=place.offset)))

    def _large(self, entry: Entry, reader: Reader) -> Iterator[Item]:
        """A large deflatable entry: tried on its first block under auto, then deflated block by block."""
        node = entry.node
        chunks = self.reads.data_from(node, 0)
        first = next(chunks)
        if self.auto and not compress.worth_deflating(memoryview(first)[:compress.DEFAULT_BLOCK]):
            chunks.close()
            self._learn(entry, PACKED_STORED)
            yield from self._stored(entry, reader)
            return
        crc, place = compress.Crc(), Place()
        yield self._header(place, zip.local_header(entry, 0, deflated=True))
        data = self._hashed(entry, itertools.chain([first], chunks))
        blocks: list[tuple[int, int]] = []  # each block's output length and CRC: resumes inside the entry
        items = compress.deflate_items(data, level=self.options.level, pool=self.reads.pool, crc=crc,
                                       outputs=blocks)
        if entry.sealed:  # the deflate output, in order, is what is encrypted
            yield from self._sealed(entry, in_order(items, limit=compress.window(self.reads.pool)))
        else:
            yield from items

        def descriptor() -> tuple[bytes]:
            if crc.size != node.size:  # the reader checks too; this guards the descriptor's sizes
                raise SourceChanged(node.shown, "size changed while being sent")
            self.reads.learned(node, crc.value)
            size = self.pos - place.data
            self._learn(entry, size, blocks)
            self._record(zip.info(entry, crc.value, deflated=True, compressed=size,
                                  offset=place.offset, descriptor=True))
            shown = 0 if entry.sealed else crc.value  # AE-2: no CRC, in the descriptor too
            return (zip.data_descriptor(shown, size, crc.size, zip.needs_zip64_descriptor(entry)),)

        yield Later(descriptor)

    def _learn(self, entry: Entry, packed: int, blocks: list[tuple[int, int]] | None = None) -> None:
        """Given a deflated entry and its compressed length (PACKED_STORED: auto stored it), keep it.

        A large one's length block by block (``blocks``) too. An encrypted
        entry's bytes change with every salt: nothing to keep.
        """
        if not entry.sealed:
            self.reads.packed(entry.node, self.options, packed)
            if blocks:
                self.reads.packed_blocks(entry.node, self.options, blocks)

    def _sealed(self, entry: Entry, chunks: Iterable[bytes], *, whole: bool = False) -> Iterator[Item]:
        """Given what an entry writes as chunks, yield it encrypted: salt and verifier, tasks, code.

        `whole`: the chunks are one small read, encrypted as one task, key derivation included
        (PBKDF2 costs more than the cipher on a small file: it too runs on the pool).
        """
        assert self.password is not None
        salt = aes.random_salt()
        if whole:
            data = b"".join(chunks)  # hashed on the way under checksums
            future = self.reads.pool.submit(aes.encrypt, self.password, salt, data)
            yield Task(future, lambda out: (out,), len(data) + OVERHEAD)
            return
        keys = aes.derive_keys(self.password, salt)
        mac = aes.new_mac(keys)
        yield salt + keys.verifier
        yield from encrypt_items(chunks, keys, self.reads.pool, mac=mac)
        yield Later(lambda: (mac.digest()[:aes.MAC_SIZE],))

    def _hashed(self, entry: Entry, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Given an entry's data chunks, yield them; under checksums, keep their SHA-256 once all went by."""
        if self.digests is None:
            yield from chunks
            return
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
            yield chunk
        self.digests[entry.name] = h.digest()

    def _sums(self) -> Iterator[bytes]:
        """Yield the stored SHA256SUMS entry (header, then data) and keep its central record."""
        assert self.digests is not None
        data = sums(self.digests.items())
        newest = max((e.mtime_ns for e in self.entries), default=0)
        node = Node((SUMS_NAME,), "file", len(data), newest, 0o644, 0, 0, 0)
        entry, crc = Entry(SUMS_NAME, node, sealed=self.password is not None), crc32(data)
        if self.password is not None:  # the list of digests is as secret as the files
            data = aes.encrypt(self.password, aes.random_salt(), data)
        self.records.append(zip.info(entry, crc, offset=self.pos).central_record())
        header = zip.local_header(entry, crc)
        self.pos += len(header) + len(data)
        yield header
        yield data

    def _header(self, place: Place, header: bytes) -> Later:
        """Given an entry's place and local header, return the item that sends it and sets the place."""
        def send() -> tuple[bytes]:
            place.offset, place.data = self.pos, self.pos + len(header)
            return (header,)
        return Later(send)

    def _record(self, info: zip.EntryInfo) -> tuple[()]:
        """Given an entry's record, keep its central directory record; return no output."""
        self.records.append(info.central_record())
        return ()
