"""Command line: options -> Settings -> uvicorn, pack or sign. Every option is also ZIPSERVE_<NAME>."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import click

from .errors import ZipserveError
from .settings import Settings

SETTINGS_ENV = "ZIPSERVE__SETTINGS"  # how the parent hands settings to uvicorn's workers


def common_options(f: Any) -> Any:
    """Options shared by serve and pack (limits, compression, cache)."""
    for opt in reversed([
        click.option("--max-files", type=int, default=200_000, show_default=True),
        click.option("--max-bytes", type=int, default=1 << 40, show_default=True),
        click.option("--max-depth", type=int, default=256, show_default=True),
        click.option("--level", type=click.IntRange(1, 9), default=1, show_default=True,
                     help="Default deflate level (1 fast .. 9 small)."),
        click.option("--compress-workers", type=int, default=os.cpu_count() or 1,
                     show_default=True),
        click.option("--crc-cache", type=click.Path(path_type=Path), default=None,
                     help="CRC cache file (default: ~/.cache/zipserve/crc.sqlite3)."),
        click.option("--no-crc-cache", is_flag=True, help="Keep CRCs in memory only."),
        click.option("--chunk-size", type=int, default=1 << 20, show_default=True),
    ]):
        f = opt(f)
    return f


def make_settings(root: str, *, crc_cache: Path | None, no_crc_cache: bool,
                  **values: Any) -> Settings:
    """Given parsed options, return checked Settings; raise click.BadParameter."""
    extra: dict[str, Any] = {}
    if no_crc_cache:
        extra["crc_cache"] = None
    elif crc_cache is not None:
        extra["crc_cache"] = crc_cache
    try:
        return Settings(root=Path(root), **values, **extra)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"auto_envvar_prefix": "ZIPSERVE",
                               "help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stream any selection of files as ZIP, tar, tar.gz, tar.zst or gzip."""


@main.command()
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
@common_options
def serve(root: str, **options: Any) -> None:
    """Serve ROOT over HTTP."""
    import uvicorn

    settings = make_settings(root, **options)
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    uvicorn.run("zipserve.cli:app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, log_level="info",
                timeout_graceful_shutdown=30)


def settings_to_json(settings: Settings) -> str:
    """Given settings, return them as JSON for worker processes."""
    return json.dumps({k: str(v) if isinstance(v, Path) else v
                       for k, v in dataclasses.asdict(settings).items()})


def app_from_env() -> Any:
    """Build the app from the settings the parent process left in the environment."""
    from .app import create_app

    raw = json.loads(os.environ[SETTINGS_ENV])
    for key in ("root", "crc_cache"):
        if raw.get(key) is not None:
            raw[key] = Path(raw[key])
    return create_app(Settings(**raw))


@main.command()
@click.argument("root")
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", default="zip", show_default=True)
@click.option("--compression", default="auto", show_default=True)
@click.option("--name", default=None)
@click.option("-o", "--output", default="-", help="File to write, or - for stdout.")
@common_options
def pack(root: str, paths: tuple[str, ...], fmt: str, compression: str, name: str | None,
         output: str, **options: Any) -> None:
    """Write the archive the server would stream for PATHS under ROOT."""
    from .service import Service

    service = Service(make_settings(root, **options))
    try:
        plan = service.archive(list(paths), fmt, compression=compression,
                               level=str(options["level"]), name=name)
        out = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
        try:
            write(service.encoder.body(plan), out, plan.total, show=sys.stderr.isatty())
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    except ZipserveError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        service.close()


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
