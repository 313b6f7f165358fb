"""The options an s3:// root takes, as data: the registry and the CLI read them without loading boto3."""

from __future__ import annotations

from zipserve.sources.plugin import Option

MiB = 1 << 20

ENDPOINT = Option("s3_endpoint", str, None,
                  "S3 endpoint URL for an s3:// root (default: AWS, or $AWS_ENDPOINT_URL).",
                  sign=True)
CRC_PREFIX = Option("s3_crc_prefix", str, None,
                    "Share CRCs between servers as objects under this prefix of the bucket"
                    " (e.g. .zipserve-crc/); zipserve must be allowed to write there.")
PART_SIZE = Option("s3_part_size", int, 8 * MiB, "Bytes per ranged GET.")
READ_AHEAD = Option("s3_read_ahead", int, 4,
                    "Parts a stream may fetch ahead; all streams of a process share as many.")

OPTIONS = (ENDPOINT, CRC_PREFIX, PART_SIZE, READ_AHEAD)
