"""Plans -> bytes: the body of every archive and file, as a sync iterator of chunks.

Runs in worker threads, never on the event loop. Sized archives are produced
piece by piece from their Layout, so any byte range starts where it starts;
compressed formats are streamed from the start through the compression engine.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, overload

from zipserve.core.formats.layout import Piece
from zipserve.core.formats.zippacked import described
from zipserve.core.node import Entry, Node
from zipserve.core.plan import ArchivePlan
from zipserve.encode import compress
from zipserve.encode.digests import BodySums
from zipserve.encode.packing import Packs
from zipserve.encode.reads import Reads
from zipserve.encode.sealed import SizedSeal
from zipserve.encode.streamzip import StreamedZip
from zipserve.errors import SourceChanged
from zipserve.sources.base import FetchesWhole, Reader, SendsUnread, Source, Span
from zipserve.sources.crc import Crcs, crc32
from zipserve.sources.hashes import HashStore, Sha256s
from zipserve.sources.unread import FilePart


class Encoder:
    """Turns plans into chunks, reading through the root and the CRC cache."""

    def __init__(self, root: Source, crcs: Crcs, pool: compress.Pool, chunk: int,
                 packs: Packs | None = None, sha256s: Sha256s | None = None) -> None:
        self.root, self.crcs, self.pool, self.chunk, self.packs = root, crcs, pool, chunk, packs
        # SHA-256 of files for a laid-out SHA256SUMS (the CRC cache's companion store).
        self.sha256s = sha256s if sha256s is not None else Sha256s(HashStore(None))
        self.unread = root if isinstance(root, SendsUnread) else None  # spans a Wire may sendfile
        fetches = root if isinstance(root, FetchesWhole) else None
        # Files up to this size are read once, for both their CRC and their bytes.
        self.hold = max(chunk, fetches.whole_read if fetches is not None else 0)
        # The smallest file whose CRC a download keeps in the cache. Where every read is
        # a request to a store, every CRC known saves one. Elsewhere (a local disk) a
        # smaller one is never sent unread (see BIG): any body that sends its data
        # reads it, and a stored ZIP's central records repeat the CRCs of the headers
        # the same body sent; only a resume that starts past a header reads it again.
        self.learn_from = 1 if fetches is not None else BIG
        self.reads = Reads(root, crcs, pool, chunk, self.hold, packs)

    def batches(self, plan: ArchivePlan, start: int = 0, stop: int | None = None, *,
                parts: bool = False) -> Iterator[list[bytes | FilePart]]:
        """Given a plan (and for sized ones a byte span), yield its bytes in batches of about `chunk`.

        With `parts`, big spans of local files in sized archives come as
        FileParts, to be sent from the page cache by a Wire instead of read here.
        """
        if parts and plan.sized:
            assert plan.total is not None
            end = plan.total if stop is None else stop
            # A Wire writes a batch's buffers with one writev: joining them would copy for nothing.
            return batched(self.sized(plan, start, end, parts=True), self.chunk, join=False)
        return batched(self._pieces(plan, start, stop), self.chunk)

    def body(self, plan: ArchivePlan, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Given a plan (and for sized ones a byte span), yield its bytes in chunks of about `chunk`."""
        return joined(batched(self._pieces(plan, start, stop), self.chunk))

    def _pieces(self, plan: ArchivePlan, start: int, stop: int | None) -> Iterator[bytes]:
        if plan.sized:
            assert plan.total is not None
            return self.sized(plan, start, plan.total if stop is None else stop)
        return STREAMED[plan.format.encoder](self, plan)

    def tar_raw(self, plan: ArchivePlan) -> Iterator[bytes]:
        """Given a plan with a layout, yield its bytes before any whole-stream compression, in big chunks."""
        assert plan.layout is not None
        for batch in batched(self.sized(plan, 0, plan.layout.total), self.chunk):
            yield from batch

    @overload
    def sized(self, plan: ArchivePlan, start: int, stop: int) -> Iterator[bytes]: ...

    @overload
    def sized(self, plan: ArchivePlan, start: int, stop: int, *,
              parts: bool) -> Iterator[bytes | FilePart]: ...

    def sized(self, plan: ArchivePlan, start: int, stop: int, *,
              parts: bool = False) -> Iterator[bytes | FilePart]:
        """Given a plan with a layout, yield the bytes in [start, stop) (with `parts`, some as FileParts).

        A FilePart is sent unread: its CRC, when the ZIP needs one, is the
        cached one, which is keyed by the file's ctime (see SendsUnread.file_part).
        An encrypted entry's salt, data and code come from _sealed; a body
        that reaches a SHA256SUMS ("sums") piece hashes the files it sends whole
        (read, never sent unread) and takes the others' digests from the store.
        """
        assert plan.layout is not None and plan.format.meta is not None
        meta, entries = plan.format.meta, plan.entries
        body = self._body(plan, start, stop)
        try:
            for piece, lo, hi in plan.layout.overlapping(start, stop):
                if piece.kind == "pad":
                    yield bytes(hi - lo)
                elif body.seal is not None and piece.kind in SEALED and entries[piece.index].sealed:
                    yield from self._sealed(plan, piece, lo, hi, stop, body)
                elif piece.kind == "packed":
                    yield from self._packed(plan, piece.index, lo, hi, body)
                elif piece.kind == "sums":
                    assert body.sums is not None
                    yield body.sums.content()[lo:hi]
                elif piece.kind != "data":
                    crc = self._meta_crc(plan, piece, stop, body) if body.sent is not None else 0
                    yield meta(entries, plan.layout, piece, crc)[lo:hi]
                elif body.sums is not None:
                    yield from body.sums.hashed(piece.index, lo, hi, self._plain(plan, piece, lo, hi, body))
                elif piece.index in body.held:
                    yield body.held.pop(piece.index)[lo:hi]
                else:
                    yield from self._data(plan, piece.index, lo, hi, body.known(piece.index), parts,
                                          body.reader)
        finally:
            body.reader.close()

    def _body(self, plan: ArchivePlan, start: int, stop: int) -> _Body:
        """Given a sized plan and a byte span, return what its body keeps as it goes."""
        assert plan.layout is not None
        entries = plan.entries
        body = _Body(self.root.prefetch(data_spans(plan, start, stop)))
        if plan.format.crc_in_header:
            body.sent, body.warm = array("q", [-1]) * len(entries), True
        if plan.sealing is not None:
            body.seal = SizedSeal(plan, self.pool, self.reads, stop, local=self.learn_from > 1)
        sums_at = plan.layout.marks.get("sums_entry")
        if sums_at is not None and stop > sums_at:  # its header, data or (ZIP) record is in this body
            body.sums = BodySums(plan, self.sha256s, self.reads)
        return body

    def _plain(self, plan: ArchivePlan, piece: Piece, lo: int, hi: int, body: _Body) -> Iterator[bytes]:
        """Given a data piece of a sized body, yield its bytes, read here (never a FilePart)."""
        if piece.index in body.held:
            return iter((body.held.pop(piece.index)[lo:hi],))
        chunks = self._data(plan, piece.index, lo, hi, body.known(piece.index), False, body.reader)
        return (chunk for chunk in chunks if isinstance(chunk, bytes))

    def _sealed(self, plan: ArchivePlan, piece: Piece, lo: int, hi: int, stop: int,
                body: _Body) -> Iterator[bytes]:
        """Given a salt, data or code piece of an encrypted entry in a sized body, yield its bytes.

        The entry's CRC-32 keys its salt (see sealed.py): the one its header
        went out with in this body, else the cache's. Its data is checked
        against it when read whole.
        """
        assert body.seal is not None and body.sent is not None
        i = piece.index
        entry = plan.entries[i]
        crc = body.known(i)
        if crc is None:
            crc = body.sent[i] = self.crcs.of(entry.node)
        if piece.kind == "salt":
            return iter((body.seal.prefix(i, entry, crc)[lo:hi],))
        if piece.kind == "mac":
            return iter((body.seal.code(i, entry, crc)[lo:hi],))
        if i in body.held:
            plain: Iterable[bytes] = (body.held.pop(i)[lo:hi],)
        else:
            plain = self.reads.data(entry.node, lo, hi, expected=crc if hi - lo == entry.node.size
                                    else None, reader=body.reader)
        coded = hi == piece.size and stop > piece.start + piece.size  # the code is in this body too
        return body.seal.data(i, entry, crc, lo, plain, coded=coded)

    def _meta_crc(self, plan: ArchivePlan, piece: Piece, stop: int, body: _Body) -> int:
        """Given a metadata piece of a sized body whose headers carry CRCs, return the CRC it carries.

        A local header's is cached or read (see _head_crc) and kept for its
        entry's data and central record; a central record repeats its header's,
        else asks the CRC cache.
        """
        assert body.sent is not None
        if body.sums is not None and piece.index == body.sums.index:
            return body.sums.crc()  # the laid-out SHA256SUMS: its CRC-32 once every digest is known
        if piece.kind == "head":
            entry = plan.entries[piece.index]
            if entry.deflate and described(entry):
                return 0  # its CRC is in the data descriptor (APPNOTE 4.4.4, bit 3)
            # The file's data is in this body, so it may be read now, once, for both.
            whole = stop >= piece.start + piece.size + entry.node.size
            crc = body.sent[piece.index] = self._head_crc(entry, whole, body.held, piece.index,
                                                          body.reader)
            return crc
        if piece.kind not in ("cd", "desc") or plan.entries[piece.index].sealed:
            return 0  # AE-2: an encrypted entry's records carry no CRC
        if body.warm:
            # A resume may start past every header: fetch the CRCs another server
            # learned all at once, not one round trip per record.
            laid = plan.layout is not None and "sums_entry" in plan.layout.marks  # no file of a source
            self.crcs.cache.warm(e.node for e in plan.entries[:-1 if laid else None] if not e.is_dir)
            body.warm = False
        entry = plan.entries[piece.index]
        crc = body.sent[piece.index]
        if crc < 0:
            crc = self.crcs.of(entry.node) if not entry.is_dir else 0
        return crc

    def _packed(self, plan: ArchivePlan, index: int, lo: int, hi: int, body: _Body) -> Iterator[bytes]:
        """Given a deflated entry's data piece in a sized body, yield its bytes, deflated again (Packs.data).

        Checked against the CRC its header went out with, else the cache's.
        """
        assert self.packs is not None  # only a plan looked up in them has packed pieces
        entry = plan.entries[index]
        crc = body.known(index)
        crc = self.crcs.of(entry.node) if crc is None else crc
        return self.packs.data(self.reads, entry, plan.options, crc, (lo, hi), body.held.pop(index, None),
                               body.reader)

    def _data(self, plan: ArchivePlan, index: int, lo: int, hi: int, known: int | None,
              parts: bool, reader: Reader) -> Iterator[bytes | FilePart]:
        """Given a data piece of a sized body (and its header's CRC), yield its bytes or a FilePart.

        Where headers carry CRCs (ZIP), a whole entry read here is checked against
        its header's; one sent as a FilePart trusts the cache's ctime key (see
        SendsUnread.file_part). Elsewhere (tar) a whole read teaches the cache its CRC.
        """
        node = plan.entries[index].node
        whole = lo == 0 and hi == node.size
        checked = plan.format.crc_in_header
        # A tar's whole file is read until a read has taught its CRC (for later ZIPs).
        if (parts and self.unread is not None and hi - lo >= BIG and not node.origin
                and (checked or not whole or self.crcs.cache.get(node) is not None)):
            return iter((self.unread.file_part(node, lo, hi, exact=checked and whole),))
        expected = (known if known is not None else self.crcs.of(node)) if checked and whole else None
        learn = not checked and node.size >= self.learn_from
        if whole and hi <= self.chunk:  # most files of a tree of small ones: no generator to run
            data = b"".join(reader.read(node, 0, hi, self.chunk))
            if expected is not None or learn:
                self.reads.settle(node, crc32(data), expected, learn)
            return iter((data,))
        return self.reads.data(node, lo, hi, expected=expected, learn=learn, reader=reader)

    def _head_crc(self, entry: Entry, whole: bool, held: dict[int, bytes], index: int,
                  reader: Reader) -> int:
        """Given a stored ZIP entry whose header is due, return its CRC: cached, else by reading the file.

        A small file whose data is in this body is read once and held for it.
        """
        size = entry.node.size
        if entry.is_dir or not size:
            return 0
        if whole and size < self.learn_from:
            # Read now for both, whatever the cache holds; its CRC is kept by this body only.
            data = held[index] = b"".join(reader.read(entry.node, 0, size, self.chunk))
            return crc32(data)
        cached = self.crcs.cache.get(entry.node)
        if cached is not None:
            return cached
        if whole and entry.node.size <= self.hold:
            # A CRC the caller claimed (a manifest's crc32) must be the bytes': else the cut comes here.
            claimed = entry.node.claimed_crc if entry.node.claimed_crc >= 0 else None
            data = held[index] = b"".join(self.reads.data(entry.node, expected=claimed, learn=True,
                                                          reader=reader))
            return crc32(data)
        return self.crcs.of(entry.node)

    def file_body(self, node: Node, lo: int, hi: int, *,
                  parts: bool = False) -> Iterator[bytes | list[bytes | FilePart]]:
        """Given a file and a span (/files/), yield its bytes, or with `parts` one FilePart when it can."""
        if parts and self.unread is not None and hi - lo >= BIG and not node.origin:
            return iter([[self.unread.file_part(node, lo, hi)]])
        return self.reads.data(node, lo, hi, learn=True)


@dataclass(slots=True)
class _Body:
    """What one sized body keeps as it goes: its reader and what its headers were sent with."""

    reader: Reader
    held: dict[int, bytes] = field(default_factory=dict)  # small files read once for CRC and data
    # Where headers carry CRCs: the CRC each header of this body had (-1: not sent),
    # for the entry's data (checked against it) and its central record.
    sent: array[int] | None = None
    warm: bool = False  # the CRC cache is still to be warmed before the first central record
    seal: SizedSeal | None = None  # under encryption: the encrypted entries' keys and codes
    sums: BodySums | None = None  # when it holds a SHA256SUMS piece: the digests taken on the way

    def known(self, index: int) -> int | None:
        """Given an entry's index, return the CRC its header was sent with in this body, or None."""
        crc = self.sent[index] if self.sent is not None else -1
        return crc if crc >= 0 else None


def _streamed_zip(enc: Encoder, plan: ArchivePlan) -> Iterator[bytes]:
    return iter(StreamedZip(enc.reads, plan.entries, plan.options, plan.sealing))


def _gzip_file(enc: Encoder, plan: ArchivePlan) -> Iterator[bytes]:
    entry = plan.entries[0]
    return compress.gzip_stream(enc.reads.data(entry.node, learn=True), level=plan.options.level,
                                pool=enc.pool, mtime=entry.mtime_ns // 1_000_000_000,
                                filename=entry.name)


def _gzip_tar(enc: Encoder, plan: ArchivePlan) -> Iterator[bytes]:
    return compress.gzip_stream(enc.tar_raw(plan), level=plan.options.level, pool=enc.pool)


def _zstd_tar(enc: Encoder, plan: ArchivePlan) -> Iterator[bytes]:
    # On the stream's own thread (threads=0): zstd's workers cost each stream two native
    # threads and their jobs' buffers, 16 MiB of RSS a stream at level 1 against 3.3
    # (bench/bench_memory.py), with no faster stream on two shared cores and a better
    # ratio from level 3 up (one-window jobs restart their matches).
    return compress.zstd_stream(enc.tar_raw(plan), level=compress.zstd_level(plan.options.level),
                                threads=0)


# A format's encoder kind (see core.formats) -> the body of its plans that are not sized.
STREAMED: dict[str, Callable[[Encoder, ArchivePlan], Iterator[bytes]]] = {
    "zip": _streamed_zip,
    "tar": Encoder.tar_raw,
    "gzip-tar": _gzip_tar,
    "zstd-tar": _zstd_tar,
    "gzip-file": _gzip_file,
}


def data_spans(plan: ArchivePlan, start: int, stop: int) -> Iterator[Span]:
    """Given a sized plan and a byte span, yield the file spans its body reads, in order."""
    assert plan.layout is not None
    for piece, lo, hi in plan.layout.overlapping(start, stop):
        if piece.kind == "data":
            yield plan.entries[piece.index].node, lo, hi


BIG = 64 * 1024  # pieces at least this big are sent as they are; smaller ones are joined
SEALED = ("salt", "data", "mac")  # the pieces of an encrypted entry that _sealed makes


Part = TypeVar("Part", bytes, bytes | FilePart)


def batched(chunks: Iterable[Part], size: int, *, join: bool = True) -> Iterator[list[Part]]:
    """Given chunks of any sizes, yield lists of them holding at least `size` bytes (the last may hold less).

    Each batch costs one thread hop in the HTTP layer, which sends its parts
    back to back. Small pieces (headers, small files) are joined unless
    `join` is off; big reads and FileParts are passed on as they are, never
    copied again.
    """
    batch: list[Part] = []
    small: list[bytes] = []
    held = 0
    try:
        for chunk in chunks:
            if not chunk:
                continue
            if join and isinstance(chunk, bytes) and len(chunk) < BIG:
                small.append(chunk)
            else:
                _flush(small, batch)
                batch.append(chunk)
            held += len(chunk)
            if held >= size:
                _flush(small, batch)
                yield batch
                batch, held = [], 0
    except SourceChanged:
        # Send what is held (often the failing entry's header) before the cut:
        # a tar cut right at a file boundary would pass `tar -t` with exit 0.
        _flush(small, batch)
        if batch:
            yield batch
        raise
    _flush(small, batch)
    if batch:
        yield batch


def _flush(small: list[bytes], batch: list[Part]) -> None:
    if small:
        batch.append(b"".join(small))
        small.clear()


def joined(batches: Iterable[list[bytes]]) -> Iterator[bytes]:
    """Given batches, yield each as one bytes object (for writers that want plain chunks)."""
    for batch in batches:
        yield batch[0] if len(batch) == 1 else b"".join(batch)
