"""Manifests -> plans: every entry's source stat'ed, missing= applied, the archive planned.

Every file a manifest names is stat'ed before the first byte (several at a
time: most are remote), so the plan knows each size and version; what the
caller said of a file only plans: a size that disagrees with the source is
refused here, a crc32 that disagrees with the bytes cuts the stream. Under
missing=fail anything not there refuses the whole manifest, naming every
such entry; under missing=skip those entries are left out and a report
entry (MISSING.txt) says which and why.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zipserve.core import plan
from zipserve.core.limits import Budget
from zipserve.core.manifest import Manifest, ManifestEntry, download_name
from zipserve.core.manifest_link import ManifestStore, link_url, make_link
from zipserve.core.missing import missing_report, report_name
from zipserve.core.names import shown
from zipserve.core.node import Entry, Node
from zipserve.core.selection import Options
from zipserve.core.urlpolicy import shown_url
from zipserve.errors import BadGateway, BadRequest, Missing, NotFound, Unavailable, ZipserveError
from zipserve.sources.mixed import Mixed, inline_node

STATS_AT_ONCE = 16  # sources stat'ed in parallel: most are a round trip to a store or an origin
# What leaves an entry out under missing=skip: it is not there, or its store does not answer.
# A refusal of the manifest itself (a URL not allowed, a folder as source) is never skipped.
NOT_THERE = (NotFound, BadGateway, Unavailable)
FOLDER_MODE = 0o755


@dataclass(frozen=True)
class ManifestPlan:
    """A manifest's plan, and the entries it left out (missing=skip) with why."""

    plan: plan.ArchivePlan
    skipped: tuple[tuple[ManifestEntry, str], ...]


def plan_manifest(manifest: Manifest, sources: Mixed, budget: Budget, default_level: int,
                  sealing: plan.Sealing | None = None,
                  packing: Callable[[Options], plan.Packing] | None = None) -> ManifestPlan:
    """Given a manifest, its sources, the limits, the server's level (and its password), return its plan.

    ``packing`` gives, for the manifest's options, what looks up its deflated
    entries' known lengths (see plan.Packing).

    Raises Missing (missing=fail), BadRequest, Forbidden or TooLarge before any byte.
    """
    found = stat_all(manifest, sources)
    skipped = [(e, got) for e, got in zip(manifest.entries, found, strict=True)
               if isinstance(got, str)]
    if skipped and manifest.missing == "fail":
        raise Missing(f"{len(skipped)} of the manifest's entries are missing",
                      missing=[missing_item(manifest, e, why) for e, why in skipped])
    kept = [(e, got) for e, got in zip(manifest.entries, found, strict=True)
            if not isinstance(got, str)]
    named = [(e.name, got if got is not None else folder_node(e)) for e, got in kept]
    budget.take_all([node for _, node in named])
    options = manifest.options(default_level)
    entries = plan.named_entries(named, options)
    for planned, (entry, _) in zip(entries, kept, strict=True):  # named_entries keeps the order
        if entry.mtime is not None:
            planned.shown_mtime_ns = entry.mtime * 1_000_000_000
    if skipped:
        newest = max((e.mtime_ns for e in entries), default=0)
        report = inline_node(report_name(manifest), missing_report(skipped), newest)
        entries.append(Entry(report.path[0], report))
    archive = plan.arrange(entries, options, download_name(manifest), sealing,
                           packing(options) if packing is not None else None)
    return ManifestPlan(archive, tuple(skipped))


def stat_all(manifest: Manifest, sources: Mixed) -> list[Node | str | None]:
    """Given a manifest, return per entry its checked Node, why it is missing (str), or None (a folder).

    Raises the first refusal that no missing= setting forgives, by entry order.
    """
    def one(entry: ManifestEntry) -> Node | str | None:
        if entry.source is None:
            return None
        try:
            node = sources.stat_ref(entry.source)
        except NOT_THERE as exc:
            return exc.message
        except ZipserveError as exc:  # keeps its status: 403 for a URL outside --allow-url
            exc.message = f"{entry_label(manifest, entry)}: {exc.message}"
            exc.args = (exc.message,)
            raise
        return checked(manifest, entry, node)

    with ThreadPoolExecutor(STATS_AT_ONCE, thread_name_prefix="zipserve-stat") as pool:
        return list(pool.map(one, manifest.entries))


def checked(manifest: Manifest, entry: ManifestEntry, node: Node) -> Node:
    """Given an entry and its source's Node, return the Node with what the caller said of it.

    A size that disagrees with the source refuses the manifest; a crc32 of a
    remote file is kept to plan its header (a local file's is read instead).
    """
    if entry.size is not None and entry.size != node.size:
        raise BadRequest(f"{entry_label(manifest, entry)}: the manifest says {entry.size} bytes, "
                         f"the source holds {node.size}")
    if entry.crc32 is not None and node.origin:
        node.claimed_crc = entry.crc32
    return node


def folder_node(entry: ManifestEntry) -> Node:
    """Given a manifest's folder entry, return its Node (its mtime as given, else 1980's first second)."""
    seconds = entry.mtime if entry.mtime is not None else 315532800
    ns = seconds * 1_000_000_000
    return Node(path=tuple(entry.name.split("/")), kind="dir", size=0, mtime_ns=ns,
                mode=FOLDER_MODE, dev=0, ino=0, ctime_ns=ns)


def entry_label(manifest: Manifest, entry: ManifestEntry) -> str:
    """Given an entry, return how errors name it: entries[i] and its name."""
    return f"entries[{manifest.entries.index(entry)}] {shown(entry.name)!r}"


def missing_item(manifest: Manifest, entry: ManifestEntry, why: str) -> dict[str, object]:
    """Given a missing entry and why, return its item of a Missing refusal (a URL without its query)."""
    assert entry.source is not None
    source = entry.source
    where = shown_url(source.text) if source.kind == "http" else shown(source.text)
    return {"entry": manifest.entries.index(entry), "name": entry.name, "source": where,
            "why": why}



@dataclass(frozen=True)
class Minted:
    """A manifest's download link, and what a caller may want to know of the archive it downloads."""

    url: str  # path and query (base_url prefixed when given)
    planned: ManifestPlan
    expires: int | None  # POSIX seconds; None: the link is not signed and does not expire


def mint_link(manifest: Manifest, planned: ManifestPlan, *, store: ManifestStore | None,
              secret: str | None, expires: int | None, pin: bool = True,
              base_url: str = "") -> Minted:
    """Given a planned manifest, return its GET link, storing the manifest first when it is too long.

    The link is signed to expire when a secret is given. `pin` adds the
    sized archive's ETag (?etag=): once any source changes, the link answers
    412 instead of other bytes, so a resumed download never mixes two versions.
    Raises BadRequest when the manifest must be stored and no store is set.
    """
    link = make_link(manifest, secret=secret.encode("utf-8") if secret is not None else None)
    if link.stored is not None:
        if store is None:
            raise BadRequest("this manifest is too long for a link and the server keeps no records")
        store.put(link.digest, link.stored, expires=expires)
    etag = planned.plan.etag
    query = [("etag", etag)] if pin and etag is not None else []
    url = link_url(link, secret=secret, expires=expires if secret else None, query=query,
                   base_url=base_url)
    return Minted(url=url, planned=planned, expires=expires if secret else None)
