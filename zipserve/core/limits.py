"""The caps on one selection (files, bytes, folder depth), counted while a source walks it.

Pure: a source's walk hands its nodes to a Budget, which raises TooLarge as
soon as a cap is passed, so a huge tree is refused before it is listed whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from zipserve.core.node import Node
from zipserve.errors import TooLarge


@dataclass
class Budget:
    """Caps on one selection, counted while walking so a huge tree is refused early."""

    max_files: int
    max_bytes: int
    max_depth: int
    files: int = 0
    bytes: int = 0

    def take(self, node: Node) -> None:
        """Given a walked node, count it; raise TooLarge once a cap is passed."""
        self.take_all([node])

    def take_all(self, nodes: list[Node]) -> None:
        """Given walked nodes (a folder's children), count them; raise TooLarge once a cap is passed."""
        sizes = [n.size for n in nodes if n.kind == "file"]
        self.files += len(sizes)
        self.bytes += sum(sizes)
        if self.files > self.max_files:
            raise TooLarge(f"selection has more than {self.max_files} files (--max-files)")
        if self.bytes > self.max_bytes:
            raise TooLarge(f"selection is larger than {self.max_bytes} bytes (--max-bytes)")

    def check_depth(self, depth: int, shown: str) -> None:
        """Given a folder's depth below the walk's top and its path, raise TooLarge past the cap."""
        if depth >= self.max_depth:
            raise TooLarge(f"folders nested deeper than {self.max_depth} levels (--max-depth)",
                           path=shown)
