"""Reads of planned local files: exactly the bytes the plan saw, or SourceChanged; spans sent by sendfile.

A file that vanished, shrank, grew or changed since planning raises instead of
yielding bytes that would not match the archive's headers, and the check is
made before the last byte leaves, so a change aborts the transfer. Every file
is opened through the root's confinement checks (confine.Root.open).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from zipserve.core.node import Node
from zipserve.errors import SourceChanged
from zipserve.sources.local.confine import Folders, Root
from zipserve.sources.unread import Sink


def read(root: Root, node: Node, start: int, stop: int, chunk: int,
         folders: Folders | None = None) -> Iterator[bytes]:
    """Given a planned file and a byte span, return an iterator of its bytes; raise SourceChanged.

    A span of one chunk is read at once (most files of a tree of small ones:
    no generator to run); a longer one as it is iterated. With `folders`, the
    file is opened in its checked folder (see confine.Folders).
    """
    if stop - start <= chunk:
        return iter((_span(root, node, start, stop, folders),))
    return _chunks(root, node, start, stop, chunk, folders)


def _span(root: Root, node: Node, start: int, stop: int, folders: Folders | None) -> bytes:
    """Given a planned file and a span of at most one chunk, return its bytes; raise SourceChanged.

    A file opened in its checked folder is read first and checked once,
    after the read (the bytes of a file in the root reveal nothing until
    sent): one stat a file fewer, for trees of small files.
    """
    fd, inside = root.open_fd(node, folders)
    try:
        if not inside:
            st = os.fstat(fd)
            root.check(fd, st, node, inside)
            if not _same(st, node):
                raise SourceChanged(node.shown, "changed since the request was planned")
        data = _pread(fd, node, stop - start, start)
        st = os.fstat(fd)
        if inside:
            root.check(fd, st, node, inside)
        if len(data) < stop - start:
            raise SourceChanged(node.shown, "shrank while being sent")
        if not _same(st, node):
            raise SourceChanged(node.shown, "changed since the request was planned")
        return data
    finally:
        os.close(fd)


def _chunks(root: Root, node: Node, start: int, stop: int, chunk: int,
            folders: Folders | None) -> Iterator[bytes]:
    """Given a planned file and a span, yield its bytes a chunk at a time; raise SourceChanged."""
    fd, st = root.open(node, folders)
    try:
        if not _same(st, node):
            raise SourceChanged(node.shown, "changed since the request was planned")
        pos = start
        while pos < stop:
            data = _pread(fd, node, min(chunk, stop - pos), pos)
            if not data:
                raise SourceChanged(node.shown, "shrank while being sent")
            pos += len(data)
            # Check before the last byte leaves, so a change aborts the transfer.
            if pos >= stop and not _same(os.fstat(fd), node):
                raise SourceChanged(node.shown, "changed while being sent")
            yield data
    finally:
        os.close(fd)


def send(root: Root, node: Node, start: int, stop: int, sink: Sink, *, exact: bool = False) -> None:
    """Given a planned file, a byte span and a Sink, send the span with sendfile; raise SourceChanged.

    The bytes never pass through Python. The last byte is held back until
    the file is seen unchanged since planning: its size and mtime, and with
    `exact` its ctime too, which the kernel moves on every write and
    utimes, so the bytes are those a CRC cached under that ctime describes.
    """
    fd, st = root.open(node)
    unchanged = _unchanged if exact else _same
    try:
        if not unchanged(st, node):
            raise SourceChanged(node.shown, "changed since the request was planned")
        pos, last = start, stop - 1
        while pos < stop:
            if pos == last and not unchanged(os.fstat(fd), node):
                raise SourceChanged(node.shown, "changed while being sent")
            sent = sink.sendfile(fd, pos, (last if pos < last else stop) - pos)
            if not sent:
                raise SourceChanged(node.shown, "shrank while being sent")
            pos += sent
    finally:
        os.close(fd)


def _pread(fd: int, node: Node, size: int, offset: int) -> bytes:
    """Given an open planned file, read up to size bytes at offset (fewer only at its end)."""
    try:
        data = os.pread(fd, size, offset)
        while 0 < len(data) < size:  # a regular file reads short only at its end: make sure
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data
    except OSError as exc:
        raise SourceChanged(node.shown, f"read failed ({exc.strerror})") from None


def _same(st: os.stat_result, node: Node) -> bool:
    """Given a fresh stat and the planned Node, return whether the file is unchanged."""
    return st.st_size == node.size and st.st_mtime_ns == node.mtime_ns


def _unchanged(st: os.stat_result, node: Node) -> bool:
    """Given a fresh stat and the planned Node, return whether the content cannot have changed."""
    return _same(st, node) and st.st_ctime_ns == node.ctime_ns
