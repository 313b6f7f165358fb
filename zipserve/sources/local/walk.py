"""Stat and walk a served folder: Nodes for what lies inside the root, refusals for what does not.

A walk is iterative (no recursion limit) and lists each folder through an fd
checked inside the root (Root.open_folder); it follows symlinks only while
they stay in the root, skips loops (by device and inode), special files and
names that are not UTF-8 (each logged), and refuses a selection as soon as a
cap of its Budget is passed or a path grows longer than the kernel opens.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mode
from collections.abc import Iterator

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.errors import Forbidden, NotFound, TooLarge
from zipserve.sources.local.confine import Root, bounded

log = logging.getLogger("zipserve.fs")

Ancestors = frozenset[tuple[int, int]]  # (device, inode) of the folders above: loops are skipped


def stat(root: Root, rel: RelPath) -> Node:
    """Given a served folder and a relative path, return its Node; raise NotFound or Forbidden."""
    full = root.full(rel)
    shown = "/".join(rel)
    try:
        real = os.path.realpath(full)
    except OSError as exc:  # a symlink swapped for a folder while resolved: readlink EINVAL
        raise root.path_error(exc, shown) from None
    if not root.inside(real):
        raise Forbidden("path leads outside the served folder", path=shown)
    try:
        st = os.stat(full)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no such file or folder: {shown}", path=shown) from None
    except PermissionError:
        raise Forbidden(f"not readable: {shown}", path=shown) from None
    except OSError as exc:
        raise root.path_error(exc, shown) from None
    node = node_of(rel, st)
    if node is None:
        raise NotFound(f"not a regular file or folder: {shown}", path=shown)
    return node


def walk(root: Root, top: Node, budget: Budget) -> Iterator[Node]:
    """Given a served folder and a Node, yield it and, for a folder, every file and folder below it.

    Raises TooLarge as soon as a cap is passed.
    """
    budget.take(top)
    yield top
    if top.kind == "file":
        return
    stack: list[tuple[Node, Ancestors]] = [(top, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        budget.check_depth(len(folder.path) - len(top.path), folder.shown)
        here = ancestors | {(folder.dev, folder.ino)}
        found = listed(root, folder, here)
        budget.take_all(found)
        yield from found
        stack.extend((child, here) for child in reversed(found) if child.kind == "dir")


def children(root: Root, folder: Node) -> list[Node]:
    """Given a served folder and a folder Node in it, return its safe children, as a walk would see them."""
    return listed(root, folder, frozenset({(folder.dev, folder.ino)}))


def listed(root: Root, folder: Node, ancestors: Ancestors) -> list[Node]:
    """Given a folder and the folders above it, return its safe children (sorted by name)."""
    try:
        fd = root.open_folder(folder)
    except OSError as exc:
        log.warning("skipped unreadable folder %s: %s", folder.shown, exc.strerror)
        return []
    base = root.full(folder.path)
    # Bytes a child's name may take: the kernel opens no longer path (with its NUL).
    room = root.path_max - len(os.fsencode(base)) - 1
    found = []
    try:
        for entry in sorted(os.scandir(fd), key=_name):
            child = _child(root, folder, entry, ancestors, base, room)
            if child is not None:
                found.append(child)
    finally:
        os.close(fd)
    return found


def _child(root: Root, folder: Node, entry: os.DirEntry[str], ancestors: Ancestors,
           base: str, room: int) -> Node | None:
    """Given a scandir entry of the folder at `base`, return its Node, or None (logged) to leave it out.

    Runs once per file of a walk: the common case (an ASCII name, no symlink)
    costs one stat and no other call.
    """
    name = entry.name
    if name.isascii():
        size = len(name)
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            log.warning("skipped a name that is not UTF-8 in %s: %r", folder.shown or ".",
                        name.encode("utf-8", "surrogateescape"))
            return None
    path = folder.path + (name,)
    if size >= room:
        # Left out, the archive would look whole without it: refuse the selection.
        raise TooLarge(f"a path in the selection is longer than the system's limit of"
                       f" {root.path_max} bytes", path=bounded("/".join(path)))
    try:
        if entry.is_symlink() and not root.inside(os.path.realpath(base + "/" + name)):
            log.warning("skipped symlink leading outside the root: %s", "/".join(path))
            return None
        st = entry.stat()  # relative to the folder's fd; follows symlinks that stay inside
    except OSError as exc:
        log.warning("skipped %s: %s", "/".join(path), exc.strerror or exc)
        return None
    node = node_of(path, st)
    if node is None:
        log.info("skipped special file %s", "/".join(path))
    elif node.kind == "dir" and (node.dev, node.ino) in ancestors:
        log.warning("skipped symlink loop at %s", "/".join(path))
        return None
    return node


def node_of(rel: RelPath, st: os.stat_result) -> Node | None:
    """Given a path and its stat, return a Node, or None for special files."""
    mode = st.st_mode
    if stat_mode.S_ISREG(mode):
        kind, size = "file", st.st_size
    elif stat_mode.S_ISDIR(mode):
        kind, size = "dir", 0
    else:
        return None
    return Node(rel, kind, size, st.st_mtime_ns, stat_mode.S_IMODE(mode), st.st_dev, st.st_ino,
                st.st_ctime_ns)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name
