"""The format registry (core/formats): every row is reachable by its URL names and has a body."""

from __future__ import annotations

import pytest

from zipserve.core import formats
from zipserve.core.selection import download_name, make_selection, parse_format, split_extension
from zipserve.encode.encoder import STREAMED
from zipserve.errors import BadRequest

# What URLs and ?format= accept, and what each names: adding a format adds a line here.
ACCEPTED = {"zip": "zip", "tar": "tar", "tar.gz": "tar.gz", "tgz": "tar.gz", "tar.zst": "tar.zst",
            "gz": "gz"}


@pytest.mark.parametrize("row", formats.FORMATS, ids=lambda f: f.name)
def test_every_encoder_kind_has_a_body(row: formats.Format) -> None:
    assert row.encoder in STREAMED


def test_the_accepted_names_are_exactly_the_rows_names_and_extensions() -> None:
    accepted = {ext: f.name for f in formats.FORMATS for ext in f.extensions}
    assert accepted | {f.name: f.name for f in formats.FORMATS} == ACCEPTED


@pytest.mark.parametrize(("value", "name"), sorted(ACCEPTED.items()))
def test_each_accepted_name_parses_and_splits_to_its_format(value: str, name: str) -> None:
    assert parse_format(value.upper()) == name
    assert split_extension(f"docs.{value}", None) == ("docs", name)


@pytest.mark.parametrize("row", formats.FORMATS, ids=lambda f: f.name)
def test_download_name_ends_with_the_rows_extension(row: formats.Format) -> None:
    assert download_name(make_selection([("docs",)]), row.name, None) == f"docs.{row.extension}"


def test_unknown_extension_message_lists_every_extension() -> None:
    with pytest.raises(BadRequest) as caught:
        split_extension("docs.rar", None)
    assert caught.value.message == "archive URL must end in .zip, .tar, .tar.gz, .tgz, .tar.zst or .gz"


def test_unknown_format_message_lists_every_format() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_format("rar")
    assert caught.value.message == "unknown format 'rar'; use one of: zip, tar, tar.gz, tar.zst, gz"


@pytest.mark.parametrize(("fmt", "one_file"), [("zip", False), ("tar", False), ("tar.gz", False),
                                               ("tar.zst", False), ("gz", True)])
def test_only_gz_holds_one_file(fmt: str, one_file: bool) -> None:
    assert formats.get(fmt).one_file is one_file
