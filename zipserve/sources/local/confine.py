"""Confinement to the served folder: every path resolved, and every file or folder opened, lies inside it.

Confinement is checked twice: by path before planning (the real path must lie
inside the root) and on the opened file (its device and inode must be the
planned ones, and /proc must show it, or the folder it was opened in without
following a symlink, inside the root), so a folder swapped for a symlink
between the two never leaks a byte from outside.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from zipserve.core.node import Node, RelPath
from zipserve.errors import Forbidden, NotFound, SourceChanged, TooLarge


class Root:
    """A served folder; every path given to it is relative and already parsed."""

    def __init__(self, root: Path) -> None:
        self.path = str(root)
        self.real = os.path.realpath(root)
        # Longest path the kernel takes (with its NUL): deeper names cannot be
        # opened by path, so a walk refuses them instead of leaving them out.
        self.path_max = _path_max(self.path)

    def full(self, rel: RelPath) -> str:
        """Given a relative path, return it joined to the root's path (not resolved)."""
        return self.path + "/" + "/".join(rel) if rel else self.path

    def inside(self, real: str) -> bool:
        """Given a real path, return whether it lies in the root (not a sibling sharing its prefix)."""
        return real == self.real or real.startswith(self.real + os.sep)

    def path_error(self, exc: OSError, shown: str) -> Exception:
        """Given an OSError from resolving a path, return the refusal it means (or exc itself)."""
        if exc.errno == errno.ENAMETOOLONG:
            return TooLarge(f"path is longer than the system's limit of {self.path_max} bytes",
                            path=bounded(shown))
        if exc.errno == errno.ELOOP:
            return NotFound(f"symbolic link loop: {bounded(shown)}", path=shown)
        if exc.errno == errno.EINVAL:
            return NotFound(f"changed while being looked up: {bounded(shown)}", path=shown)
        return exc

    def open_folder(self, folder: Node) -> int:
        """Given a walked folder, return an fd open on that very folder; raise NotFound or Forbidden.

        Listed through the fd, not the path: a folder swapped for a symlink
        after it was checked cannot show what lies outside the root.
        """
        fd = os.open(self.full(folder.path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not self.fd_inside(fd):
                raise Forbidden("path leads outside the served folder", path=folder.shown)
            if (st.st_dev, st.st_ino) != (folder.dev, folder.ino):
                raise NotFound(f"folder changed while being read: {folder.shown}",
                               path=folder.shown)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(self, node: Node, folders: Folders | None = None) -> tuple[int, os.stat_result]:
        """Given a planned file Node, return an fd open on that very file and its stat.

        Checked before anything is read: the same device and inode as planned,
        a regular file, and really inside the root (the planning stat of a
        requested path can itself lose a symlink-swap race, so the planned
        inode alone proves nothing: tests/test_hostile.py).
        """
        fd, inside = self.open_fd(node, folders)
        try:
            st = os.fstat(fd)
            self.check(fd, st, node, inside)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def open_fd(self, node: Node, folders: Folders | None) -> tuple[int, bool]:
        """Given a planned file Node, return an fd on what its path names now, and whether it is in the root.

        Opened with O_NONBLOCK so a FIFO swapped in cannot block. With
        `folders`, a file that is not a symlink is opened in its folder's fd,
        which was checked inside the root when opened (see Folders).
        """
        try:
            fd = folders.open(node) if folders is not None else -1
            if fd >= 0:
                return fd, True
            return os.open(self.full(node.path), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), False
        except FileNotFoundError:
            raise SourceChanged(node.shown, "vanished") from None
        except OSError as exc:
            raise SourceChanged(node.shown, f"unreadable ({exc.strerror})") from None

    def check(self, fd: int, st: os.stat_result, node: Node, inside: bool) -> None:
        """Given an fd, its stat and the planned Node, raise SourceChanged unless that file is in the root."""
        if (st.st_dev, st.st_ino) != (node.dev, node.ino) or not stat.S_ISREG(st.st_mode):
            raise SourceChanged(node.shown, "replaced by another file")
        if not inside and not self.fd_inside(fd):
            raise SourceChanged(node.shown, "now leads outside the root")

    def fd_inside(self, fd: int) -> bool:
        """Given an open fd, return whether the kernel says it lies in the root."""
        try:
            return self.inside(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return True  # no /proc: the device/inode check above still holds


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
            fd = os.open(self.root.full(folder), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if not self.root.fd_inside(fd):
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


def bounded(shown: str) -> str:
    """Given a shown path, return it cut to a size an error message can carry."""
    return shown if len(shown) <= 200 else "..." + shown[-200:]
