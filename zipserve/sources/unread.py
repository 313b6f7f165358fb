"""Spans of files sent unread: a body names a span of a planned file, and the socket takes it from there.

A FilePart stands in a body for bytes Python never reads: the HTTP layer's
Wire hands it a Sink (the client's socket), and the source that made it sends
the span with sendfile, from the page cache. Only a source whose files are
local can make one (the SendsUnread capability, see base.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zipserve.core.node import Node


class Sink(Protocol):
    """Where a FilePart goes: a socket that takes bytes straight from a file (see http.wire.Wire)."""

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Given an open file and a span, send a first part of it; return its length (0 at EOF)."""
        ...


class Sender(Protocol):
    """The source a FilePart came from: it opens the planned file, checks it, and sends the span."""

    def send(self, node: Node, start: int, stop: int, sink: Sink, *, exact: bool = False) -> None:
        """Given a planned file, a byte span and a Sink, send the span; raise SourceChanged."""
        ...


@dataclass(frozen=True)
class FilePart:
    """A span of a planned file that a body names instead of reading: a Wire sends it from the page cache."""

    source: Sender
    node: Node
    start: int
    stop: int
    exact: bool  # the bytes must be those of the cached CRC (see local's send)

    def __len__(self) -> int:
        return self.stop - self.start

    def send(self, sink: Sink) -> None:
        """Given a Sink, send the span to it; raise SourceChanged."""
        self.source.send(self.node, self.start, self.stop, sink, exact=self.exact)
