"""A manifest: an application's list of files, where each comes from and its name inside (pure).

JSON as an application sends it::

    {"name": "March invoices", "format": "zip", "compression": "auto", "missing": "fail",
     "entries": [{"source": "s3://bucket/u/81/a8f3e1", "name": "Invoices/2024-03 ACME.pdf",
                  "size": 48213, "crc32": "1c291ca3", "mtime": "2024-03-31T09:00:00Z"},
                 {"name": "Empty folder/"}]}

parse_manifest() refuses anything it does not understand, unknown keys
included, so a typo surfaces as a 400 instead of an archive that silently
differs; to_json() writes the one canonical form, which parses back to the
same Manifest. Entries keep the order given: the application chose it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zipserve.core import formats
from zipserve.core import names as entry_names
from zipserve.core.node import RelPath
from zipserve.core.selection import (
    CHECKSUMS,
    COMPRESSIONS,
    ENCRYPTIONS,
    NAMES,
    Options,
    parse_format,
    parse_options,
    parse_path,
)
from zipserve.core.urlpolicy import Url, parse_url
from zipserve.errors import BadRequest, TooLarge, ZipserveError

MISSING = ("fail", "skip")
MAX_SIZE = (1 << 63) - 1
MAX_MTIME = 253402300799  # 9999-12-31T23:59:59Z
MAX_DOWNLOAD_NAME = 255
MAX_S3_KEY = 1024  # bytes, the S3 limit
_KEYS = frozenset({"name", "format", "compression", "level", "missing", "entries", "names",
                   "checksums", "encryption", "password"})
_ENTRY_KEYS = frozenset({"source", "name", "size", "crc32", "mtime"})
_CRC32 = re.compile(r"^[0-9A-Fa-f]{8}$")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")


@dataclass(frozen=True)
class SourceRef:
    """Where an entry's bytes come from: a path under the root, an S3 object or an http(s) URL."""

    kind: str  # "local", "s3" or "http"
    text: str  # the canonical spelling, which parses back to this SourceRef
    path: RelPath = ()  # local: parts relative to the served root
    bucket: str = ""  # s3
    key: str = ""  # s3
    url: Url | None = None  # http: normalised; the allowlist is checked where it is fetched


@dataclass(frozen=True)
class ManifestEntry:
    """One member: its source (None for a folder), name, and what the caller says about its data.

    size and crc32 from the caller only plan the archive; the bytes read must
    agree or the stream is cut.
    """

    source: SourceRef | None
    name: str  # "/"-separated, no trailing slash
    size: int | None = None
    crc32: int | None = None
    mtime: int | None = None  # POSIX seconds
    is_dir: bool = False


@dataclass(frozen=True)
class Manifest:
    """A validated manifest."""

    name: str | None
    format: str
    compression: str
    missing: str
    entries: tuple[ManifestEntry, ...]
    level: int | None = None  # None: the server's default
    names: str = "keep"
    checksums: str = "none"
    encryption: str = "none"
    # Under encryption=aes256. A manifest that has one never travels in a link (see manifest_link).
    password: str | None = field(default=None, repr=False)

    def options(self, default_level: int) -> Options:
        """Given the server's default level, return the archive Options; raise BadRequest."""
        return parse_options(self.format, self.compression, str(self.level or default_level),
                             default_level, self.names, self.checksums, self.encryption)


def load_manifest(raw: bytes | str, *, max_entries: int) -> Manifest:
    """Given a manifest's JSON text, return the Manifest; raise BadRequest or TooLarge.

    Stricter than json.loads: a key given twice, NaN and Infinity are refused.
    """
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except BadRequest:
        raise
    except (ValueError, RecursionError):
        raise BadRequest("manifest is not valid JSON") from None
    return parse_manifest(data, max_entries=max_entries)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadRequest(f"manifest gives the key {entry_names.shown(key)!r} twice")
        obj[key] = value
    return obj


def _no_constant(name: str) -> None:
    raise BadRequest(f"manifest holds {name}, which is not JSON")


def parse_manifest(data: object, *, max_entries: int) -> Manifest:
    """Given a decoded JSON manifest and the entry cap, return the Manifest; raise BadRequest or TooLarge."""
    if not isinstance(data, dict):
        raise BadRequest('manifest must be a JSON object like {"entries": [...]}')
    _no_unknown_keys(data, _KEYS, "manifest")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise BadRequest('manifest needs "entries": a non-empty list')
    if len(raw_entries) > max_entries:
        raise TooLarge(f"manifest has {len(raw_entries)} entries; the limit is {max_entries}")
    fmt = parse_format(_text(data, "format", formats.DEFAULT))
    entries = tuple(_entry(i, raw) for i, raw in enumerate(raw_entries))
    clash = entry_names.first_conflict([(e.name, e.is_dir) for e in entries])
    if clash is not None:
        i, _, why = clash
        raise _refusal(i, entries[i].name + "/" * entries[i].is_dir, f"name {why}")
    row = formats.get(fmt)
    if row.one_file and (len(entries) != 1 or entries[0].is_dir):
        raise BadRequest(f"{row.name} holds exactly one file; use {row.folders_as} for several entries")
    manifest = Manifest(name=_download_stem(data.get("name")), format=fmt,
                        compression=_choice(data, "compression", COMPRESSIONS, "auto"),
                        missing=_choice(data, "missing", MISSING, "fail"),
                        entries=entries, level=_level(data.get("level")),
                        names=_choice(data, "names", NAMES, "keep"),
                        checksums=_choice(data, "checksums", CHECKSUMS, "none"),
                        encryption=_choice(data, "encryption", ENCRYPTIONS,
                                           "none" if data.get("password") is None else "aes256"),
                        password=_password(data.get("password")))
    manifest.options(1)  # the options must go together (checksums and encryption: zip only)
    if (manifest.password is None) != (manifest.encryption == "none"):
        raise BadRequest('manifest "encryption": "aes256" and "password" come together')
    return manifest


def _password(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest('manifest "password" must be a non-empty string')
    return value


def _no_unknown_keys(obj: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        raise BadRequest(f"{where} has unknown key {entry_names.shown(unknown[0])!r}; "
                         f"known keys: {', '.join(sorted(known))}")


def _text(obj: dict[str, Any], key: str, default: str) -> str:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f'manifest "{key}" must be a string')
    return value


def _choice(obj: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = _text(obj, key, default).lower()
    if value not in allowed:
        raise BadRequest(f'manifest "{key}" must be one of: {", ".join(allowed)}')
    return value


def _level(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= 9:
        raise BadRequest('manifest "level" must be a whole number from 1 to 9')
    return value


def _download_stem(value: object) -> str | None:
    """Given the manifest's "name", return it checked, or None; raise BadRequest."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest('manifest "name" must be a string')
    bad = entry_names.bad_characters(value)
    if bad is not None:
        raise BadRequest(f'manifest "name" {bad}', path=entry_names.shown(value))
    if entry_names.utf8_length(value) > MAX_DOWNLOAD_NAME:
        raise BadRequest(f'manifest "name" is longer than {MAX_DOWNLOAD_NAME} bytes',
                         path=entry_names.shown(value))
    return value


def _refusal(index: int, name: object, why: str) -> BadRequest:
    """Given an entry's index, raw name and what is wrong, return the BadRequest naming it."""
    shown = entry_names.shown(name) if isinstance(name, str) else "(no name)"
    return BadRequest(f"entries[{index}]: {why}", path=f"entries[{index}]: {shown}")


def _entry(index: int, raw: object) -> ManifestEntry:
    """Given one raw entry and its index, return the ManifestEntry; raise BadRequest naming it."""
    if not isinstance(raw, dict):
        raise _refusal(index, None, 'an entry must be an object like {"source": ..., "name": ...}')
    raw_name = raw.get("name")
    try:
        _no_unknown_keys(raw, _ENTRY_KEYS, "entry")
        if not isinstance(raw_name, str):
            raise ValueError('needs "name": the path inside the archive, as a string')
        name, is_dir = entry_names.parse_entry_name(raw_name)
        if is_dir:
            for key in ("source", "size", "crc32"):
                if raw.get(key) is not None:
                    raise ValueError(f'a folder (a name ending in "/") takes no "{key}"')
            return ManifestEntry(None, name, mtime=_field(raw, "mtime", parse_mtime), is_dir=True)
        if raw.get("source") is None:
            raise ValueError('needs "source": a path under the root, s3://bucket/key or a URL')
        return ManifestEntry(source=_field(raw, "source", parse_source), name=name,
                             size=_field(raw, "size", parse_size),
                             crc32=_field(raw, "crc32", parse_crc32),
                             mtime=_field(raw, "mtime", parse_mtime))
    except ZipserveError as exc:
        raise _refusal(index, raw_name, exc.message) from None
    except ValueError as exc:
        raise _refusal(index, raw_name, str(exc)) from None


def _field(raw: dict[str, Any], key: str, parse: Callable[[Any], Any]) -> Any:
    value = raw.get(key)
    return None if value is None else parse(value)


def parse_source(value: object) -> SourceRef:
    """Given an entry's "source", return its SourceRef; raise ValueError or BadRequest.

    RFC 3986 §4.2: a first segment with a ':' reads as a scheme, so a local
    file named "a:b" is written "./a:b".
    """
    if not isinstance(value, str):
        raise ValueError('"source" must be a string')
    scheme = _URI_SCHEME.match(value)
    if scheme is None:
        path = parse_path(value)
        if not path:
            raise ValueError('"source" names the served folder itself, not a file')
        text = "/".join(path)
        return SourceRef("local", "./" + text if ":" in path[0] else text, path=path)
    kind = scheme.group(1).lower()
    if len(kind) == 1:
        raise ValueError('"source" must be relative to the served folder (no drive letter)')
    if kind == "s3":
        return _s3_source(value)
    if kind in ("http", "https"):
        url = parse_url(value)
        return SourceRef("http", str(url), url=url)
    raise ValueError(f'"source" scheme {kind[:20]!r} is not one of s3, http, https')


def _s3_source(value: str) -> SourceRef:
    """Given s3://bucket/key, return its SourceRef; raise ValueError.

    The key is taken literally (no percent-decoding), as the AWS CLI does;
    "." and ".." segments are refused since a proxy on the way may resolve them.
    """
    if value[:5].lower() != "s3://":
        raise ValueError('an S3 source is written "s3://bucket/key"')
    bucket, sep, key = value[5:].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError("S3 source has a malformed bucket name")
    if not sep or not key:
        raise ValueError("S3 source needs a key after the bucket")
    bad = entry_names.bad_characters(key)
    if bad is not None:
        raise ValueError(f"S3 key {bad}")
    if entry_names.utf8_length(key) > MAX_S3_KEY:
        raise ValueError(f"S3 key is longer than {MAX_S3_KEY} bytes")
    if any(part in (".", "..") for part in key.split("/")):
        raise ValueError("S3 key has a '.' or '..' segment")
    return SourceRef("s3", f"s3://{bucket}/{key}", bucket=bucket, key=key)


def parse_size(value: object) -> int:
    """Given an entry's "size", return it; raise ValueError unless a whole number of bytes."""
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise ValueError('"size" must be a whole number of bytes, 0 or more')
    return value


def parse_crc32(value: object) -> int:
    """Given an entry's "crc32", return it as a number; raise ValueError unless 8 hex digits."""
    if not isinstance(value, str) or not _CRC32.match(value):
        raise ValueError('"crc32" must be 8 hex digits, like "1c291ca3"')
    return int(value, 16)


def parse_mtime(value: object) -> int:
    """Given an entry's "mtime" (POSIX seconds or ISO 8601 with an offset), return POSIX seconds."""
    if type(value) is int:
        seconds = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError('"mtime" must be POSIX seconds or ISO 8601') from None
        if when.tzinfo is None:
            raise ValueError('"mtime" in ISO 8601 needs an offset or "Z": local time is ambiguous')
        seconds = int(when.timestamp() // 1)
    else:
        raise ValueError('"mtime" must be POSIX seconds or ISO 8601')
    if not 0 <= seconds <= MAX_MTIME:
        raise ValueError('"mtime" must lie between 1970 and 9999')
    return seconds


def to_json(manifest: Manifest) -> dict[str, Any]:
    """Given a Manifest, return its canonical JSON object: parse_manifest() of it gives it back."""
    out: dict[str, Any] = {"format": manifest.format, "compression": manifest.compression,
                           "missing": manifest.missing,
                           "entries": [_entry_json(e) for e in manifest.entries]}
    if manifest.name is not None:
        out["name"] = manifest.name
    if manifest.level is not None:
        out["level"] = manifest.level
    for key, default in (("names", "keep"), ("checksums", "none"), ("encryption", "none")):
        if getattr(manifest, key) != default:
            out[key] = getattr(manifest, key)
    if manifest.password is not None:
        out["password"] = manifest.password
    return out


def _entry_json(entry: ManifestEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry.name + "/" if entry.is_dir else entry.name}
    if entry.source is not None:
        out["source"] = entry.source.text
    if entry.size is not None:
        out["size"] = entry.size
    if entry.crc32 is not None:
        out["crc32"] = f"{entry.crc32:08x}"
    if entry.mtime is not None:
        out["mtime"] = entry.mtime
    return out


def download_name(manifest: Manifest) -> str:
    """Given a Manifest, return the archive's download file name, with the format's extension.

    The manifest's "name" (slashes made '_'), else a single file's own name,
    else "archive".
    """
    ext = "." + formats.get(manifest.format).extension
    files = [e for e in manifest.entries if not e.is_dir]
    if manifest.name:
        stem = manifest.name.replace("/", "_").replace("\\", "_").strip()
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    elif len(manifest.entries) == 1 and files:
        stem = files[0].name.rsplit("/", 1)[-1]
    else:
        stem = "archive"
    return (stem or "archive") + ext
