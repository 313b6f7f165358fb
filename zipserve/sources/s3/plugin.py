"""The s3:// plug-in: checks an S3 root's settings, opens it, and asks the store once at startup."""

from __future__ import annotations

import importlib.util

from zipserve.errors import ConfigError
from zipserve.sources.plugin import Options, Plugin, number, text
from zipserve.sources.s3.client import make_client
from zipserve.sources.s3.keys import parse_root
from zipserve.sources.s3.options import CRC_PREFIX, ENDPOINT, PART_SIZE, READ_AHEAD
from zipserve.sources.s3.source import S3Source


def check(root: str, options: Options) -> None:
    """Given an s3:// root and its options, raise ConfigError naming the first that cannot work."""
    bucket_and_prefix(root)
    if importlib.util.find_spec("boto3") is None:
        raise ConfigError("an s3:// root needs boto3: pip install 'zipserve[s3]'")
    if number(options, PART_SIZE) < 64 * 1024 or number(options, READ_AHEAD) < 1:
        raise ConfigError("s3-part-size must be at least 65536 and s3-read-ahead at least 1")
    prefix = text(options, CRC_PREFIX)
    if prefix is not None and (not prefix.endswith("/") or prefix.startswith("/")):
        raise ConfigError("s3-crc-prefix is a key prefix in the served bucket, like .zipserve-crc/")


def bucket_and_prefix(root: str) -> tuple[str, str]:
    """Given an s3:// root, return its bucket and key prefix; raise ConfigError."""
    try:
        return parse_root(root)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def open_source(root: str, options: Options) -> S3Source:
    """Given a checked s3:// root and its options, return the source (one boto3 client, its pools)."""
    bucket, prefix = bucket_and_prefix(root)
    endpoint, ahead = text(options, ENDPOINT), number(options, READ_AHEAD)
    client = make_client(endpoint, pool=16 * ahead + 16)
    return S3Source(bucket, prefix, client, part=number(options, PART_SIZE), ahead=ahead,
                    crc_prefix=text(options, CRC_PREFIX), endpoint=endpoint)


def probe(root: str, options: Options) -> None:
    """Given a checked s3:// root, list one key under it; raise the refusal a request would meet."""
    source = open_source(root, options)
    try:
        source.check()
    finally:
        source.close()


PLUGIN = Plugin(check=check, open=open_source, probe=probe)
