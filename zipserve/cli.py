"""Command line: options -> Settings -> uvicorn, pack or sign. Every option is also ZIPSERVE_<NAME>."""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import click

from zipserve import records, sources
from zipserve.core import signing
from zipserve.errors import Unavailable, ZipserveError
from zipserve.settings import Settings

SETTINGS_ENV = "ZIPSERVE__SETTINGS"  # how the parent hands settings to uvicorn's workers


RECORDS = click.option(
    "--records", default=None, metavar="PATH|s3://bucket/prefix",
    help="Where records behind links are kept (stored manifests, protected selections): a SQLite"
         " file (default: ~/.cache/zipserve/records.sqlite3), or a prefix in the S3 store the"
         " --s3-* options reach, shared by a fleet.")


def common_options(f: Any) -> Any:
    """Options shared by serve and pack (limits, compression, cache, then every source's)."""
    f = source_options()(f)  # applied first, listed last
    for opt in reversed([
        click.option("--max-files", type=int, default=200_000, show_default=True),
        click.option("--max-bytes", type=int, default=1 << 40, show_default=True),
        click.option("--max-depth", type=int, default=256, show_default=True),
        click.option("--max-path-bytes", type=int, default=4096, show_default=True,
                     help="Longest requested path, in UTF-8 bytes."),
        click.option("--level", type=click.IntRange(1, 9), default=1, show_default=True,
                     help="Default deflate level (1 fast .. 9 small)."),
        click.option("--compress-workers", type=int, default=os.cpu_count() or 1,
                     show_default=True),
        click.option("--crc-cache", type=click.Path(path_type=Path), default=None,
                     help="CRC cache file (default: ~/.cache/zipserve/crc.sqlite3)."),
        click.option("--no-crc-cache", is_flag=True, help="Keep CRCs in memory only."),
        RECORDS,
        click.option("--chunk-size", type=int, default=1 << 20, show_default=True),
        click.option("--allow-url", "allow_url", multiple=True, metavar="PREFIX",
                     help="Let manifests name http(s) URLs under PREFIX (repeatable; none by"
                          " default). Its host's addresses must be public unless PREFIX names"
                          " the address itself."),
    ]):
        f = opt(f)
    return f


def source_options(*, sign: bool = False) -> Callable[[Any], Any]:
    """Return a decorator adding one option per option a registered source declares.

    With `sign`, only those `sign` takes (how to reach the source). Each is
    also ZIPSERVE_<NAME>, as every option is.
    """
    chosen = [o for o in sources.options() if o.sign or not sign]

    def add(f: Any) -> Any:
        for option in reversed(chosen):
            f = click.option(option.flag, type=option.type, default=option.default,
                             show_default=option.default is not None, help=option.help)(f)
        return f
    return add


def make_settings(root: str, *, crc_cache: Path | None, no_crc_cache: bool,
                  records: str | None = None, **values: Any) -> Settings:
    """Given parsed options, return checked Settings; raise click.BadParameter.

    The options a source declares go to Settings.source_options, the rest are fields.
    """
    extra: dict[str, Any] = {}
    if no_crc_cache:
        extra["crc_cache"] = None
    elif crc_cache is not None:
        extra["crc_cache"] = crc_cache
    if records is not None:
        extra["records"] = records
    declared = {o.name for o in sources.options()}
    given = {k: values.pop(k) for k in list(values) if k in declared}
    try:
        return Settings(root=root, source_options=given, **values, **extra)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# Click would prefix a subcommand's variables with its name (ZIPSERVE_SERVE_MAX_FILES);
# Users are promised ZIPSERVE_<NAME> for every option, so each command sets the prefix itself.
ENV = {"auto_envvar_prefix": "ZIPSERVE"}


@click.group(context_settings={**ENV, "help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stream any selection of files as ZIP, tar, tar.gz, tar.zst or gzip."""


@main.command(context_settings=ENV)
@click.argument("root", default=".", envvar="ZIPSERVE_ROOT")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--token", default=None, help="Require 'Authorization: Bearer TOKEN'.")
@click.option("--secret", default=None, help="Accept links signed by 'zipserve sign'.")
@click.option("--max-streams", type=int, default=64, show_default=True)
@click.option("--max-paths", type=int, default=1000, show_default=True)
@click.option("--max-body", type=int, default=1 << 20, show_default=True)
@click.option("--send-timeout", type=float, default=60.0, show_default=True)
@click.option("--header-timeout", type=float, default=10.0, show_default=True,
              help="Seconds a client may take to send a request line and headers.")
@click.option("--direct-send/--no-direct-send", default=True, show_default=True,
              help="Write bodies to the socket from worker threads (uvicorn httptools, no TLS);"
                   " off: every chunk goes through the event loop.")
@click.option("--grace", type=int, default=30, show_default=True,
              help="Seconds a SIGTERM waits for downloads in flight before closing them.")
@click.option("--max-lifetime", default="7d", show_default=True,
              help="Longest --expires a signed link may have.")
@common_options
def serve(root: str, max_lifetime: str, **options: Any) -> None:
    """Serve ROOT over HTTP."""
    import uvicorn

    from zipserve.http.deadline import protocol

    settings = make_settings(root, max_expires=_duration(max_lifetime), **options)
    probe_source(settings)
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; one scrape sums them (see metrics.py).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="zipserve-metrics-")
    uvicorn.run("zipserve.cli:app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, log_level="info",
                http=protocol(settings.header_timeout),
                log_config=log_config(), timeout_graceful_shutdown=settings.grace)


def probe_source(settings: Settings) -> None:
    """Given settings, stop now if their source or record store refuses us; warn if one is unreachable.

    An unreachable store may come back: requests meanwhile get a 503.
    """
    asks: list[tuple[str, Callable[[], None]]] = [
        (str(settings.root), lambda: sources.probe(settings.root, settings.source_options)),
        ("--records", lambda: records.probe(settings.records, settings.source_options))]
    for name, ask in asks:
        try:
            ask()
        except Unavailable as exc:
            click.echo(f"warning: {exc.message}", err=True)
        except ZipserveError as exc:
            raise click.ClickException(f"{name}: {exc.message}") from None


def log_config() -> dict[str, Any]:
    """Return uvicorn's logging setup plus zipserve's own loggers at INFO.

    uvicorn configures only its loggers; without this, CRC cache misses and the
    one line per archive would never reach the server's log.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["zipserve"] = {"handlers": ["default"], "level": "INFO",
                                     "propagate": False}
    return config


def settings_to_json(settings: Settings) -> str:
    """Given settings, return them as JSON for worker processes."""
    return json.dumps({k: str(v) if isinstance(v, Path) else v
                       for k, v in dataclasses.asdict(settings).items()})


def settings_from_json(text: str) -> Settings:
    """Given settings_to_json's text, return the Settings it was made from."""
    raw = json.loads(text)
    if raw.get("crc_cache") is not None:
        raw["crc_cache"] = Path(raw["crc_cache"])
    return Settings(**raw)


def tune_malloc() -> None:
    """Keep glibc from mapping and unmapping every 1 MiB read buffer.

    Each chunk is a fresh 1 MiB object; past glibc's default thresholds each
    one is mmap'ed, page-faulted in and unmapped again, which cost about a
    third of the encoder's CPU. Measured by bench/bench_stream.py.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    libc.mallopt(m_mmap_threshold, 16 << 20)
    libc.mallopt(m_trim_threshold, 32 << 20)
    # One arena, so what is kept for reuse stays bounded however many threads ran, and a
    # trim (http/trim.py) returns it: with two, the second kept ~11 MiB pinned after 200
    # dropped tar.zst downloads (+23 % of the idle RSS; with one, +4 %), and a deflated
    # ZIP and a tar.zst downloaded as fast (curl, three runs each).
    libc.mallopt(m_arena_max, 1)


def tune_gc() -> None:
    """Run Python's cycle collector less often than its default of every 700 new objects.

    A plan makes several objects a file (Node, Entry, Pieces): under the
    default, an archive of 20,000 small files ran ~180 collections, 50-100 ms
    of its ~600 ms; with these, 2 collections, ~12 ms. What is loaded at
    startup is frozen out of every collection.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def app_from_env() -> Any:
    """Build the app from the settings the parent process left in the environment."""
    from zipserve.http.app import create_app

    tune_malloc()
    from zipserve.http.streaming import ExposeConnection

    app = ExposeConnection(create_app(settings_from_json(os.environ[SETTINGS_ENV])))
    tune_gc()
    return app


@main.command(context_settings=ENV)
@click.argument("root")
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", default="zip", show_default=True)
@click.option("--compression", default="auto", show_default=True)
@click.option("--name", default=None)
@click.option("--manifest", "manifest_file", type=click.File("rb"), default=None,
              help="Write the archive of this manifest (JSON; - for stdin) instead of PATHS.")
@click.option("-o", "--output", default="-", help="File to write, or - for stdout.")
@common_options
def pack(root: str, paths: tuple[str, ...], fmt: str, compression: str, name: str | None,
         manifest_file: BinaryIO | None, output: str, **options: Any) -> None:
    """Write the archive the server would stream for PATHS under ROOT, or for a --manifest."""
    from zipserve.service import Service

    if bool(paths) == (manifest_file is not None):
        raise click.UsageError("give PATHS or --manifest FILE, not both")
    service = Service(make_settings(root, **options))
    tune_gc()
    try:
        plan, encoder = pack_plan(service, list(paths), fmt, compression, name, manifest_file)
        out = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
        try:
            write(encoder.body(plan), out, plan.total, show=sys.stderr.isatty())
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    except ZipserveError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        service.close()


def pack_plan(service: Any, paths: list[str], fmt: str, compression: str, name: str | None,
              manifest_file: BinaryIO | None) -> tuple[Any, Any]:
    """Given pack's arguments, return the plan and the encoder that writes it; raise ZipserveError."""
    if manifest_file is None:
        return service.archive(paths, fmt, compression=compression,
                               level=str(service.settings.level), name=name), service.encoder
    from zipserve.core.manifest import load_manifest

    manifest = load_manifest(manifest_file.read(), max_entries=service.settings.max_files)
    return service.manifest(manifest).plan, service.manifest_encoder


def write(chunks: Any, out: BinaryIO, total: int | None, *, show: bool) -> int:
    """Given chunks, write them to out, with a progress line on stderr when show; return bytes written."""
    done, last = 0, 0.0
    for chunk in chunks:
        out.write(chunk)
        done += len(chunk)
        if show and time.monotonic() - last > 0.2:
            last = time.monotonic()
            pct = f" {100 * done / total:5.1f}%" if total else ""
            click.echo(f"\r{done / (1 << 20):10.1f} MiB{pct}", err=True, nl=False)
    if show:
        click.echo(f"\r{done / (1 << 20):10.1f} MiB done", err=True)
    return done


@main.command(context_settings=ENV)
@click.argument("root")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", default="zip", show_default=True)
@click.option("--compression", default="auto", show_default=True)
@common_options
def warm(root: str, paths: tuple[str, ...], fmt: str, compression: str, **options: Any) -> None:
    """Deflate the ZIP of PATHS under ROOT once, sending nothing, so the server can size it.

    Each file's compressed length is kept beside the CRC cache, for the
    --level, --compression and --chunk-size given, which must be the
    server's (and its requests'); every ZIP of warmed files is then sized.
    """
    from zipserve.service import Service

    service = Service(make_settings(root, **options))
    try:
        level = str(service.settings.level)
        plan = service.archive(list(paths), fmt, compression=compression, level=level)
        if service.warm(plan):
            plan = service.archive(list(paths), fmt, compression=compression, level=level)
        size = f"{plan.total} bytes, ETag {plan.etag}" if plan.sized else "not sized"
        click.echo(f"{plan.filename}: {size}")
    except ZipserveError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        service.close()


def _duration(text: str) -> int:
    try:
        return signing.parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command(context_settings=ENV)
@click.argument("paths", nargs=-1, required=True)
@click.option("--secret", required=True, help="The server's --secret (or ZIPSERVE_SECRET).")
@click.option("--root", default=".", envvar="ZIPSERVE_ROOT", show_default=True,
              help="The served folder, to pin the archive's snapshot.")
@click.option("--format", "fmt", default="zip", show_default=True)
@click.option("--compression", default=None, help="auto, store or deflate.")
@click.option("--name", default=None)
@click.option("--expires", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d...")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--file", "kind", flag_value="file", help="Sign /files/PATH.")
@click.option("--page", "kind", flag_value="page", help="Sign the page /browse/PATH.")
@click.option("--no-pin", is_flag=True, help="Do not pin the archive's snapshot (?etag=).")
@RECORDS
@source_options(sign=True)
def sign(paths: tuple[str, ...], secret: str, root: str, fmt: str, compression: str | None,
         name: str | None, expires: str, base_url: str, kind: str | None,
         no_pin: bool, **options: Any) -> None:
    """Print a signed, expiring URL for PATHS (an archive by default)."""
    lifetime = _duration(expires)
    if kind in ("file", "page"):
        if len(paths) != 1:
            raise click.UsageError("--file and --page take exactly one PATH")
        query: list[tuple[str, str]] = []
        rel = paths[0].strip("/")
        if kind == "page" and rel in ("", "."):
            path = "/"  # browsers turn /browse/. into /browse/ before sending: sign what they send
        else:
            path = ("/files/" if kind == "file" else "/browse/") + rel
    else:
        path, query = archive_url(list(paths), fmt, compression, name)
        if not no_pin:
            etag = _etag(root, list(paths), fmt, compression, name, options)
            if etag is not None:
                query.append(("etag", etag.strip('"')))
    click.echo(signing.sign_url(secret, path, query, expires=int(time.time()) + lifetime,
                                base_url=base_url))


def archive_url(paths: list[str], fmt: str, compression: str | None,
                name: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Given a selection, return the archive URL's path and query (without signature)."""
    from zipserve.core import formats
    from zipserve.core.selection import parse_format

    fmt = parse_format(fmt)
    query = [(k, v) for k, v in (("compression", compression), ("name", name)) if v]
    if len(paths) == 1 and paths[0].strip("/") not in ("", "."):
        return f"/archive/{paths[0].strip('/')}.{formats.get(fmt).extension}", query
    return "/archive", [*(("path", p) for p in paths), ("format", fmt), *query]


def _etag(root: str, paths: list[str], fmt: str, compression: str | None,
          name: str | None, options: dict[str, Any]) -> str | None:
    """Given a selection, return its current ETag when the archive is sized (else None: nothing to pin)."""
    from zipserve.service import Service

    service = Service(make_settings(root, crc_cache=None, no_crc_cache=True, **options))
    try:
        return service.archive(paths, fmt, compression=compression, name=name).etag
    except ZipserveError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        service.close()
