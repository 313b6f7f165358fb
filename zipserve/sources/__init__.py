"""Where served files come from: the registry of sources, one row per kind, chosen by the root's URL scheme.

A row names the scheme its roots start with, the plug-in module that checks
their settings and opens them (imported by name, only when a root of that
kind is used: serving a folder never loads an object store's client), and
the options the source takes, as data. Settings, the CLI and the service ask
only here: a new kind of source is a new row and a package beside local/ and
s3/, and nothing outside its package names it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from zipserve.errors import ConfigError
from zipserve.sources.base import Source
from zipserve.sources.plugin import Option, Options, Plugin
from zipserve.sources.s3 import options as s3


@dataclass(frozen=True)
class Kind:
    """One kind of source: the roots it serves, its plug-in module, the options it takes."""

    scheme: str  # what its roots start with ("s3://"); "" for a local folder: any other root
    module: str  # exports PLUGIN (a Plugin); imported when a root of this kind is used
    options: tuple[Option, ...] = ()


KINDS = (
    Kind("s3://", "zipserve.sources.s3.plugin", s3.OPTIONS),
    Kind("", "zipserve.sources.local.plugin"),  # last: it takes every root
)


def kind_of(root: object) -> Kind:
    """Given a root (a URL or a folder's path), return the kind of source that serves it."""
    text = str(root)
    return next(k for k in KINDS if text.startswith(k.scheme))


def root_of(root: str | Path) -> Path | str:
    """Given a root as typed, return it as Settings holds it: a URL stays text, a folder is a Path."""
    return Path(root) if kind_of(root).scheme == "" else str(root)


def options() -> tuple[Option, ...]:
    """Return every option of every registered source, in the registry's order."""
    return tuple(o for k in KINDS for o in k.options)


def values(kind: Kind, given: Options) -> dict[str, object]:
    """Given a kind and the option values set, return that kind's options, defaults filled in.

    Raises ConfigError for a name no registered source declares (another
    kind's options are allowed: the CLI sets every source's).
    """
    unknown = sorted(set(given) - {o.name for o in options()})
    if unknown:
        raise ConfigError(f"no source takes the option {unknown[0]}")
    return {o.name: given.get(o.name, o.default) for o in kind.options}


def plugin(kind: Kind) -> Plugin:
    """Given a kind, import its plug-in module and return its PLUGIN."""
    found = getattr(importlib.import_module(kind.module), "PLUGIN", None)
    if not isinstance(found, Plugin):
        raise TypeError(f"{kind.module} exports no PLUGIN")
    return found


def check(root: str | Path, given: Options) -> None:
    """Given a root and the source options set, raise ConfigError naming what cannot work."""
    kind = kind_of(root)
    plugin(kind).check(str(root), values(kind, given))


def open_source(root: str | Path, given: Options) -> Source:
    """Given a checked root and the source options set, return the source it names."""
    kind = kind_of(root)
    return plugin(kind).open(str(root), values(kind, given))


def probe(root: str | Path, given: Options) -> None:
    """Given a checked root, ask its source once whether it answers; raise what a request would meet."""
    kind = kind_of(root)
    hook = plugin(kind).probe
    if hook is not None:
        hook(str(root), values(kind, given))
