"""The only code that touches the disk: confinement to the root, stat, walk, reads.

Confinement is checked twice: by path before planning (the real path must lie
inside the root) and on the opened file (its device and inode must be the
planned ones, and /proc must show it, or the folder it was opened in without
following a symlink, inside the root), so a folder swapped for a symlink
between the two never leaks a byte from outside.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from zipserve.core.limits import Budget
from zipserve.core.node import Node, RelPath
from zipserve.errors import Forbidden, NotFound, SourceChanged, TooLarge
from zipserve.sources.unread import Sink

log = logging.getLogger("zipserve.fs")


class Root:
    """A served folder; every path given to it is relative and already parsed."""

    def __init__(self, root: Path) -> None:
        self.path = str(root)
        self.real = os.path.realpath(root)
        # Longest path the kernel takes (with its NUL): deeper names cannot be
        # opened by path, so a walk refuses them instead of leaving them out.
        self.path_max = _path_max(self.path)

    def _full(self, rel: RelPath) -> str:
        return self.path + "/" + "/".join(rel) if rel else self.path

    def inside(self, real: str) -> bool:
        """Given a real path, return whether it lies in the root (not a sibling sharing its prefix)."""
        return real == self.real or real.startswith(self.real + os.sep)

    def stat(self, rel: RelPath) -> Node:
        """Given a relative path, return its Node; raise NotFound or Forbidden."""
        full = self._full(rel)
        shown = "/".join(rel)
        try:
            real = os.path.realpath(full)
        except OSError as exc:  # a symlink swapped for a folder while resolved: readlink EINVAL
            raise self._path_error(exc, shown) from None
        if not self.inside(real):
            raise Forbidden("path leads outside the served folder", path=shown)
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no such file or folder: {shown}", path=shown) from None
        except PermissionError:
            raise Forbidden(f"not readable: {shown}", path=shown) from None
        except OSError as exc:
            raise self._path_error(exc, shown) from None
        node = _node(rel, st)
        if node is None:
            raise NotFound(f"not a regular file or folder: {shown}", path=shown)
        return node

    def _path_error(self, exc: OSError, shown: str) -> Exception:
        """Given an OSError from resolving a path, return the refusal it means (or exc itself)."""
        if exc.errno == errno.ENAMETOOLONG:
            return TooLarge(f"path is longer than the system's limit of {self.path_max} bytes",
                            path=_bounded(shown))
        if exc.errno == errno.ELOOP:
            return NotFound(f"symbolic link loop: {_bounded(shown)}", path=shown)
        if exc.errno == errno.EINVAL:
            return NotFound(f"changed while being looked up: {_bounded(shown)}", path=shown)
        return exc

    def walk(self, top: Node, budget: Budget) -> Iterator[Node]:
        """Given a Node, yield it and, for a folder, every file and folder below it.

        Iterative (no recursion limit); follows symlinks only while they stay in
        the root; skips loops (by device and inode), special files and names
        that are not UTF-8; raises TooLarge as soon as a cap is passed.
        """
        budget.take(top)
        yield top
        if top.kind == "file":
            return
        stack: list[tuple[Node, frozenset[tuple[int, int]]]] = [(top, frozenset())]
        while stack:
            folder, ancestors = stack.pop()
            budget.check_depth(len(folder.path) - len(top.path), folder.shown)
            here = ancestors | {(folder.dev, folder.ino)}
            children = self._children(folder, here)
            budget.take_all(children)
            yield from children
            stack.extend((child, here) for child in reversed(children) if child.kind == "dir")

    def children(self, folder: Node) -> list[Node]:
        """Given a folder Node, return its safe children, as a walk would see them."""
        return self._children(folder, frozenset({(folder.dev, folder.ino)}))

    def _children(self, folder: Node, ancestors: frozenset[tuple[int, int]]) -> list[Node]:
        """Given a folder, return its safe children (sorted by name)."""
        try:
            fd = self._open_folder(folder)
        except OSError as exc:
            log.warning("skipped unreadable folder %s: %s", folder.shown, exc.strerror)
            return []
        base = self._full(folder.path)
        # Bytes a child's name may take: the kernel opens no longer path (with its NUL).
        room = self.path_max - len(os.fsencode(base)) - 1
        children = []
        try:
            for entry in sorted(os.scandir(fd), key=_name):
                child = self._child(folder, entry, ancestors, base, room)
                if child is not None:
                    children.append(child)
        finally:
            os.close(fd)
        return children

    def _open_folder(self, folder: Node) -> int:
        """Given a walked folder, return an fd open on that very folder; raise NotFound or Forbidden.

        Listed through the fd, not the path: a folder swapped for a symlink
        after it was checked cannot show what lies outside the root.
        """
        fd = os.open(self._full(folder.path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not self._fd_inside(fd):
                raise Forbidden("path leads outside the served folder", path=folder.shown)
            if (st.st_dev, st.st_ino) != (folder.dev, folder.ino):
                raise NotFound(f"folder changed while being read: {folder.shown}",
                               path=folder.shown)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _child(self, folder: Node, entry: os.DirEntry[str], ancestors: frozenset[tuple[int, int]],
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
                           f" {self.path_max} bytes", path=_bounded("/".join(path)))
        try:
            if entry.is_symlink() and not self.inside(os.path.realpath(base + "/" + name)):
                log.warning("skipped symlink leading outside the root: %s", "/".join(path))
                return None
            st = entry.stat()  # relative to the folder's fd; follows symlinks that stay inside
        except OSError as exc:
            log.warning("skipped %s: %s", "/".join(path), exc.strerror or exc)
            return None
        node = _node(path, st)
        if node is None:
            log.info("skipped special file %s", "/".join(path))
        elif node.kind == "dir" and (node.dev, node.ino) in ancestors:
            log.warning("skipped symlink loop at %s", "/".join(path))
            return None
        return node

    def open(self, node: Node) -> int:
        """Given a planned file Node, return an fd open on that very file; raise SourceChanged."""
        return self._open(node)[0]

    def _open(self, node: Node, folders: Folders | None = None) -> tuple[int, os.stat_result]:
        """Given a planned file Node, return an fd open on that very file and its stat.

        Checked before anything is read: the same device and inode as planned,
        a regular file, and really inside the root (the planning stat of a
        requested path can itself lose a symlink-swap race, so the planned
        inode alone proves nothing: tests/test_hostile.py).
        """
        fd, inside = self._open_fd(node, folders)
        try:
            st = os.fstat(fd)
            self._check(fd, st, node, inside)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _open_fd(self, node: Node, folders: Folders | None) -> tuple[int, bool]:
        """Given a planned file Node, return an fd on what its path names now, and whether it is in the root.

        Opened with O_NONBLOCK so a FIFO swapped in cannot block. With
        `folders`, a file that is not a symlink is opened in its folder's fd,
        which was checked inside the root when opened (see Folders).
        """
        try:
            fd = folders.open(node) if folders is not None else -1
            if fd >= 0:
                return fd, True
            return os.open(self._full(node.path), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), False
        except FileNotFoundError:
            raise SourceChanged(node.shown, "vanished") from None
        except OSError as exc:
            raise SourceChanged(node.shown, f"unreadable ({exc.strerror})") from None

    def _check(self, fd: int, st: os.stat_result, node: Node, inside: bool) -> None:
        """Given an fd, its stat and the planned Node, raise SourceChanged unless that file is in the root."""
        if (st.st_dev, st.st_ino) != (node.dev, node.ino) or not stat.S_ISREG(st.st_mode):
            raise SourceChanged(node.shown, "replaced by another file")
        if not inside and not self._fd_inside(fd):
            raise SourceChanged(node.shown, "now leads outside the root")

    def _fd_inside(self, fd: int) -> bool:
        """Given an open fd, return whether the kernel says it lies in the root."""
        try:
            return self.inside(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return True  # no /proc: the device/inode check above still holds

    def read(self, node: Node, start: int, stop: int, chunk: int,
             folders: Folders | None = None) -> Iterator[bytes]:
        """Given a planned file and a byte span, return an iterator of its bytes; raise SourceChanged.

        A file that vanished, shrank, grew or changed since planning raises
        instead of yielding bytes that would not match the archive's headers.
        A span of one chunk is read at once (most files of a tree of small
        ones: no generator to run); a longer one as it is iterated.
        """
        if stop - start <= chunk:
            return iter((self._span(node, start, stop, folders),))
        return self._chunks(node, start, stop, chunk, folders)

    def _span(self, node: Node, start: int, stop: int, folders: Folders | None) -> bytes:
        """Given a planned file and a span of at most one chunk, return its bytes; raise SourceChanged.

        A file opened in its checked folder is read first and checked once,
        after the read (the bytes of a file in the root reveal nothing until
        sent): one stat a file fewer, for trees of small files.
        """
        fd, inside = self._open_fd(node, folders)
        try:
            if not inside:
                st = os.fstat(fd)
                self._check(fd, st, node, inside)
                if not _same(st, node):
                    raise SourceChanged(node.shown, "changed since the request was planned")
            data = _pread(fd, node, stop - start, start)
            st = os.fstat(fd)
            if inside:
                self._check(fd, st, node, inside)
            if len(data) < stop - start:
                raise SourceChanged(node.shown, "shrank while being sent")
            if not _same(st, node):
                raise SourceChanged(node.shown, "changed since the request was planned")
            return data
        finally:
            os.close(fd)

    def _chunks(self, node: Node, start: int, stop: int, chunk: int,
                folders: Folders | None) -> Iterator[bytes]:
        fd, st = self._open(node, folders)
        try:
            if not _same(st, node):
                raise SourceChanged(node.shown, "changed since the request was planned")
            pos = start
            while pos < stop:
                data = _pread(fd, node, min(chunk, stop - pos), pos)
                if not data:
                    raise SourceChanged(node.shown, "shrank while being sent")
                pos += len(data)
                # Check before the last byte leaves, so a change aborts the transfer.
                if pos >= stop and not _same(os.fstat(fd), node):
                    raise SourceChanged(node.shown, "changed while being sent")
                yield data
        finally:
            os.close(fd)

    def send(self, node: Node, start: int, stop: int, sink: Sink, *, exact: bool = False) -> None:
        """Given a planned file, a byte span and a Sink, send the span with sendfile; raise SourceChanged.

        The bytes never pass through Python. The last byte is held back until
        the file is seen unchanged since planning: its size and mtime, and with
        `exact` its ctime too, which the kernel moves on every write and
        utimes, so the bytes are those a CRC cached under that ctime describes.
        """
        fd, st = self._open(node)
        unchanged = _unchanged if exact else _same
        try:
            if not unchanged(st, node):
                raise SourceChanged(node.shown, "changed since the request was planned")
            pos, last = start, stop - 1
            while pos < stop:
                if pos == last and not unchanged(os.fstat(fd), node):
                    raise SourceChanged(node.shown, "changed while being sent")
                sent = sink.sendfile(fd, pos, (last if pos < last else stop) - pos)
                if not sent:
                    raise SourceChanged(node.shown, "shrank while being sent")
                pos += sent
        finally:
            os.close(fd)


class Folders:
    """The folder a body last read a file in, kept open so the next files of it open relative to it.

    A tree of small files costs a few syscalls a file; opening each by its
    full path and asking /proc where it landed is two of them. Here the
    folder is opened by path and checked inside the root once, and its files
    are opened in it with O_NOFOLLOW: an entry of a folder that is in the
    root, and not a symlink, is in the root. A symlinked file (allowed when
    its target stays inside) is left to the full check. One per body, used
    by one thread at a time; `close` it when the body ends.
    """

    def __init__(self, root: Root) -> None:
        self.root = root
        self._path: RelPath | None = None
        self._fd = -1

    def open(self, node: Node) -> int:
        """Given a planned file, return an fd open on the file its folder holds under its name, or -1.

        -1: the name is a symlink; open it by path and check it. Raises OSError.
        """
        folder = node.path[:-1]
        if folder != self._path:
            self.close()
            fd = os.open(self.root._full(folder), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if not self.root._fd_inside(fd):
                os.close(fd)
                raise SourceChanged(node.shown, "now leads outside the root")
            self._path, self._fd = folder, fd
        try:
            return os.open(node.path[-1], _OPEN_IN_FOLDER, dir_fd=self._fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return -1
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._path, self._fd = None, -1


_OPEN_IN_FOLDER = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW


def _path_max(path: str) -> int:
    """Given a folder, return the longest path its filesystem takes, in bytes with the NUL."""
    try:
        return os.pathconf(path, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096  # Linux's PATH_MAX


def _bounded(shown: str) -> str:
    """Given a shown path, return it cut to a size an error message can carry."""
    return shown if len(shown) <= 200 else "..." + shown[-200:]


def _pread(fd: int, node: Node, size: int, offset: int) -> bytes:
    """Given an open planned file, read up to size bytes at offset (fewer only at its end)."""
    try:
        data = os.pread(fd, size, offset)
        while 0 < len(data) < size:  # a regular file reads short only at its end: make sure
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data
    except OSError as exc:
        raise SourceChanged(node.shown, f"read failed ({exc.strerror})") from None


def _same(st: os.stat_result, node: Node) -> bool:
    """Given a fresh stat and the planned Node, return whether the file is unchanged."""
    return st.st_size == node.size and st.st_mtime_ns == node.mtime_ns


def _unchanged(st: os.stat_result, node: Node) -> bool:
    """Given a fresh stat and the planned Node, return whether the content cannot have changed."""
    return _same(st, node) and st.st_ctime_ns == node.ctime_ns


def _node(rel: RelPath, st: os.stat_result) -> Node | None:
    """Given a path and its stat, return a Node, or None for special files."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind, size = "file", st.st_size
    elif stat.S_ISDIR(mode):
        kind, size = "dir", 0
    else:
        return None
    return Node(rel, kind, size, st.st_mtime_ns, stat.S_IMODE(mode), st.st_dev, st.st_ino,
                st.st_ctime_ns)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name
