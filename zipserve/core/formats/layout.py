"""Where every byte of a sized archive comes from (pure).

A Layout is mod_zip's "pieces": a sorted list of spans, each either metadata
the format renders (a header, a central directory record, padding, the end
records) or a file's data. It makes Content-Length, ETag and Range possible:
any byte range maps to the pieces it overlaps.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)  # not frozen: a frozen init costs 3x, and a plan makes 3 per file
class Piece:
    """A span of the archive: ``kind`` is "data" for file bytes, anything else is metadata."""

    start: int
    size: int
    kind: str
    index: int = -1  # the entry this piece belongs to; -1 for archive-wide pieces


@dataclass
class Layout:
    """The pieces of a sized archive, back to back from offset 0."""

    pieces: list[Piece] = field(default_factory=list)
    total: int = 0
    offsets: list[int] = field(default_factory=list)  # where each entry starts
    marks: dict[str, int] = field(default_factory=dict)  # format-specific positions

    def add(self, kind: str, size: int, index: int = -1) -> None:
        """Given a piece's kind and size, append it at the current end (empty pieces are dropped)."""
        if size:
            self.pieces.append(Piece(self.total, size, kind, index))
            self.total += size

    def overlapping(self, start: int, stop: int) -> Iterator[tuple[Piece, int, int]]:
        """Given a half-open byte span, yield (piece, lo, hi) with lo/hi relative to the piece."""
        i = max(bisect.bisect_right(self.pieces, start, key=_start) - 1, 0)
        for piece in self.pieces[i:]:
            if piece.start >= stop:
                break
            if start <= piece.start and piece.start + piece.size <= stop:
                yield piece, 0, piece.size  # the common case: a body holds the whole piece
                continue
            lo = max(start - piece.start, 0)
            hi = min(stop - piece.start, piece.size)
            if lo < hi:
                yield piece, lo, hi


def _start(piece: Piece) -> int:
    return piece.start
