"""Archive names every Windows extractor can write (``names=windows``): pure and deterministic.

Given an archive's entry names, ``windows_names`` returns a new name for each,
following Microsoft's "Naming Files, Paths, and Namespaces":

- the characters ``<>:"|?*``, the backslash (Windows reads it as a separator)
  and the controls 0x00-0x1F become ``_``;
- trailing dots and spaces are dropped (Windows drops them itself, so ``a.``
  would land on ``a``); a component left empty becomes ``_``;
- reserved device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, COM¹²³, LPT¹²³,
  CONIN$, CONOUT$), in any case and also before an extension (``nul.txt``,
  ``Com1.tar.gz``, ``nul .txt``), get ``_`` after their base: ``nul_.txt``;
- a component holds at most 255 UTF-16 code units (NTFS);
- a whole path holds at most ``PATH_CAP`` = 200 UTF-16 code units. MAX_PATH
  (260) counts the drive, the folder the user extracts into and the final
  NUL; a folder must also leave room for an 8.3 name (248 in all). 200
  leaves 48 units for a destination such as
  ``C:\\Users\\someone\\Downloads\\archive-name\\`` (40). A path over the
  cap is shortened by cutting the names along it (extensions kept), each to no
  less than ``FLOOR`` units or its own length: the cap holds for every tree up
  to 11 levels deep (11 x 17 <= 200, with up to 99,999 names folding alike in
  one folder); deeper trees of long names keep their shape, each name cut to
  ``FLOOR`` (extractors with long-path support still write them);
- Windows compares names case-insensitively: siblings whose folded forms
  (``fold``) are equal, like ``A.txt`` and ``a.txt``, collide. The first in
  sorted order keeps its name, names that need no change go before renamed
  ones, and the others get `` (2)``, `` (3)``... before their extension:
  ``a (2).txt``. A renamed folder renames every descendant's path with it.

The result depends only on the names, so every server and every request give
the same archive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PATH_CAP = 200  # UTF-16 code units in a whole archive path (see the module docstring)
COMPONENT_CAP = 255  # UTF-16 code units in one name (NTFS, FAT32 long names)
FLOOR = 16  # a component cut for the path cap keeps this many units (or all it has, plus SUFFIX_ROOM)
SUFFIX_ROOM = 8  # " (99999)": room a short name keeps for a collision suffix
EXT_MAX = 16  # a ".ext" longer than this (dot included) counts as part of the stem

_HOSTILE = str.maketrans({c: "_" for c in '<>:"|?*\\' + "".join(map(chr, range(32)))})
_NEEDS_CLEANING = re.compile(r'[<>:"|?*\\\x00-\x1f]|[. ]\Z')
_DEVICE_STARTS = frozenset({"CON", "PRN", "AUX", "NUL", "COM", "LPT"})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {prefix + digit for prefix in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)


def fold(name: str) -> str:
    """Given a name, return the key under which Windows may take two names for one.

    NTFS compares names through its upcase table, one UTF-16 unit at a time;
    upper-casing then case-folding is coarser (``ı`` and ``i``, ``ß`` and
    ``ss`` fold together), so every pair Windows calls equal is renamed, and a
    few more.
    """
    return name.upper().casefold()


def units(name: str) -> int:
    """Given a name, return its length in UTF-16 code units, the unit Windows counts in."""
    if not name or name.isascii() or max(name) <= "\uffff":
        return len(name)  # one unit a character: the common case, without encoding
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def reserved(name: str) -> bool:
    """Given a component, return whether Windows takes it for a device (its base before any dot)."""
    if name[:3].upper() not in _DEVICE_STARTS:
        return False  # most names: no need to split off the base
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def clean(component: str) -> str:
    """Given a path component, return it without hostile characters, trailing dots or spaces, or a device."""
    out = component
    if not component or _NEEDS_CLEANING.search(component):
        out = component.translate(_HOSTILE).rstrip(". ") or "_"
    if reserved(out):
        base, dot, rest = out.partition(".")
        out = base + "_" + dot + rest
    return out


def valid(component: str) -> bool:
    """Given one path component, return whether Windows can create it as it is (length aside)."""
    return bool(component) and clean(component) == component


def windows_names(names: Iterable[str]) -> dict[str, str]:
    """Given entry names ("/"-separated, no trailing "/", folders included), return each one's Windows name.

    Folders that only appear as parents are renamed like listed ones, so every
    descendant of a renamed folder moves with it.
    """
    listed = list(dict.fromkeys(names))
    kids = _children(listed)
    cleaned = {parent + "/" + c if parent else c: clean(c) for parent, cs in kids.items() for c in cs}
    rooms = {path: min(units(c) + SUFFIX_ROOM, FLOOR) for path, c in cleaned.items()}
    need = _needs(kids, rooms)
    mapped: dict[str, str] = {"": ""}
    for parent in _top_down(kids):
        base = mapped[parent]
        used = units(base) + 1 if base else 0
        paths = [parent + "/" + c if parent else c for c in kids[parent]]
        budgets = [min(COMPONENT_CAP, max(rooms[p], PATH_CAP - used - need.get(p, 0))) for p in paths]
        chosen = _siblings(kids[parent], [cleaned[p] for p in paths], budgets)
        for path, name in zip(paths, chosen, strict=True):
            mapped[path] = base + "/" + name if base else name
    return {name: mapped[name] for name in listed}


def _children(names: list[str]) -> dict[str, list[str]]:
    """Given entry names, return each folder path's child components ("" is the root), in first-seen order."""
    kids: dict[str, list[str]] = {"": []}
    for name in names:
        parent = ""
        for component in name.split("/"):
            path = parent + "/" + component if parent else component
            if path not in kids:
                kids[path] = []
                kids[parent].append(component)
            parent = path
    return kids


def _needs(kids: dict[str, list[str]], rooms: dict[str, int]) -> dict[str, int]:
    """Given the tree and each path's room, return each folder's units needed by its deepest descendant path.

    A path's room is the fewest units its name may be given: its cleaned
    length plus room for a collision suffix, at most ``FLOOR``. A folder's own
    name may then use what the cap leaves after its parent and this need, so
    every descendant still finds at least its room.
    """
    need: dict[str, int] = {}
    for path in sorted(kids, key=lambda p: p.count("/"), reverse=True):
        below = 0
        for c in kids[path]:
            child = path + "/" + c if path else c
            below = max(below, 1 + rooms[child] + need.get(child, 0))
        if below:
            need[path] = below
    return need


def _top_down(kids: dict[str, list[str]]) -> list[str]:
    """Given the tree, return its folder paths, each after its parent."""
    order = [""]
    for path in order:  # grows as it goes: a breadth-first walk without recursion
        for c in kids[path]:
            child = path + "/" + c if path else c
            if kids[child]:
                order.append(child)
    return order


def _siblings(components: list[str], cleaned: list[str], budgets: list[int]) -> list[str]:
    """Given a folder's child components, their cleaned forms and unit budgets, return names distinct by fold.

    Names kept as they are claim their fold first (sorted order decides among
    them); the rest are cleaned, cut to their budget and numbered until free.
    """
    keys = [fold(c) for c in components]
    keep = [c == k and units(c) <= b for c, k, b in zip(components, cleaned, budgets, strict=True)]
    if all(keep) and len(set(keys)) == len(keys):
        return components  # the common case: nothing to rename
    out: list[str] = [""] * len(components)
    taken: set[str] = set()
    order = sorted(range(len(components)), key=components.__getitem__)
    for i in order:
        if keep[i] and keys[i] not in taken:
            out[i] = components[i]
            taken.add(keys[i])
    counters: dict[str, int] = {}  # fold of a cleaned name -> the next number to try
    for i in order:
        if not out[i]:
            out[i] = _unique(cleaned[i], budgets[i], taken, counters)
    return out


def _unique(name: str, budget: int, taken: set[str], counters: dict[str, int]) -> str:
    """Given a cleaned name and its budget, return the first of name, "name (2)"... that fits and is free."""
    stem, ext = _split(name)
    start = fold(name)
    n = counters.get(start, 1)
    while True:
        candidate = _fit(stem, ext, budget, f" ({n})" if n > 1 else "")
        n += 1
        key = fold(candidate)
        if key not in taken and not reserved(candidate):  # a cut may leave a device name
            taken.add(key)
            counters[start] = n
            return candidate


def _split(name: str) -> tuple[str, str]:
    """Given a name, return (stem, extension): the last ".xyz", if short and not the whole name."""
    dot = name.rfind(".")
    if dot > 0 and len(name) - dot <= EXT_MAX:
        return name[:dot], name[dot:]
    return name, ""


def _fit(stem: str, ext: str, budget: int, suffix: str) -> str:
    """Given a name's parts and a unit budget, return stem + suffix + ext, stem (then ext) cut to fit."""
    room = budget - units(suffix) - units(ext)
    if room < 1:
        stem, ext = stem + ext, ""
        room = budget - units(suffix)
    cut = _cut(stem, room)
    if not suffix and not ext:
        cut = cut.rstrip(". ")  # the cut end is the name's end: Windows would drop these
    return (cut or "_") + suffix + ext


def _cut(text: str, limit: int) -> str:
    """Given a text and a number of UTF-16 units, return its longest prefix within them, pairs whole."""
    if len(text) <= limit // 2 or units(text) <= limit:
        return text
    data = text.encode("utf-16-le", "surrogatepass")[: 2 * max(limit, 0)]
    if len(data) >= 2 and 0xD8 <= data[-1] <= 0xDB:  # a high surrogate whose pair was cut off
        data = data[:-2]
    return data.decode("utf-16-le", "surrogatepass")
