"""Header values built from untrusted names (pure): nothing from a request can inject a header."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from email.utils import formatdate
from urllib.parse import quote

# RFC 5987 attr-char, minus nothing: what may stand unescaped in filename*.
_ATTR_CHARS = "!#$&+-.^_`|~"
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9 !#$&'()+,\-.;=@\[\]^_`{}~]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def content_disposition(filename: str) -> str:
    """Given a download name, return ``attachment; filename="..."; filename*=UTF-8''...``.

    The ASCII fallback has no quote, backslash or control character (``curl
    -J`` reads only it); ``filename*`` (RFC 6266 §4.3, RFC 5987) carries the
    exact name, percent-encoded, so neither part can break out of the header.
    """
    name = _CONTROLS.sub("", filename).strip() or "download"
    return (f'attachment; filename="{ascii_fallback(name)}"; '
            f"filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}")


def ascii_fallback(name: str) -> str:
    """Given a name, return a plain-ASCII look-alike safe inside a quoted string."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE_ASCII.sub("_", folded).replace(";", "_").strip(" ")
    if safe.startswith(".") or not safe.strip("_"):
        # Nothing readable is left before the extension ("\u20ac.zip" folds to ".zip"):
        # save as download.zip, not as a hidden file or one named "zip".
        rest = safe.strip(" ._")
        safe = "download." + rest if rest else "download"
    return _shortened(safe.rstrip(" ."), 200) or "download"


def _shortened(name: str, limit: int) -> str:
    """Given a name, return it cut to `limit` characters, keeping a short extension such as .tar.gz.

    File systems refuse names over 255 bytes, and a saved file without its
    extension would not open, so the cut falls in the stem.
    """
    if len(name) <= limit:
        return name
    tail = name[-16:]
    ext = tail[tail.index("."):] if "." in tail else ""
    return name[: limit - len(ext)] + ext


def file_etag(size: int, mtime_ns: int, version: str = "") -> str:
    """Given a file's size, mtime and store version, return its strong ETag (the same on every machine).

    An object's LastModified has whole seconds only, so its own ETag (``version``)
    is folded in: a replacement within the same second still changes ours.
    """
    if version:
        digest = hashlib.sha256(version.encode()).hexdigest()[:16]
        return f'"f-{size:x}-{mtime_ns:x}-{digest}"'
    return f'"f-{size:x}-{mtime_ns:x}"'


def http_date(seconds: int) -> str:
    """Given POSIX seconds, return an IMF-fixdate (RFC 9110 §5.6.7)."""
    return formatdate(seconds, usegmt=True)


def prefers_html(accept: str) -> bool:
    """Given an Accept header, return whether text/html is wanted at least as much as JSON.

    Browsers list text/html first; API clients send */* or application/json.
    """
    weights: dict[str, float] = {}
    for item in accept.split(",")[:50]:
        kind, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[kind.strip().lower()] = q
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)
