"""Where served files come from: the source a root names (a local folder or an S3 prefix)."""

from __future__ import annotations

from pathlib import Path

from zipserve.settings import Settings, is_s3
from zipserve.sources.base import Source
from zipserve.sources.local.source import Local


def open_source(settings: Settings) -> Source:
    """Given settings, return the source their root names (a local folder or an S3 prefix)."""
    if is_s3(settings.root):
        from zipserve.sources.s3.source import S3Source

        return S3Source.from_settings(settings)
    return Local(Path(settings.root))
