"""One frozen Settings object, checked once at startup."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from zipserve.errors import ConfigError

MiB = 1 << 20
GiB = 1 << 30


def default_crc_cache() -> Path:
    """Return the CRC cache's default path in the user's cache folder (XDG)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zipserve" / "crc.sqlite3"


@dataclass(frozen=True)
class Settings:
    """Everything the server and `pack` need to know; built by the CLI or by tests."""

    root: Path | str  # a folder, or "s3://bucket/prefix"
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
    direct_send: bool = True  # bodies written from worker threads where safe (see wire.py)
    grace: int = 30  # seconds SIGTERM waits for streams in flight
    # Compression.
    level: int = 1
    compress_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # CRC cache: None turns it off.
    crc_cache: Path | None = field(default_factory=default_crc_cache)
    max_expires: int = 7 * 24 * 3600
    # S3 roots: endpoint (None: AWS or $AWS_ENDPOINT_URL), the shared CRC prefix in the
    # served bucket (None: off), ranged-GET size and how many are in flight per stream.
    s3_endpoint: str | None = None
    s3_crc_prefix: str | None = None
    s3_part_size: int = 8 * MiB
    s3_read_ahead: int = 4

    def __post_init__(self) -> None:
        root = self.root if is_s3(self.root) else Path(self.root).resolve()
        object.__setattr__(self, "root", root)
        check(self)


def check(settings: Settings) -> None:
    """Given settings, raise ConfigError naming the first one that cannot work."""
    if is_s3(settings.root):
        check_s3(settings)
    elif not Path(settings.root).is_dir():
        raise ConfigError(f"root {settings.root} is not a folder")
    if not 1 <= settings.level <= 9:
        raise ConfigError("level must be 1..9")
    if settings.chunk_size < 4096:
        raise ConfigError("chunk size must be at least 4096 bytes")
    for name in ("max_files", "max_bytes", "max_streams", "max_paths", "max_body",
                 "max_depth", "compress_workers", "workers", "max_path_bytes"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
    if settings.send_timeout <= 0 or settings.grace < 0:
        raise ConfigError("send-timeout must be above 0 and grace at least 0")


def is_s3(root: object) -> bool:
    """Given a root setting, return whether it names an S3 prefix (s3://bucket/prefix)."""
    return str(root).startswith("s3://")


def root_of(text: str) -> Path | str:
    """Given a root as typed, return it as Settings takes it: s3:// URLs stay text."""
    return text if is_s3(text) else Path(text)


def check_s3(settings: Settings) -> None:
    """Given settings with an s3:// root, raise ConfigError naming what cannot work."""
    from zipserve.sources.s3.source import parse_root

    parse_root(str(settings.root))
    if importlib.util.find_spec("boto3") is None:
        raise ConfigError("an s3:// root needs boto3: pip install 'zipserve[s3]'")
    if settings.s3_part_size < 64 * 1024 or settings.s3_read_ahead < 1:
        raise ConfigError("s3-part-size must be at least 65536 and s3-read-ahead at least 1")
    prefix = settings.s3_crc_prefix
    if prefix is not None and (not prefix.endswith("/") or prefix.startswith("/")):
        raise ConfigError("s3-crc-prefix is a key prefix in the served bucket, like .zipserve-crc/")
