"""What a source plug-in declares: the options it takes, and how to check its settings and open it.

Each kind of source has a light module of Options (data: name, type,
default, help), which the registry and the CLI read without loading the
source, and a plug-in module exporting PLUGIN, imported only when a root of
its kind is used (so serving a folder never loads an object store's client).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zipserve.errors import ConfigError
from zipserve.sources.base import Source

Options = Mapping[str, object]  # option name -> value, as Settings.source_options holds them


@dataclass(frozen=True)
class Option:
    """One setting a source takes: the CLI's --NAME (dashes for underscores) and ZIPSERVE_NAME."""

    name: str  # a Python identifier, prefixed with the source's scheme: s3_part_size
    type: type[str] | type[int]
    default: str | int | None
    help: str
    sign: bool = False  # `sign` takes it too: it says how to reach the source, to pin a snapshot

    @property
    def flag(self) -> str:
        """Return the option as typed on the command line (--s3-part-size)."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Plugin:
    """What a source's plug-in module exports as PLUGIN.

    Each hook takes the root as typed (a URL, or a folder's path) and the
    source's own option values, every one present (defaults filled in).
    """

    check: Callable[[str, Options], None]  # raise ConfigError naming what cannot work
    open: Callable[[str, Options], Source]  # the source itself, for one process
    # Ask the source once, at startup, whether it answers; raise the ZipserveError a request
    # would meet (Unavailable: it may come back). None: nothing to ask.
    probe: Callable[[str, Options], None] | None = None


def text(options: Options, option: Option) -> str | None:
    """Given option values and a text option, return its value (None: unset); raise ConfigError."""
    value = options[option.name]
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{option.flag} takes text, not {value!r}")
    return value


def number(options: Options, option: Option) -> int:
    """Given option values and a whole-number option, return its value; raise ConfigError."""
    value = options[option.name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{option.flag} takes a whole number, not {value!r}")
    return value
