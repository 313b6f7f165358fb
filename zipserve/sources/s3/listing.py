"""Stat, walk and list an S3 prefix from ListObjectsV2, so planning reads no object.

Sizes, times and ETags come from the listing, so HEAD, Content-Length, ETag
and Range are answered without a GET. A walk lists the whole prefix once (no
delimiter) and builds the tree from it: a folder's time is its marker's, else
its newest object's. A key that is not a safe relative path, or a file key
that is also a prefix (``x`` beside ``x/y``), is skipped and logged, never
served under another name; the shared CRC area is never listed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.errors import NotFound, TooLarge, ZipserveError
from zipserve.sources.s3.errors import refusal
from zipserve.sources.s3.keys import Keys, file_node, folder_node, safe_lead, safe_parts, seconds_ns

log = logging.getLogger("zipserve.s3")

SKIP_LOGS = 10  # skipped keys logged one by one per listing; the rest are counted


@dataclass
class Found:
    """Everything under one folder's prefix, as nodes (built by Listings.walk)."""

    files: dict[RelPath, Node] = field(default_factory=dict)
    folders: set[RelPath] = field(default_factory=set)
    markers: dict[RelPath, int] = field(default_factory=dict)  # folder -> its marker's time
    newest: dict[RelPath, int] = field(default_factory=dict)  # folder -> newest object below
    skipped: int = 0


class Listings:
    """The tree of one served prefix, as the store lists it."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def _list(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.keys.bucket, **kwargs)

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node: a folder if any key lies below it, else the object."""
        shown, keys = "/".join(rel), self.keys
        if not rel:
            return folder_node((), 0)
        if keys.hidden(keys.dir_key(rel)) or keys.hidden(keys.key(rel)):
            raise NotFound(f"no such file or folder: {shown}", path=shown)
        try:
            below = self.client.list_objects_v2(Bucket=keys.bucket, Prefix=keys.dir_key(rel),
                                                MaxKeys=1)
            if below.get("KeyCount", 0):
                first = below.get("Contents", [{}])[0]
                marker = first.get("Key") == keys.dir_key(rel)  # its own "folder/" object
                return folder_node(rel, seconds_ns(first["LastModified"]) if marker else 0)
            head = self.client.head_object(Bucket=keys.bucket, Key=keys.key(rel))
        except Exception as exc:
            raise refusal(exc, shown) from None
        return file_node(rel, head["ContentLength"], head["LastModified"], head["ETag"])

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it; raise TooLarge."""
        if top.kind == "file":
            budget.take(top)
            yield top
            return
        found = self._list_all(top, budget)
        nodes = [folder_node(f, found.markers.get(f, found.newest.get(f, 0)))
                 for f in found.folders]
        for rel, node in found.files.items():
            if rel in found.folders:
                self._skip(found, rel, "a folder of the same name exists")
            else:
                nodes.append(node)
        if found.skipped > SKIP_LOGS:
            log.warning("skipped %d keys under %s in all", found.skipped, top.shown or ".")
        mtime = found.markers.get(top.path, found.newest.get(top.path, top.mtime_ns))
        yield folder_node(top.path, mtime)
        for node in sorted(nodes, key=lambda n: n.path):
            budget.take(node)
            yield node

    def _list_all(self, top: Node, budget: Budget) -> Found:
        """Given a folder, return every safe key below it as Found; raise TooLarge early."""
        prefix = self.keys.dir_key(top.path)
        found = Found()
        # A dropped file (x beside x/y) always leaves a file below its folder, so at
        # least half the listed files are kept: past twice the budget it cannot fit.
        room = 2 * (budget.max_files - budget.files)
        listed = 0
        try:
            for page in self._list(Prefix=prefix):
                for obj in page.get("Contents", ()):
                    listed += self._add(found, top, obj, obj["Key"][len(prefix):], budget)
                    if listed > room:
                        raise TooLarge(f"selection has more than {budget.max_files} files"
                                       " (--max-files)")
        except ZipserveError:
            raise
        except Exception as exc:
            raise refusal(exc, top.shown) from None
        return found

    def _add(self, found: Found, top: Node, obj: dict[str, Any], rel: str, budget: Budget) -> int:
        """Given one listed object, add it to what was found; return 1 if it is a file, else 0."""
        if self.keys.hidden(obj["Key"]):
            return 0
        when = seconds_ns(obj["LastModified"])
        if rel == "":  # the folder's own marker
            found.markers[top.path] = when
            return 0
        marker = rel.endswith("/")
        parts = safe_parts(rel[:-1] if marker else rel)
        if parts is None:
            self._skip(found, top.path + (rel,), "not a safe relative path")
            # Its safe leading folders are still prefixes, as a one-level listing shows them.
            _add_folders(found, top, top.path + safe_lead(rel), when, budget)
            return 0
        path = top.path + parts
        _add_folders(found, top, path if marker else path[:-1], when, budget)
        if marker:
            found.markers[path] = when
            return 0
        found.files[path] = file_node(path, obj["Size"], obj["LastModified"], obj["ETag"])
        return 1

    def _skip(self, found: Found, path: tuple[str, ...], why: str) -> None:
        found.skipped += 1
        if found.skipped <= SKIP_LOGS:
            log.warning("skipped key %r: %s", self.keys.prefix + "/".join(path), why)

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its safe entries one level down (folders' times unknown: 0)."""
        prefix = self.keys.dir_key(folder.path)
        files: dict[str, Node] = {}
        folders: dict[str, Node] = {}
        found = Found()
        try:
            for page in self._list(Prefix=prefix, Delimiter="/"):
                for obj in page.get("Contents", ()):
                    name = obj["Key"][len(prefix):]
                    if name and not self.keys.hidden(obj["Key"]):
                        self._child(found, files, folder.path, name, obj)
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(prefix):-1]
                    if self.keys.hidden(common["Prefix"]):
                        continue
                    if safe_parts(name) is None:
                        self._skip(found, folder.path + (name + "/",), "not a safe relative path")
                    else:
                        folders[name] = folder_node(folder.path + (name,), 0)
        except Exception as exc:
            raise refusal(exc, folder.shown) from None
        for name in files.keys() & folders.keys():
            self._skip(found, folder.path + (name,), "a folder of the same name exists")
            del files[name]
        return [*folders.values(), *files.values()]

    def _child(self, found: Found, files: dict[str, Node], here: RelPath, name: str,
               obj: dict[str, Any]) -> None:
        if safe_parts(name) is None:
            self._skip(found, here + (name,), "not a safe relative path")
        else:
            files[name] = file_node(here + (name,), obj["Size"], obj["LastModified"], obj["ETag"])


def _add_folders(found: Found, top: Node, folder: RelPath, when: int, budget: Budget) -> None:
    """Given a folder below top holding an object of time `when`, add it and its parents."""
    budget.check_depth(len(folder) - len(top.path), "/".join(folder))  # as the disk walk counts
    for i in range(len(top.path), len(folder) + 1):
        found.newest[folder[:i]] = max(found.newest.get(folder[:i], 0), when)
        if i > len(top.path):
            found.folders.add(folder[:i])
