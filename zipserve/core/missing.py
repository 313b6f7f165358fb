"""A manifest's missing=skip report: the entry that says which entries were left out, and why (pure)."""

from __future__ import annotations

from zipserve.core import names as entry_names
from zipserve.core.manifest import Manifest, ManifestEntry
from zipserve.core.urlpolicy import shown_url

REPORT_NAME = "MISSING.txt"


def report_name(manifest: Manifest) -> str:
    """Given a Manifest, return the name of its missing=skip report: MISSING.txt unless an entry has it.

    Then MISSING-2.txt, MISSING-3.txt, ...: the report never replaces an entry.
    """
    taken = {entry_names.name_key(e.name) for e in manifest.entries}
    taken |= {entry_names.name_key(e.name.split("/", 1)[0]) for e in manifest.entries}
    n = 1
    name = REPORT_NAME
    while name in taken:
        n += 1
        name = f"MISSING-{n}.txt"
    return name


def missing_report(skipped: list[tuple[ManifestEntry, str]]) -> bytes:
    """Given the entries left out and why, return the report's UTF-8 text, one entry a line.

    A URL source is shown without its query, which may hold a pre-signed key.
    """
    lines = [f"{len(skipped)} entr{'y was' if len(skipped) == 1 else 'ies were'} left out "
             "of this archive (missing=skip):", ""]
    for entry, reason in skipped:
        source = entry.source
        where = "" if source is None else (
            shown_url(source.text) if source.kind == "http" else entry_names.shown(source.text))
        lines.append(f"{entry.name}\t{where}\t{entry_names.shown(reason)}")
    return ("\n".join(lines) + "\n").encode("utf-8")
