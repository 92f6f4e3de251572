"""``mcp-loadtest proxy`` on the command line: user mistakes are one line, never a traceback."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from loadtest.cli.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "http://127.0.0.1:9", "--faults", "bogus:0.1"], "unknown fault kind 'bogus'"),
        (["--upstream", "http://127.0.0.1:9", "--faults", "delay:every=x"], "every must be a number"),
        ([], "needs --upstream URL (HTTP) or --stdio -- CMD"),
        (["--stdio"], "needs the server command after '--'"),
        (["--upstream", "ftp://127.0.0.1:9"], "--upstream must be an http:// URL"),
        (["--upstream", "http://127.0.0.1:9", "--listen", "localhost:http"], "--listen must be HOST:PORT"),
        (["--upstream", "http://127.0.0.1:9", "--", "python", "server.py"], "goes with --stdio"),
    ],
)
def test_mistakes_are_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["proxy", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("mcp-loadtest: error: ")
    assert message in lines[0]


def test_a_port_in_use_is_one_line_with_exit_code_3() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            main, ["proxy", "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9"]
        )
    assert result.exit_code == 3, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_help_lists_the_fault_kinds() -> None:
    result = CliRunner().invoke(main, ["proxy", "--help"])
    assert result.exit_code == 0
    assert "drop_response" in result.output
    assert "close_stream" in result.output
