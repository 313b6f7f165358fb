"""One frozen Settings object, checked once at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zipserve import records, sources
from zipserve.core.urlpolicy import UrlPolicy
from zipserve.errors import ConfigError

MiB = 1 << 20
GiB = 1 << 30


def default_crc_cache() -> Path:
    """Return the CRC cache's default path in the user's cache folder (XDG)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zipserve" / "crc.sqlite3"


def default_records() -> Path:
    """Return the record store's default path in the user's cache folder (XDG), beside the CRC cache."""
    return default_crc_cache().with_name("records.sqlite3")


@dataclass(frozen=True)
class Settings:
    """Everything the server and `pack` need to know; built by the CLI or by tests."""

    root: Path | str  # a folder, or the URL of a registered source (see zipserve.sources)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    token: str | None = None
    secret: str | None = None
    # Limits, all checked on the plan before the first body byte.
    max_files: int = 200_000
    max_bytes: int = 1 << 40
    max_streams: int = 64
    max_paths: int = 1000
    max_body: int = 1 * MiB
    max_depth: int = 256
    max_path_bytes: int = 4096
    # Streaming.
    chunk_size: int = 1 * MiB
    send_timeout: float = 60.0
    header_timeout: float = 10.0  # seconds a request line and headers may take (slowloris)
    direct_send: bool = True  # bodies written from worker threads where safe (see wire.py)
    grace: int = 30  # seconds SIGTERM waits for streams in flight
    # Compression.
    level: int = 1
    compress_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # CRC cache: None turns it off.
    crc_cache: Path | None = field(default_factory=default_crc_cache)
    max_expires: int = 7 * 24 * 3600
    # URL prefixes a manifest's entries may be fetched from (--allow-url); none: no URL is.
    allow_url: tuple[str, ...] = ()
    # Records behind links (zipserve.records): a SQLite file, s3://bucket/prefix, or None
    # (this process's memory only).
    records: Path | str | None = field(default_factory=default_records)
    # The source's own settings by option name: each source declares its options, their
    # defaults and checks (see zipserve.sources); a name no source declares is refused.
    source_options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        root = sources.root_of(self.root)
        object.__setattr__(self, "root", root.resolve() if isinstance(root, Path) else root)
        object.__setattr__(self, "source_options", dict(self.source_options))
        object.__setattr__(self, "allow_url", tuple(self.allow_url))
        object.__setattr__(self, "records", records.spec_of(self.records))
        check(self)


def check(settings: Settings) -> None:
    """Given settings, raise ConfigError naming the first one that cannot work."""
    sources.check(settings.root, settings.source_options)
    UrlPolicy.from_prefixes(settings.allow_url)
    records.check(settings.records, settings.source_options, settings.root)
    if not 1 <= settings.level <= 9:
        raise ConfigError("level must be 1..9")
    if settings.chunk_size < 4096:
        raise ConfigError("chunk size must be at least 4096 bytes")
    for name in ("max_files", "max_bytes", "max_streams", "max_paths", "max_body",
                 "max_depth", "compress_workers", "workers", "max_path_bytes"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
    if settings.send_timeout <= 0 or settings.header_timeout <= 0 or settings.grace < 0:
        raise ConfigError("send-timeout and header-timeout must be above 0, grace at least 0")
