"""`mlsec logs`: every log of the demo's stack is named, and the end of one is printed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.ops.logs import last_lines, log_files


def test_every_log_is_listed_where_it_is(demo_output, settings):
    result = CliRunner().invoke(main, ["logs"])
    assert result.exit_code == 0, result.output
    files = log_files(settings)
    assert {"openbao", "seaweedfs", "postgres", "nats", "openbao-audit", "dagster"} <= set(files)
    for name, path in files.items():
        assert f"{name:<14} {path}" in result.output


def test_the_end_of_a_log_is_printed(demo_output, settings):
    result = CliRunner().invoke(main, ["logs", "openbao-audit", "-n", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines == last_lines(log_files(settings)["openbao-audit"], 3)


@pytest.mark.parametrize("arguments", [["no-such-log"], ["nats", "-n", "0"], ["dagster"]])
def test_what_is_not_a_log_is_a_usage_error(demo_output, arguments):
    result = CliRunner().invoke(main, ["logs", *arguments])
    assert result.exit_code == 2, result.output


def test_last_lines_reads_across_blocks(tmp_path):
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i} {'x' * 100}\n" for i in range(5000)))
    assert last_lines(log, 2) == [f"line 4998 {'x' * 100}", f"line 4999 {'x' * 100}"]
    assert len(last_lines(log, 1200)) == 1200
    assert last_lines(log, 6000)[0].startswith("line 0 ")
