"""The plug-in for a local folder, the root of any kind no other source claims by its scheme."""

from __future__ import annotations

from pathlib import Path

from zipserve.errors import ConfigError
from zipserve.sources.local.source import Local
from zipserve.sources.plugin import Options, Plugin


def check(root: str, options: Options) -> None:
    """Given a folder's path, raise ConfigError unless it is a folder."""
    if not Path(root).is_dir():
        raise ConfigError(f"root {root} is not a folder")


def open_source(root: str, options: Options) -> Local:
    """Given a checked folder's path, return it as a Source."""
    return Local(Path(root))


PLUGIN = Plugin(check=check, open=open_source)
