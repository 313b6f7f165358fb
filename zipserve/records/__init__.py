"""Server-side records behind links: manifests and protected selections.

A link whose manifest is too long for a URL, or whose selection holds a
password that must never travel in one, names a record by a 64-hex-digit key
(a content address); every server that may serve the link must reach that
record. Where records live is one setting, --records:

- a file path: SQLite in WAL mode, shared by the worker processes of one
  machine (default ~/.cache/zipserve/records.sqlite3; sqlite.py);
- ``s3://bucket/prefix``: objects in the store the s3 options name
  (--s3-endpoint and the AWS environment, as for an s3:// root), shared by a
  fleet (s3.py; boto3 is imported only then).

Records may hold passwords: they must never lie where the served root would
serve them, so a store inside the root is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from zipserve import sources
from zipserve.errors import ConfigError
from zipserve.records.base import MAX_RECORD, Records, check_key
from zipserve.sources.plugin import Options

__all__ = ["MAX_RECORD", "Records", "check", "check_key", "open_records", "probe", "spec_of"]

S3 = "s3://"


def spec_of(spec: str | Path | None) -> Path | str | None:
    """Given --records as typed, return it as Settings keeps it: a URL as text, a path as a Path."""
    if spec is None or (isinstance(spec, str) and "://" in spec):
        return spec
    return Path(spec).expanduser()


def check(spec: Path | str | None, options: Options, root: Path | str) -> None:
    """Given a records spec (from spec_of), source options and root, raise ConfigError if it cannot work."""
    if spec is None:
        return
    if isinstance(spec, str):
        if not spec.startswith(S3):
            raise ConfigError(f"--records takes a file path or s3://bucket/prefix, not {spec}")
        try:
            sources.check(spec, options)  # the checks an s3:// root gets: bucket, boto3, options
        except ConfigError as exc:
            raise ConfigError(f"--records: {exc.message}") from None
        _outside_s3(spec, root)
        return
    if spec.is_dir():
        raise ConfigError(f"--records {spec} is a folder: name the SQLite file to keep them in")
    if isinstance(root, Path) and spec.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"--records {spec} lies inside the served folder {root}, which would"
                          " serve it to anyone: choose a file outside it")


def _outside_s3(spec: str, root: Path | str) -> None:
    """Given an s3:// records spec and the root, raise ConfigError when either prefix holds the other."""
    from zipserve.sources.s3.keys import parse_root

    if not isinstance(root, str) or not root.startswith(S3):
        return
    bucket, prefix = parse_root(spec)
    served, under = parse_root(root)
    if bucket == served and (prefix.startswith(under) or under.startswith(prefix)):
        raise ConfigError(f"--records {spec} overlaps the served root {root}, which would serve"
                          " the records to anyone: choose a prefix outside it")


def open_records(spec: str | Path | None, source_options: Options) -> Records:
    """Given a checked records spec (None: this process's memory) and the source options, return the store.

    Raises ConfigError when a SQLite file cannot be opened or created.
    """
    spec = spec_of(spec)
    if isinstance(spec, str):
        from zipserve.records.s3 import open_s3

        return open_s3(spec, sources.values(sources.kind_of(spec), source_options))
    from zipserve.records.sqlite import SqliteRecords

    try:
        return SqliteRecords(spec)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot keep records in {spec} ({exc})") from None


def probe(spec: str | Path | None, source_options: Options) -> None:
    """Given a checked records spec, open it once and ask the store whether it answers.

    Raises ConfigError or BadGateway when it cannot work, Unavailable when its store does not answer now.
    """
    store = open_records(spec, source_options)
    try:
        ask = getattr(store, "probe", None)
        if ask is not None:
            ask()
    finally:
        store.close()
