"""The source registry: a root's scheme picks its source, each source's options are CLI options and
ZIPSERVE_ variables that reach its own checks (and worker processes), and a source has exactly the
capabilities it declares."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from zipserve import cli, sources
from zipserve.errors import ConfigError
from zipserve.settings import Settings
from zipserve.sources.base import FetchesWhole, KnowsCrcs, SendsUnread, SharesCrcs
from zipserve.sources.local.source import Local

S3_FLAGS = ["--s3-endpoint", "--s3-crc-prefix", "--s3-part-size", "--s3-read-ahead"]


@pytest.mark.parametrize(("root", "scheme"), [
    ("s3://bucket/prefix", "s3://"),
    ("/srv/files", ""),
    ("s3", ""),  # a folder named s3
    ("./s3://x", ""),  # a relative path that merely contains a scheme
])
def test_a_root_is_served_by_the_kind_its_scheme_names(root: str, scheme: str) -> None:
    assert sources.kind_of(root).scheme == scheme


def test_settings_refuse_an_option_no_source_declares(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no source takes the option s3_part_sise"):
        Settings(root=tmp_path, crc_cache=None, source_options={"s3_part_sise": 1 << 20})


def test_a_folder_root_leaves_another_sources_options_unchecked(tmp_path: Path) -> None:
    # The CLI sets every registered source's options; only the root's own are checked.
    settings = Settings(root=tmp_path, crc_cache=None, source_options={"s3_part_size": 1})
    assert settings.root == tmp_path.resolve()


@pytest.mark.parametrize(("command", "flags"), [
    (cli.serve, S3_FLAGS),
    (cli.pack, S3_FLAGS),
    (cli.sign, ["--s3-endpoint"]),  # only what reaches the store, to pin a link's snapshot
])
def test_each_source_option_is_a_flag_of_the_commands_that_take_it(command: click.Command,
                                                                  flags: list[str]) -> None:
    assert [p.opts[0] for p in command.params if p.opts[0].startswith("--s3-")] == flags


@pytest.mark.parametrize("via", ["flag", "environment"])
@pytest.mark.parametrize(("name", "value", "message"), [
    ("s3-part-size", "1024", "s3-part-size must be at least 65536"),
    ("s3-read-ahead", "0", "s3-read-ahead at least 1"),
    ("s3-crc-prefix", "/crc/", "s3-crc-prefix is a key prefix in the served bucket"),
])
def test_a_source_option_reaches_its_sources_own_check(via: str, name: str, value: str,
                                                      message: str) -> None:
    args = ["pack", "s3://bucket/prefix", "x", "-o", "-"]
    env = {}
    if via == "flag":
        args += [f"--{name}", value]
    else:
        env[f"ZIPSERVE_{name.upper().replace('-', '_')}"] = value
    result = CliRunner().invoke(cli.main, args, env=env)
    assert result.exit_code == 2
    assert message in result.output


def test_source_options_reach_worker_processes(tmp_path: Path) -> None:
    given = {"s3_endpoint": "http://127.0.0.1:9", "s3_part_size": 1 << 20}
    settings = Settings(root="s3://bucket/prefix", crc_cache=tmp_path / "crc.sqlite3",
                        source_options=given)
    again = cli.settings_from_json(cli.settings_to_json(settings))
    assert again == settings
    assert again.source_options == given


def test_a_local_folder_can_send_spans_unread_and_nothing_a_store_does(tmp_path: Path) -> None:
    local = Local(tmp_path)
    found = [isinstance(local, c) for c in (SendsUnread, SharesCrcs, KnowsCrcs, FetchesWhole)]
    assert found == [True, False, False, False]
