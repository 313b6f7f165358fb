"""ZIP with deflated entries, written front to back (its size is not known before).

Independent small entries are read ahead and compressed in parallel on the
compression pool, a bounded window at a time; large entries are compressed
block-parallel by the engine. Entries whose CRC and compressed size are known
before their header (small ones, stored ones) carry them in the local header;
only large deflated entries need a data descriptor (APPNOTE 4.3.9).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import compress
from .crc import crc32
from .errors import SourceChanged
from .formats import zip
from .node import Entry
from .selection import Options
from .source import Direct, Reader, Span

if TYPE_CHECKING:
    from .encode import Encoder


@dataclass
class Small:
    """A small file read ahead: its bytes, CRC and (when deflated) compressed bytes."""

    data: bytes
    crc: int
    deflated: bytes | None


def prepare_small(data: bytes, level: int, auto: bool) -> Small:
    """Given a small file's bytes, return it CRC'd and deflated unless auto finds it does not shrink.

    Runs on a compression worker; depends only on the bytes and options.
    """
    if auto and not compress.shrinks(data):
        return Small(data, crc32(data), None)
    return Small(data, crc32(data), compress.deflate_bytes(data, level=level))


class StreamedZip:
    """Writes one ZIP whose entries are deflated where the plan says so."""

    def __init__(self, encoder: Encoder, entries: tuple[Entry, ...], options: Options) -> None:
        self.enc, self.entries, self.options = encoder, entries, options
        self.auto = options.compression == "auto"
        self.window = 2 * encoder.pool.workers + 2
        self.reader: Reader = Direct(encoder.root)

    def __iter__(self) -> Iterator[bytes]:
        records: list[bytes] = []
        pos = 0
        # Small files are read whole: an object store fetches them a window ahead.
        self.reader = self.enc.root.prefetch(self._whole_reads())
        try:
            for entry, small in self._read_ahead():
                for chunk, record in self._entry(entry, small, pos):
                    if record is not None:
                        records.append(record)
                    pos += len(chunk)
                    yield chunk
        finally:
            self.reader.close()
        cd = b"".join(records)
        yield cd
        yield zip.end_records(len(records), pos, len(cd))

    def _read_ahead(self) -> Iterator[tuple[Entry, Future[Small] | None]]:
        """Yield entries in order, small deflatable ones already read and submitted for compression."""
        pending: deque[tuple[Entry, Future[Small] | None]] = deque()
        try:
            for entry in self.entries:
                pending.append((entry, self._submit(entry)))
                if len(pending) > self.window:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()

    def _whole_reads(self) -> Iterator[Span]:
        """Yield the files read whole in one go (by _submit and _stored), in entry order."""
        for entry in self.entries:
            size = entry.node.size
            if size and (size <= compress.DEFAULT_BLOCK if entry.deflate else size <= self.enc.hold):
                yield entry.node, 0, size

    def _submit(self, entry: Entry) -> Future[Small] | None:
        if not entry.deflate or not 0 < entry.node.size <= compress.DEFAULT_BLOCK:
            return None
        data = b"".join(self.reader.read(entry.node, 0, entry.node.size, entry.node.size))
        return self.enc.pool.submit(prepare_small, data, self.options.level, self.auto)

    def _entry(self, entry: Entry, small: Future[Small] | None,
               offset: int) -> Iterator[tuple[bytes, bytes | None]]:
        """Yield (chunk, None) for an entry's bytes, the last chunk paired with its central record."""
        node = entry.node
        if small is not None:
            done = small.result()
            self.enc.crcs.cache.put(node, done.crc)
            body = done.deflated if done.deflated is not None else done.data
            compressed = len(body) if done.deflated is not None else None
            head = zip.local_header(entry, done.crc, deflated=compressed is not None,
                                    compressed=compressed)
            rec = zip.info(entry, done.crc, deflated=compressed is not None,
                           compressed=compressed, offset=offset).central_record()
            yield head, None
            yield body, rec
        elif entry.deflate and node.size:
            yield from self._large(entry, offset)
        else:
            yield from self._stored(entry, offset)

    def _stored(self, entry: Entry, offset: int) -> Iterator[tuple[bytes, bytes | None]]:
        node = entry.node
        if entry.is_dir or node.size == 0:
            chunks: Iterator[bytes] = iter(())
            crc = 0
        elif node.size <= self.enc.hold:  # read once, for both its CRC and its bytes
            data = b"".join(self.enc.data(node, learn=True, reader=self.reader))
            chunks, crc = iter([data]), crc32(data)
        else:
            crc = self.enc.crcs.of(node)
            chunks = self.enc.data(node, expected=crc)
        yield zip.local_header(entry, crc), None
        yield from ((chunk, None) for chunk in chunks)
        yield b"", zip.info(entry, crc, offset=offset).central_record()

    def _large(self, entry: Entry, offset: int) -> Iterator[tuple[bytes, bytes | None]]:
        """A large deflatable entry: tried on its first block under auto, then deflated block-parallel."""
        node = entry.node
        first = b"".join(self.enc.root.read(node, 0, compress.DEFAULT_BLOCK, compress.DEFAULT_BLOCK))
        if self.auto and not compress.shrinks(first):
            yield from self._stored(entry, offset)
            return
        crc = compress.Crc()
        size = 0
        yield zip.local_header(entry, 0, deflated=True), None
        chunks = itertools.chain([first], self.enc.data_from(node, len(first)))
        for out in compress.deflate_raw(_through(chunks, crc), level=self.options.level,
                                        pool=self.enc.pool):
            size += len(out)
            yield out, None
        if crc.size != node.size:  # the reader checks too; this guards the descriptor's sizes
            raise SourceChanged(node.shown, "size changed while being sent")
        self.enc.crcs.cache.put(node, crc.value)
        descriptor = zip.data_descriptor(crc.value, size, crc.size, zip.needs_zip64_descriptor(entry))
        yield descriptor, zip.info(entry, crc.value, deflated=True, compressed=size,
                                   offset=offset, descriptor=True).central_record()


def _through(chunks: Iterator[bytes], crc: compress.Crc) -> Iterator[bytes]:
    for chunk in chunks:
        crc.update(chunk)
        yield chunk
