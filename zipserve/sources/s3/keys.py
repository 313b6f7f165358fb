"""How keys name paths: an s3:// root's bucket and prefix, the key of a path, and the keys never served.

Folders are key prefixes; a 0-byte "folder/" marker object is an (empty)
folder. Keys are not a tree: a key that is not a safe relative path
(``a/../b``, ``a//b``, ``/a``, a backslash: anything `selection.parse_path`
would not give back unchanged) is never served under another name. Objects
have no Unix mode or sub-second time: a node gets what a fresh checkout would
have, and whole seconds, as a HEAD gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from zipserve.core.node import Node, RelPath
from zipserve.core.selection import parse_path
from zipserve.errors import ZipserveError

FILE_MODE, DIR_MODE = 0o644, 0o755  # objects have no Unix mode: what a fresh checkout would have


def parse_root(url: str) -> tuple[str, str]:
    """Given ``s3://bucket/prefix``, return (bucket, key prefix ending in "/" or empty); raise ValueError."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket or "\\" in bucket or not all(c.isalnum() or c in "-._" for c in bucket):
        raise ValueError(f"{url} does not name a bucket: use s3://bucket/prefix")
    prefix = prefix.strip("/")
    if prefix and safe_parts(prefix) is None:
        raise ValueError(f"{url}: the prefix is not a plain relative path")
    return bucket, prefix + "/" if prefix else ""


def safe_parts(rel: str) -> RelPath | None:
    """Given a key relative to a folder, return its parts, or None when it is not a safe relative path.

    Safe means a request for it names exactly this key: `parse_path` accepts it
    and gives every part back (``a//b`` would come back as ``a/b``).
    """
    parts = tuple(rel.split("/"))
    try:
        return parts if parse_path(rel) == parts else None
    except ZipserveError:
        return None


def safe_lead(rel: str) -> RelPath:
    """Given an unsafe key relative to a folder, return its leading folders that are safe names."""
    lead: list[str] = []
    for part in rel.split("/")[:-1]:
        if safe_parts(part) is None:
            break
        lead.append(part)
    return tuple(lead)


def seconds_ns(when: datetime) -> int:
    """Given an object's LastModified, return it as nanoseconds, whole seconds (as HEAD gives it)."""
    return int(when.timestamp()) * 1_000_000_000


def folder_node(rel: RelPath, mtime_ns: int) -> Node:
    """Given a folder's path and time (0: unknown), return its Node."""
    return Node(path=rel, kind="dir", size=0, mtime_ns=mtime_ns, mode=DIR_MODE,
                dev=0, ino=0, ctime_ns=0)


def file_node(rel: RelPath, size: int, when: datetime, etag: str) -> Node:
    """Given an object's path, size, LastModified and ETag, return its Node (the ETag its version)."""
    return Node(path=rel, kind="file", size=size, mtime_ns=seconds_ns(when), mode=FILE_MODE,
                dev=0, ino=0, ctime_ns=0, version=etag)


@dataclass(frozen=True)
class Keys:
    """The keys of one served prefix: the key each path names, and those in the CRC area (never served)."""

    bucket: str
    prefix: str  # ends in "/", or empty for the whole bucket
    crc_prefix: str | None = None

    def key(self, rel: RelPath) -> str:
        """Given a relative path, return the key of the object it names."""
        return self.prefix + "/".join(rel)

    def key_of(self, node: Node) -> str:
        """Given a node, return the key of its object."""
        return self.key(node.path)

    def dir_key(self, rel: RelPath) -> str:
        """Given a folder's relative path, return the prefix of the keys below it (its marker's key)."""
        return self.prefix + "".join(p + "/" for p in rel)

    def hidden(self, key: str) -> bool:
        """Given a key, return whether it lies in the shared CRC area (never served)."""
        return self.crc_prefix is not None and key.startswith(self.crc_prefix)
