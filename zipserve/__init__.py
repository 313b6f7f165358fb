"""zipserve: stream any selection of files as an archive, chunk by chunk from disk.

For applications: ``zipserve.asgi``, ``zipserve.ArchiveResponse`` and
``zipserve.manifest_url`` (see zipserve/embed.py), imported on first use so
the command line starts without loading the web stack twice.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ArchiveResponse", "asgi", "manifest_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from zipserve import embed
        return getattr(embed, name)
    raise AttributeError(f"module 'zipserve' has no attribute {name!r}")
